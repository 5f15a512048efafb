// What the pages read, as JSON: a thin layer over the store's read API (Store, BuildHistory) and
// the functions `wmb query`, `why`, `graph`, `inspect` and `--profile` already use. Nothing here
// runs SQL or names a file: the server hands it parsed routes only.
import { statSync } from "node:fs";
import type { Store } from "../../store/store.ts";
import type { BuildRecord, RecordedAction } from "../../store/history.ts";
import type { LoadedWorkspace } from "../build-file.ts";
import { Graph } from "../graph.ts";
import { diffKeyInputs, type ActionKeyInputs } from "../keys.ts";
import { traceEvent, traceText } from "../trace.ts";
import { checkSealedSpec, type SealedSpec } from "../formats/machine-spec.ts";
import type { ActionKey, Digest } from "../digest.ts";
import { label as parseLabel, RouteError } from "./routes.ts";

/** Builds per page: 1,000 builds are 20 pages, each one query. */
export const BUILDS_PAGE = 50;
export const MAX_BUILDS_PAGE = 500;

export interface MachineSummary {
  identity: string;
  name: string;
  version: string;
  label?: string;
  registeredAt: number;
  kernelBytes: number;
  rootfsBytes: number;
  profile: SealedSpec["capability_profile"];
  interfaces: string[];
  /** Keys whose signature of this machine verified (store version 8), latest first. */
  signers: SignerSummary[];
}

/** A key that signed a machine: "pull", checked against the trusted keys at a pull (or run or
 * inspect of oci://); "push", the pusher's own key. */
export interface SignerSummary {
  keyName: string;
  publicKey: string;
  index: string;
  how: "pull" | "push";
  verifiedAt: number;
}

/** The files a tab needs to run a machine, each with its BLAKE3 (fetched from blobs/<digest>). */
export interface RunManifest {
  identity: string;
  spec: { digest: Digest; size: number };
  /** jco's output for the kernel (the component module and its core modules), by file name. */
  transpiled: Record<string, { digest: Digest; size: number }>;
}

export class WebApi {
  constructor(
    private readonly store: Store,
    private readonly workspace: () => Promise<LoadedWorkspace>,
  ) {}

  builds(query: URLSearchParams): { builds: BuildRecord[]; next?: number; total: number } {
    const limit = Math.min(MAX_BUILDS_PAGE, positive(query.get("limit"), BUILDS_PAGE));
    const before = query.has("before") ? positive(query.get("before"), Number.MAX_SAFE_INTEGER) : undefined;
    const builds = this.store.history.builds({ before, limit: limit + 1 });
    const more = builds.length > limit;
    if (more) builds.pop();
    return { builds, next: more ? builds[builds.length - 1]!.id : undefined, total: this.store.history.count() };
  }

  build(id: number): { build: BuildRecord; actions: RecordedAction[] } {
    const build = this.store.history.build(id);
    if (!build) throw new RouteError(404, `There is no build ${id} in this store.`);
    return { build, actions: this.store.history.buildActions(id) };
  }

  /** The build's Chrome trace, as `--profile` would have written its action lanes. */
  trace(id: number): string {
    const { build, actions } = this.build(id);
    const events = actions
      .filter((a) => a.startMs !== undefined)
      .map((a) => traceEvent(a.label, a.status, a.startMs!, a.durationMs, (a.lane ?? 0) + 1, { rule: a.rule, key: a.key, ...(a.error ? { error: a.error } : {}) }));
    if (build.finishedAt) events.unshift(traceEvent(`wmb ${build.command} ${build.targets.join(" ")}`, "command", 0, build.finishedAt - build.startedAt, 0));
    return traceText(events);
  }

  target(label: string): { label: string; history: ReturnType<Store["history"]["targetHistory"]>; keys: ActionKey[]; rule?: string } {
    const history = this.store.history.targetHistory(label);
    const keys = this.store.history.recentKeys(label, 50);
    if (history.length === 0 && keys.length === 0) throw new RouteError(404, `${label} has no recorded builds in this store.`);
    const encoded = keys[0] && this.store.keyInputsOf(keys[0]);
    return { label, history, keys, rule: encoded ? (JSON.parse(encoded) as ActionKeyInputs).rule : undefined };
  }

  /** `wmb why` between any two of a target's keys (`before`, `after`; default its last two). */
  why(label: string, query: URLSearchParams): { label: string; before: ActionKey; after: ActionKey; changes: ReturnType<typeof diffKeyInputs> } {
    const keys = this.store.history.recentKeys(label, 50);
    const pick = (name: string, fallback: ActionKey | undefined): ActionKey => {
      const given = query.get(name);
      const key = given === null ? fallback : keys.find((k) => k === given);
      if (!key) throw new RouteError(given === null ? 404 : 400, given === null ? `${label} has one key only; nothing to compare.` : `${given.slice(0, 70)} is not one of ${label}'s keys.`);
      return key;
    };
    const after = pick("after", keys[0]);
    const before = pick("before", keys[1]);
    const inputs = (key: ActionKey): ActionKeyInputs => {
      const encoded = this.store.keyInputsOf(key);
      if (encoded === undefined) throw new RouteError(404, `The key inputs of ${key.slice(0, 12)}… were garbage-collected.`);
      return JSON.parse(encoded) as ActionKeyInputs;
    };
    return { label, before, after, changes: diffKeyInputs(inputs(before), inputs(after)) };
  }

  /** The closure of `label` (or every target), each node with its last recorded outcome. */
  async graph(query: URLSearchParams): Promise<{ label?: string; nodes: { label: string; rule: string; deps: string[]; outcome?: string; build?: number }[] }> {
    const g = new Graph((await this.workspace()).targets);
    const given = query.get("label");
    let targets;
    if (given) {
      const l = parseLabel(given);
      if (!g.targets.has(l)) throw new RouteError(404, `BUILD.ts declares no ${l}.`);
      targets = g.closure([l]);
    } else {
      targets = [...g.targets.values()];
    }
    const outcomes = this.store.history.lastOutcomes(targets.map((t) => t.label));
    return {
      label: given ?? undefined,
      nodes: targets.map((t) => ({ label: t.label, rule: t.rule.name, deps: t.deps, outcome: outcomes.get(t.label)?.status, build: outcomes.get(t.label)?.buildId })),
    };
  }

  async machines(): Promise<MachineSummary[]> {
    const out: MachineSummary[] = [];
    for (const m of this.store.machines()) {
      const spec = await this.sealedSpec(m.identity, m.specDigest).catch(() => undefined);
      if (!spec) continue; // its spec blob is gone or corrupt: `wmb store fsck` says so
      out.push({
        identity: m.identity,
        name: spec.name,
        version: spec.version,
        label: m.label,
        registeredAt: m.createdAt,
        kernelBytes: spec.kernel_ref.size,
        rootfsBytes: spec.rootfs_ref.size,
        profile: spec.capability_profile,
        interfaces: boundInterfaces(spec),
        signers: this.store.machineSigners(m.identity),
      });
    }
    return out;
  }

  /** The machine's spec, checked as `wmb inspect` checks it, and what `run` would grant. */
  async machine(identity: string): Promise<{ identity: string; specDigest: Digest; spec: SealedSpec; grant: { argv0: string; interfaces: string[]; writable: string[]; threads: number }; signers: SignerSummary[] }> {
    const { loadMachine } = await import("../machine.ts");
    const { machineGrant } = await import("../run/run-grant.ts");
    const m = await this.known(identity, () => loadMachine(this.store, identity));
    const grant = machineGrant(m.spec, m.kernel, new Map(), "/");
    return {
      identity,
      specDigest: m.specDigest!,
      spec: m.spec,
      grant: { argv0: grant.argv0, interfaces: grant.interfaces, writable: grant.mounts.map((g) => g.guest), threads: grant.threads },
      signers: this.store.machineSigners(identity),
    };
  }

  /** What the run page fetches. The component is transpiled once per kernel (kept in the store,
   * as `wmb run` keeps it: `transpiled` lists it, `transpile` makes it from a verified kernel).
   * The tab checks every file against these digests, and the spec, kernel and rootfs against the
   * seal, before it instantiates anything: the server hands out the bytes as stored. */
  async runManifest(
    identity: string,
    transpiled: (kernelDigest: Digest) => Promise<Record<string, Digest> | undefined>,
    transpile: (kernel: Buffer, kernelDigest: Digest) => Promise<Record<string, Digest>>,
  ): Promise<RunManifest> {
    const specDigest = this.store.machineSpecDigest(identity);
    if (!specDigest) throw new RouteError(404, `No machine ${identity} in this store.`);
    const spec = await this.sealedSpec(identity, specDigest);
    const kernelDigest = spec.kernel_ref.digest.slice(7) as Digest;
    let files = await transpiled(kernelDigest);
    if (!files) {
      const { loadMachine } = await import("../machine.ts");
      const m = await loadMachine(this.store, identity);
      files = await transpile(m.kernel, m.kernelDigest);
    }
    const list: RunManifest["transpiled"] = {};
    for (const [name, digest] of Object.entries(files)) list[name] = { digest, size: statSync(this.store.blobPath(digest)).size };
    return { identity, spec: { digest: specDigest, size: statSync(this.store.blobPath(specDigest)).size }, transpiled: list };
  }

  /** The blobs a machine's run page may fetch: its spec, kernel, rootfs and transpiled files. */
  async machineBlobs(identity: string, transpiled: (kernelDigest: Digest) => Promise<Record<string, Digest> | undefined>): Promise<Set<Digest>> {
    const specDigest = this.store.machineSpecDigest(identity);
    if (!specDigest) throw new RouteError(404, `No machine ${identity} in this store.`);
    const spec = await this.sealedSpec(identity, specDigest);
    const kernel = spec.kernel_ref.digest.slice(7) as Digest;
    return new Set([specDigest, kernel, spec.rootfs_ref.digest.slice(7) as Digest, ...Object.values((await transpiled(kernel)) ?? {})]);
  }

  private async sealedSpec(identity: string, specDigest: Digest): Promise<SealedSpec> {
    if ((await this.store.checkBlob(specDigest)) !== "ok") throw new RouteError(404, `The spec of ${identity} is missing or corrupt in the store.`);
    const spec = checkSealedSpec(JSON.parse((await this.store.readBlob(specDigest)).toString("utf8")), {}, identity);
    if (spec.seal.digest !== identity) throw new RouteError(404, `The spec stored for ${identity} is another machine's.`);
    return spec;
  }

  private async known<T>(identity: string, load: () => Promise<T>): Promise<T> {
    if (!this.store.machineSpecDigest(identity)) throw new RouteError(404, `No machine ${identity} in this store.`);
    return load();
  }
}

/** The WASI interfaces a spec binds to the host, unversioned. */
function boundInterfaces(spec: SealedSpec): string[] {
  return [...new Set(spec.composition.bindings.map((b) => b.import_name.replace(/@.*$/, "")))].sort();
}

function positive(s: string | null, fallback: number): number {
  if (s === null) return fallback;
  if (!/^[1-9][0-9]{0,15}$/.test(s)) throw new RouteError(400, `${JSON.stringify(s.slice(0, 40))} is not a positive number.`);
  return Number(s);
}

