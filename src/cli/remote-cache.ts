// The remote cache a command uses (build, and the builds run, inspect, push and verify make).
import { WmbError } from "../errors.ts";
import type { RemoteCache } from "../remote/action-cache.ts";
import type { WorkspaceConfig } from "../workspace-config.ts";
import type { Store } from "../../store/store.ts";
import { trustForCommand } from "./trust-options.ts";

/** The remote cache a build uses, if any: --remote-cache, else WMB_REMOTE_CACHE, else wmb.json.
 * Its trusted keys and, for --remote-upload, the signing key come from --trusted-key and
 * --signing-key, else the environment, else wmb.json (src/trust/trust-config.ts); they are read
 * only when a remote cache is configured. */
export async function openRemoteCache(
  store: Store,
  flags: { remoteCache?: string; noRemoteCache?: boolean; remoteUpload?: boolean; plainHttp?: boolean; signingKey?: string; trustedKeys?: string[] },
  config: WorkspaceConfig,
  warn: (message: string) => void,
  root?: string,
): Promise<RemoteCache | undefined> {
  const url = flags.noRemoteCache ? undefined : (flags.remoteCache ?? (process.env.WMB_REMOTE_CACHE || undefined) ?? config.remote_cache);
  if (!url) {
    if (flags.remoteUpload) throw new WmbError("USAGE", "--remote-upload needs a remote cache: pass --remote-cache oci://<registry>/<repository>, set WMB_REMOTE_CACHE, or add remote_cache to wmb.json.");
    return undefined;
  }
  // Loaded only when one is configured: a build without a remote pays nothing for it.
  const { RemoteCache } = await import("../remote/action-cache.ts");
  const trust = await trustForCommand(flags, root === undefined ? undefined : { root, config }, { sign: flags.remoteUpload });
  return new RemoteCache(store, { url, upload: flags.remoteUpload, plainHttp: flags.plainHttp || config.plain_http, warn, trust });
}

