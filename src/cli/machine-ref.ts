// Turning `<label | sealed.json | identity>` into a verified machine: a label is built first.
import { availableParallelism } from "node:os";
import { build, buildFailure } from "../build.ts";
import { WmbError } from "../errors.ts";
import { canonicalLabel, isLabelRef } from "../label.ts";
import { buildFileCache, loadWorkspace } from "../build-file.ts";
import { Graph } from "../graph.ts";
import { loadMachine, registerBuiltMachines, type LoadedMachine } from "../machine.ts";
import { progressReporter } from "../progress.ts";
import type { Store } from "../../store/store.ts";

export async function resolveMachine(
  ref: string,
  store: Store,
  workspace: () => string,
  stderr: NodeJS.WriteStream,
  toolchain: "hermetic" | "system" = "hermetic",
): Promise<LoadedMachine> {
  if (!isLabelRef(ref)) return loadMachine(store, ref);
  // Refuse a target that seals no machine before building anything.
  const root = workspace();
  const loaded = await loadWorkspace(root, buildFileCache(store.dir));
  const label = canonicalLabel(ref);
  if (!new Graph(loaded.targets).get(label).rule.machineOutput) {
    throw new WmbError("USAGE", `${label} does not produce a sealed spec; run a target built by the seal rule (e.g. //sqlite-cli:sealed).`, { subject: ref });
  }
  const reporter = progressReporter(stderr);
  let summary;
  try {
    summary = await build({ workspace: root, loaded, store, targets: [label], jobs: availableParallelism(), toolchain, events: reporter });
  } finally {
    reporter.stop();
  }
  if (!summary.ok) throw buildFailure(summary);
  const [sealed] = await registerBuiltMachines(store, summary);
  return loadMachine(store, sealed!.seal.digest);
}
