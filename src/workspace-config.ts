// wmb.json at the workspace root: settings a team checks in so every clone and CI share them.
//   { "remote_cache": "oci://<registry>/<repository>", "plain_http": false, "sandbox": "auto",
//     "signing_key": "~/.config/wmb/keys/ci.secret", "trusted_keys": ["ci:BASE64"] }
// Flags override it, and environment variables (WMB_REMOTE_CACHE, WMB_SANDBOX, WMB_SIGNING_KEY,
// WMB_TRUSTED_KEYS) override it too. The keys' own format is checked where they are used
// (src/trust/trust-config.ts): a command that uses no key pays nothing for them.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { WmbError } from "./errors.ts";
import { SANDBOX_MODES, type SandboxMode } from "./sandbox.ts";

export const CONFIG_FILE = "wmb.json";

export interface WorkspaceConfig {
  remote_cache?: string;
  plain_http?: boolean;
  sandbox?: SandboxMode;
  /** A secret key file, relative to the workspace (or `~/…`): keep it outside the workspace. */
  signing_key?: string;
  /** Public keys as `NAME:BASE64`. */
  trusted_keys?: string[];
}

const KEYS = ["remote_cache", "plain_http", "sandbox", "signing_key", "trusted_keys"];

export function readWorkspaceConfig(root: string): WorkspaceConfig {
  const file = join(root, CONFIG_FILE);
  if (!existsSync(file)) return {};
  const bad = (why: string): never => {
    throw new WmbError("USAGE", `${file} ${why}; see README "Configuration".`, { subject: file });
  };
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    return bad(`is not valid JSON (${(e as Error).message})`);
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) return bad("must hold a JSON object");
  const c = value as Record<string, unknown>;
  const unknown = Object.keys(c).filter((k) => !KEYS.includes(k));
  if (unknown.length) bad(`has unknown setting${unknown.length === 1 ? "" : "s"} ${unknown.map((k) => `"${k}"`).join(", ")} (known: ${KEYS.join(", ")})`);
  if (c.remote_cache !== undefined && (typeof c.remote_cache !== "string" || !c.remote_cache.startsWith("oci://"))) bad('has a "remote_cache" that is not an oci:// repository');
  if (c.plain_http !== undefined && typeof c.plain_http !== "boolean") bad('has a "plain_http" that is not true or false');
  if (c.sandbox !== undefined && !(SANDBOX_MODES as readonly unknown[]).includes(c.sandbox)) bad(`has a "sandbox" that is not one of ${SANDBOX_MODES.join(", ")}`);
  if (c.signing_key !== undefined && (typeof c.signing_key !== "string" || c.signing_key === "")) bad('has a "signing_key" that is not a file path');
  if (c.trusted_keys !== undefined && (!Array.isArray(c.trusted_keys) || !c.trusted_keys.every((k) => typeof k === "string"))) bad('has a "trusted_keys" that is not an array of "NAME:BASE64" strings');
  return c as WorkspaceConfig;
}
