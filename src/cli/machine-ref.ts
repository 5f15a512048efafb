// Turning `<label | sealed.json | identity>` into a verified machine: a label is built first.
import { availableParallelism } from "node:os";
import { build } from "../build.ts";
import { WmbError } from "../errors.ts";
import { isLabelRef } from "../label.ts";
import { loadMachine, registerSealedOutputs, type LoadedMachine } from "../machine.ts";
import { progressReporter } from "../progress.ts";
import type { Store } from "../../store/store.ts";
import type { StoredOutput } from "../../store/store.ts";

export async function resolveMachine(
  ref: string,
  store: Store,
  workspace: () => string,
  stderr: NodeJS.WriteStream,
  toolchain: "hermetic" | "system" = "hermetic",
): Promise<LoadedMachine> {
  if (!isLabelRef(ref)) return loadMachine(store, ref);
  const reporter = progressReporter(stderr);
  let summary;
  try {
    summary = await build({ workspace: workspace(), store, targets: [ref], jobs: availableParallelism(), toolchain, events: reporter });
  } finally {
    reporter.stop();
  }
  if (!summary.ok) {
    const failed = summary.actions.find((a) => a.status === "failed");
    throw failed?.error ?? new WmbError("ACTION_FAILED", `Building ${ref} failed.`, { subject: ref });
  }
  const top = summary.actions.find((a) => a.label === summary.targets[0]);
  const outputs = Object.fromEntries(Object.entries(top?.outputs ?? {}).map(([p, d]) => [p, { digest: d, executable: false } as StoredOutput]));
  const sealed = await registerSealedOutputs(store, summary.targets[0]!, outputs);
  if (sealed.length === 0) {
    throw new WmbError("USAGE", `${summary.targets[0]} does not produce a sealed spec; run a target built by the seal rule (e.g. //sqlite-cli:sealed).`, { subject: ref });
  }
  return loadMachine(store, sealed[0]!.seal.digest);
}
