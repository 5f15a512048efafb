// The flags a command that signs or checks signatures takes, and the keys they give
// (src/trust/trust-config.ts has the precedence: flag, then environment, then wmb.json).
//   signingKey = signingKeyOption();
//   trustedKeys = trustedKeyOption();
//   … trustForCommand(this, { sign: this.remoteUpload })
import { Option } from "clipanion";
import type { Trust } from "../trust/trust-config.ts";
import type { WorkspaceConfig } from "../workspace-config.ts";

export function signingKeyOption() {
  return Option.String("--signing-key", { description: "Sign with this secret key file (default: WMB_SIGNING_KEY, else wmb.json signing_key)" });
}

export function trustedKeyOption() {
  return Option.Array("--trusted-key", { description: "Trust signatures by this public key, NAME:BASE64 (repeatable; default: WMB_TRUSTED_KEYS, else wmb.json trusted_keys)" });
}

/** The keys for a command with those two options; `workspace` is its root and wmb.json, when it
 * has a workspace (a command run outside one still takes flags and the environment). */
export async function trustForCommand(
  flags: { signingKey?: string; trustedKeys?: string[] },
  workspace: { root: string; config: WorkspaceConfig } | undefined,
  opts: { sign?: boolean } = {},
): Promise<Trust> {
  const { trustFrom } = await import("../trust/trust-config.ts");
  return trustFrom({ flags, workspace }, opts);
}
