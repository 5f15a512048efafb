// Turning `<label | sealed.json | identity | oci://…>` into a verified machine: a label is
// built first, an OCI reference pulled first (verified before anything is admitted).
import { availableParallelism } from "node:os";
import { build, buildFailure } from "../build.ts";
import { WmbError } from "../errors.ts";
import { canonicalLabel, isLabelRef } from "../label.ts";
import { buildFileCache, loadWorkspace } from "../build-file.ts";
import { Graph } from "../graph.ts";
import { loadMachine, registerBuiltMachines, type LoadedMachine } from "../machine.ts";
import { progressReporter } from "../progress.ts";
import type { Store } from "../../store/store.ts";
import { isOciReference, parseOciReference } from "../remote/oci/reference.ts";
import type { ClientOptions } from "../remote/oci/client.ts";
import type { PullReport } from "../remote/oci-machine.ts";
import type { MachinePolicy } from "../remote/machine-trust.ts";
import type { BuildSummary } from "../build.ts";
import { readWorkspaceConfig } from "../workspace-config.ts";
import { openRemoteCache } from "./remote-cache.ts";
import { traced } from "../trace.ts";

/** A machine resolved from a reference, with how: pulled (and what its signatures said), or
 * built here from a label (what push's provenance describes). */
export type ResolvedMachine = LoadedMachine & { pulled?: PullReport; built?: { label: string; root: string; summary: BuildSummary; toolchain: "hermetic" | "system" } };

export async function resolveMachine(
  ref: string,
  store: Store,
  workspace: () => string,
  stderr: NodeJS.WriteStream,
  toolchain: "hermetic" | "system" = "hermetic",
  remote: ClientOptions & { policy?: MachinePolicy } = {},
): Promise<ResolvedMachine> {
  if (isOciReference(ref)) {
    const { pullMachine } = await import("../remote/oci-machine.ts");
    const pulled = await pullMachine(store, parseOciReference(ref), remote);
    return { ...(await loadMachine(store, pulled.identity, remote)), pulled };
  }
  if (!isLabelRef(ref)) return loadMachine(store, ref, remote);
  // Refuse a target that seals no machine before building anything.
  const root = workspace();
  const loaded = await loadWorkspace(root, buildFileCache(store.dir));
  const label = canonicalLabel(ref);
  if (!new Graph(loaded.targets).get(label).rule.machineOutput) {
    throw new WmbError("USAGE", `${label} does not produce a sealed spec; run a target built by the seal rule (e.g. //sqlite-cli:sealed).`, { subject: ref });
  }
  const reporter = progressReporter(stderr);
  const config = readWorkspaceConfig(root);
  // The remote cache the workspace is configured with (WMB_REMOTE_CACHE or wmb.json) serves here too.
  const cache = await openRemoteCache(store, { plainHttp: remote.plainHttp }, config, (m) => reporter.warning!(m), root);
  let summary;
  try {
    summary = await build({ workspace: root, loaded, store, targets: [label], jobs: availableParallelism(), toolchain, remote: cache, events: reporter });
  } finally {
    reporter.stop();
  }
  if (!summary.ok) throw buildFailure(summary);
  const [sealed] = await registerBuiltMachines(store, summary);
  const m = await traced("check the machine's digests", "run", () => loadMachine(store, sealed!.seal.digest));
  return { ...m, built: { label, root, summary, toolchain } };
}
