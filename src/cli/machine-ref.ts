// Turning `<label | sealed.json | identity>` into a verified machine: a label is built first.
import { availableParallelism } from "node:os";
import { build, buildFailure } from "../build.ts";
import { WmbError } from "../errors.ts";
import { isLabelRef } from "../label.ts";
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
  const reporter = progressReporter(stderr);
  let summary;
  try {
    summary = await build({ workspace: workspace(), store, targets: [ref], jobs: availableParallelism(), toolchain, events: reporter });
  } finally {
    reporter.stop();
  }
  if (!summary.ok) throw buildFailure(summary);
  const sealed = await registerBuiltMachines(store, summary);
  if (sealed.length === 0) {
    throw new WmbError("USAGE", `${summary.targets[0]} does not produce a sealed spec; run a target built by the seal rule (e.g. //sqlite-cli:sealed).`, { subject: ref });
  }
  return loadMachine(store, sealed[0]!.seal.digest);
}
