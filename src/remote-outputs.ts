// A build's use of a remote cache: hits are taken without their bytes; an output of a hit is
// fetched only when a local action reads it or it is a requested target's (wmb-out/). Fetched
// outputs are checked against their BLAKE3 and admitted as blobs, but a hit is never recorded
// as a local result: it stays a remote one (remote_results), taken again only through the
// remote cache and its checks (trusted keys), so `--no-remote-cache` or a key removed from the
// trusted list never serves what the remote said. When a hit's outputs cannot be fetched whole
// (the registry lost or corrupted a blob), the action runs here instead, with one warning.
import type { ActionResult, OutputMap, Store } from "../store/store.ts";
import { outputsDigestOf } from "../store/outputs-digest.ts";
import type { Digest } from "./digest.ts";
import { WmbError } from "./errors.ts";
import type { PlannedAction, Rebuilder } from "./rebuilder.ts";
import type { RemoteCache, RemoteResult } from "./remote/action-cache.ts";

export class RemoteOutputs {
  private readonly hits = new Map<string, { plan: PlannedAction; result: RemoteResult }>();
  private readonly fetching = new Map<string, Promise<void>>();

  constructor(
    private readonly cache: RemoteCache,
    // The store is not written here: a hit's blobs are admitted by the cache, its result stays remote.
    _store: Store,
    private readonly rebuilder: Rebuilder,
    private readonly signal: AbortSignal,
    private readonly warn: (message: string) => void,
  ) {}

  /** The remote's result for a planned action, as a result whose outputs may not be local yet. */
  async lookup(plan: PlannedAction): Promise<ActionResult | undefined> {
    const { rule, attrs } = plan.target;
    const machine = rule.machineOutput && rule.machineName ? { output: rule.machineOutput(attrs), name: rule.machineName(attrs) } : undefined;
    const result = await this.cache.lookup(plan.key, plan.target.label, plan.target.outputs, machine);
    if (!result) return undefined;
    this.hits.set(plan.target.label, { plan, result });
    const outputs = outputMap(result);
    return { id: 0, outputsDigest: outputsDigestOf(outputs), outputs, sandbox: result.sandbox };
  }

  /** Fetch the outputs of remote hits that `plan` reads. */
  async fetchInputs(plan: PlannedAction): Promise<void> {
    const from = new Set(plan.inputs.filter((i) => !i.file && i.from && this.hits.has(i.from)).map((i) => i.from!));
    for (const label of from) await this.fetchOutputs(label);
  }

  /** Make every output of `label` local, if it was a remote hit (once per build). */
  fetchOutputs(label: string): Promise<void> {
    const hit = this.hits.get(label);
    if (!hit) return Promise.resolve();
    let p = this.fetching.get(label);
    if (!p) {
      p = this.fetchHit(hit.plan, hit.result);
      this.fetching.set(label, p);
    }
    return p;
  }

  private async fetchHit(plan: PlannedAction, result: RemoteResult): Promise<void> {
    const outputs = outputMap(result);
    try {
      for (const o of Object.values(outputs)) await this.cache.fetch(o.digest);
    } catch (e) {
      if (!(e instanceof WmbError) || (e.code !== "INTEGRITY" && e.code !== "REMOTE")) throw e;
      this.cache.forget(plan.key);
      this.warn(`the remote result of ${plan.target.label} could not be fetched whole (${e.message.replace(/\.$/, "")}); running it locally.`);
      await this.runLocally(plan, outputsDigestOf(outputs));
    }
  }

  /** Run a hit's action here; its dependents were planned with the remote's digests, so it must
   * make the same outputs. */
  private async runLocally(plan: PlannedAction, expected: Digest): Promise<void> {
    await this.fetchInputs(plan);
    const { result } = await this.rebuilder.execute(plan, this.signal);
    if (result.outputsDigest !== expected) {
      throw new WmbError(
        "ACTION_FAILED",
        `${plan.target.label} ran locally after its remote result could not be fetched, and made other outputs than that result; the remote entry is suspect (check it with \`wmb verify ${plan.target.label} --against ${this.cache.url}\`), build with --no-remote-cache meanwhile.`,
        { subject: plan.target.label },
      );
    }
  }
}

/** A hit's outputs as the store describes outputs. */
export function outputMap(result: RemoteResult): OutputMap {
  return Object.fromEntries(Object.entries(result.outputs).map(([p, o]) => [p, { digest: o.blake3, executable: o.executable }]));
}
