// `wmb verify --against <remote cache>` (Guix's `challenge`): rebuild the closure here,
// bypassing every cache, and compare each action's outputs with what the remote cache holds
// for the same key. A difference is a poisoned or non-reproducible cache entry.
import { build, buildFailure, type BuildEvents, type ToolchainKind } from "./build.ts";
import type { Digest } from "./digest.ts";
import { WmbError } from "./errors.ts";
import type { RemoteCache } from "./remote/action-cache.ts";
import { outputMap } from "./remote-outputs.ts";
import { outputsDigestOf, type Store } from "../store/store.ts";

export interface ChallengedAction {
  label: string;
  key: string;
  local: Digest;
  /** The remote result's output set digest; undefined when the remote holds none for the key. */
  remote?: Digest;
  status: "same" | "differs" | "absent" | "unreadable";
  /** Output paths whose digests differ. */
  paths?: string[];
  reason?: string;
}

export interface ChallengeReport {
  remote: string;
  actions: ChallengedAction[];
  differing: string[];
}

export async function challenge(opts: {
  workspace: string;
  store: Store;
  targets: string[];
  jobs: number;
  toolchain: ToolchainKind;
  remote: RemoteCache;
  events?: BuildEvents;
}): Promise<ChallengeReport> {
  const summary = await build({ ...opts, remote: undefined, noCache: true, command: "verify", materialize: false });
  if (!summary.ok) throw buildFailure(summary);
  const actions: ChallengedAction[] = [];
  for (const a of summary.actions) {
    const local = a.outputsDigest!;
    let remote;
    try {
      remote = await opts.remote.fetchResult(a.key!);
    } catch (e) {
      if (!(e instanceof WmbError) || e.code !== "INTEGRITY") throw e;
      actions.push({ label: a.label, key: a.key!, local, status: "unreadable", reason: e.message });
      continue;
    }
    if (!remote) {
      actions.push({ label: a.label, key: a.key!, local, status: "absent" });
      continue;
    }
    const outputs = outputMap(remote);
    const digest = outputsDigestOf(outputs);
    const paths = [...new Set([...Object.keys(outputs), ...Object.keys(a.outputs ?? {})])].filter((p) => outputs[p]?.digest !== a.outputs?.[p]).sort();
    actions.push({ label: a.label, key: a.key!, local, remote: digest, status: digest === local ? "same" : "differs", ...(digest === local ? {} : { paths }) });
  }
  return { remote: opts.remote.url, actions, differing: actions.filter((a) => a.status === "differs" || a.status === "unreadable").map((a) => a.label) };
}
