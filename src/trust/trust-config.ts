// Where a command's keys come from. The signing key: --signing-key FILE, else WMB_SIGNING_KEY
// (a file path), else wmb.json's `signing_key` (relative to the workspace; `~/` is the home
// directory). The trusted keys: --trusted-key NAME:BASE64 (repeatable), else WMB_TRUSTED_KEYS
// (comma-separated), else wmb.json's `trusted_keys`. The first source that says anything wins
// whole: keys are never merged across sources, so removing a key from the one in use removes it.
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { WmbError } from "../errors.ts";
import { CONFIG_FILE, type WorkspaceConfig } from "../workspace-config.ts";
import { parsePublicKey, readSigningKey, type PublicKey, type SigningKey } from "./keys.ts";

export interface TrustSources {
  flags?: { signingKey?: string; trustedKeys?: readonly string[] };
  /** Default: process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** The workspace and its wmb.json, when the command has one. */
  workspace?: { root: string; config: WorkspaceConfig };
  /** What a flag's or the environment's relative path is relative to; default process.cwd(). */
  cwd?: string;
}

export interface Trust {
  /** The keys whose signatures count. With `trustedFrom` set and none listed, nothing counts. */
  trusted: PublicKey[];
  /** Where the trusted keys came from ("--trusted-key", "WMB_TRUSTED_KEYS", "<ws>/wmb.json");
   * undefined when none are configured: remote results and machines are then unauthenticated. */
  trustedFrom?: string;
  /** The signing key's file and where it was named, when one is configured (not read yet). */
  signingKeyFile?: { path: string; from: string };
  /** The signing key, read only when `trustFrom` was asked to (`sign: true`). */
  signer?: SigningKey;
}

/** The keys a command works with. `sign: true` reads the signing key too (a command that signs
 * nothing never opens it, so a key with wrong permissions stops only commands that use it). */
export function trustFrom(sources: TrustSources, opts: { sign?: boolean } = {}): Trust {
  const { keys, from } = trustedKeysFrom(sources);
  const file = signingKeyFileFrom(sources);
  const trust: Trust = { trusted: keys };
  if (from) trust.trustedFrom = from;
  if (file) trust.signingKeyFile = file;
  if (opts.sign && file) trust.signer = readSigningKey(file.path, file.from);
  return trust;
}

export function trustedKeysFrom(sources: TrustSources): { keys: PublicKey[]; from?: string } {
  const env = sources.env ?? process.env;
  const flag = sources.flags?.trustedKeys;
  if (flag && flag.length > 0) return { keys: parseAll(flag, "--trusted-key"), from: "--trusted-key" };
  const listed = env.WMB_TRUSTED_KEYS;
  if (listed) return { keys: parseAll(listed.split(",").map((k) => k.trim()).filter((k) => k !== ""), "WMB_TRUSTED_KEYS"), from: "WMB_TRUSTED_KEYS" };
  const ws = sources.workspace;
  if (ws?.config.trusted_keys) {
    const from = join(ws.root, CONFIG_FILE);
    return { keys: parseAll(ws.config.trusted_keys, `${from} trusted_keys`), from };
  }
  return { keys: [] };
}

export function signingKeyFileFrom(sources: TrustSources): { path: string; from: string } | undefined {
  const env = sources.env ?? process.env;
  const cwd = sources.cwd ?? process.cwd();
  if (sources.flags?.signingKey) return { path: resolve(cwd, sources.flags.signingKey), from: "--signing-key" };
  if (env.WMB_SIGNING_KEY) return { path: resolve(cwd, env.WMB_SIGNING_KEY), from: "WMB_SIGNING_KEY" };
  const configured = sources.workspace?.config.signing_key;
  if (configured) {
    const home = env.HOME || homedir();
    const path = configured === "~" || configured.startsWith("~/") ? join(home, configured.slice(1)) : resolve(sources.workspace!.root, configured);
    return { path, from: `${join(sources.workspace!.root, CONFIG_FILE)} signing_key` };
  }
  return undefined;
}

function parseAll(texts: readonly string[], source: string): PublicKey[] {
  const keys: PublicKey[] = [];
  texts.forEach((text, i) => {
    const key = parsePublicKey(text, texts.length === 1 ? source : `${source} entry ${i + 1}`);
    const same = keys.find((k) => k.name === key.name);
    if (!same) keys.push(key);
    else if (!same.equals(key)) {
      throw new WmbError("USAGE", `${source} names two different keys ${key.name}; give each key its own name (e.g. ${key.name}-2025 and ${key.name}-2026 while rotating).`, { subject: source });
    }
  });
  return keys;
}
