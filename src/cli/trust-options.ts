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

/** The flags of a command that admits or runs a machine from a registry (pull, run, inspect). */
export function allowUnsignedOption() {
  return Option.Boolean("--allow-unsigned", false, { description: "Take a machine no trusted key signed, saying so loudly (with trusted keys configured it is refused otherwise)" });
}

export function requireRebuildsOption() {
  return Option.String("--require-rebuilds", { description: "Refuse a machine unless N distinct trusted keys, other than its signers, attest an identical rebuild (wmb verify --attest)" });
}

/** The machine policy of such a command: its trusted keys (flags, environment, the workspace's
 * wmb.json when it runs in one) and what it requires. */
export async function machinePolicyFor(
  flags: { trustedKeys?: string[]; allowUnsigned?: boolean; requireRebuilds?: string },
  workspace: () => string,
  warn: (message: string) => void,
): Promise<import("../remote/machine-trust.ts").MachinePolicy> {
  const { readWorkspaceConfig } = await import("../workspace-config.ts");
  const { WmbError } = await import("../errors.ts");
  let ws: { root: string; config: WorkspaceConfig } | undefined;
  try {
    const root = workspace();
    ws = { root, config: readWorkspaceConfig(root) };
  } catch (e) {
    // Outside a workspace (a pull anywhere): flags and the environment only.
    if (!(e instanceof WmbError) || e.code !== "BUILD_FILE") throw e;
  }
  const trust = await trustForCommand({ trustedKeys: flags.trustedKeys }, ws);
  let requireRebuilds: number | undefined;
  if (flags.requireRebuilds !== undefined) {
    requireRebuilds = Number(flags.requireRebuilds);
    if (!/^\d+$/.test(flags.requireRebuilds) || requireRebuilds < 1 || requireRebuilds > 64) {
      throw new WmbError("USAGE", `--require-rebuilds takes a count of rebuilders from 1 to 64, not ${JSON.stringify(flags.requireRebuilds.slice(0, 20))}.`);
    }
  }
  return { trusted: trust.trusted, trustedFrom: trust.trustedFrom, allowUnsigned: flags.allowUnsigned, requireRebuilds, warn };
}
