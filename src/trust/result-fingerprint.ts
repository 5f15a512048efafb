// What a signature on a remote-cache result covers: the action key, every output's path, BLAKE3,
// size and executable bit, and how the result was made. Like Nix's `ValidPathInfo::fingerprint`,
// the checker does not trust a field of the signed document: it builds the fingerprint again
// from the key it looked up and the result it holds, and compares bytes.
//
// The bytes are the RFC 8785 (JCS) encoding of `ResultFingerprint`, not a Nix-like line: output
// paths may hold any character (`;`, `:`, newlines), which a line would need its own escaping
// for, and JCS is already the one canonical encoding wmb's keys and seals rely on.
//   {"action_key":"<64 hex>","outputs":[{"blake3":"<64 hex>","executable":false,"path":"out.txt","size":6}],"sandbox":"bwrap"}
import { canonicalBytes } from "../formats/jcs.ts";
import type { ActionKey, Digest } from "../digest.ts";
import type { SandboxUse } from "../sandbox.ts";
import { array, hex64, object, parseCanonical, refusal, string, type Refuse } from "./signed-json.ts";

/** The DSSE payloadType of a result fingerprint. */
export const RESULT_FINGERPRINT_TYPE = "application/vnd.wmb.result-fingerprint.v1+json";

const SANDBOX_USES = ["bwrap", "in-process", "none"] as const satisfies readonly SandboxUse[];

/** The signed document. Members are exactly these; outputs are sorted by path. */
export interface ResultFingerprint {
  /** The key the result answers: a signature copied onto another key's result does not match. */
  action_key: ActionKey;
  /** How it was made (store/migration-4-sandboxed.sql): a bwrap build takes no `none` result. */
  sandbox: SandboxUse;
  outputs: FingerprintOutput[];
}

export interface FingerprintOutput {
  /** Relative to the action's directory, as the result names it. */
  path: string;
  blake3: Digest;
  size: number;
  executable: boolean;
}

/** A result as the remote cache holds it (RemoteResult in src/remote/action-cache.ts fits). */
export interface ResultToSign {
  sandbox?: SandboxUse;
  outputs: Readonly<Record<string, { blake3: Digest | string; size: number; executable: boolean }>>;
}

/** The fingerprint of `result` as the answer to `key`. */
export function resultFingerprint(key: ActionKey, result: ResultToSign): ResultFingerprint {
  if (!result.sandbox) throw new Error(`the result of ${key} does not say how it was made, so it cannot be signed`);
  const outputs = Object.entries(result.outputs)
    .map(([path, o]) => ({ path, blake3: o.blake3 as Digest, size: o.size, executable: o.executable }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { action_key: key, sandbox: result.sandbox, outputs };
}

/** The bytes a result's signature is over (the DSSE payload, payloadType RESULT_FINGERPRINT_TYPE). */
export function resultFingerprintBytes(key: ActionKey, result: ResultToSign): Uint8Array {
  return canonicalBytes(resultFingerprint(key, result));
}

/**
 * Whether verified payload bytes are the fingerprint of `result` as the answer to `key` (the key
 * the build looked up, never one the remote document names): undefined when they are, else what
 * differs, as words for "the remote result of //x is not the one signed: <what>".
 */
export function resultFingerprintMismatch(payload: Uint8Array, key: ActionKey, result: ResultToSign): string | undefined {
  const expected = result.sandbox ? resultFingerprintBytes(key, result) : undefined;
  if (expected && Buffer.from(expected).equals(payload)) return undefined;
  let signed: ResultFingerprint;
  try {
    signed = parseResultFingerprint(payload, "the signed fingerprint");
  } catch (e) {
    return (e as Error).message.replace(/\.$/, "");
  }
  if (signed.action_key !== key) return `the signature is for action key ${signed.action_key}, not ${key}`;
  if (signed.sandbox !== result.sandbox) return `it was signed as made with sandbox ${signed.sandbox}, and the result says ${result.sandbox ?? "nothing"}`;
  const have = resultFingerprint(key, result).outputs;
  const signedPaths = signed.outputs.map((o) => o.path).join("\0");
  if (have.map((o) => o.path).join("\0") !== signedPaths) return `it was signed with outputs ${signed.outputs.map((o) => o.path).join(", ")}, and the result has ${have.map((o) => o.path).join(", ")}`;
  for (let i = 0; i < have.length; i++) {
    const [h, s] = [have[i]!, signed.outputs[i]!];
    for (const field of ["blake3", "size", "executable"] as const) {
      if (h[field] !== s[field]) return `output ${h.path} has ${field} ${h[field]}, and the signed one ${s[field]}`;
    }
  }
  return "its bytes are not the fingerprint of this result";
}

/** A fingerprint from verified payload bytes, every member checked (INTEGRITY otherwise). */
export function parseResultFingerprint(payload: Uint8Array, source: string): ResultFingerprint {
  const refuse = refusal(source, "a wmb result fingerprint");
  const doc = parseCanonical(payload, refuse);
  exactly(doc, ["action_key", "outputs", "sandbox"], "it", refuse);
  const action_key = hex64(doc.action_key, "action_key", refuse) as ActionKey;
  const sandbox = doc.sandbox as SandboxUse;
  if (!(SANDBOX_USES as readonly unknown[]).includes(sandbox)) refuse(`sandbox is not one of ${SANDBOX_USES.join(", ")}`);
  let previous: string | undefined;
  const outputs = array(doc.outputs, "outputs", refuse).map((v, i): FingerprintOutput => {
    const at = `outputs[${i}]`;
    const o = object(v, at, refuse);
    exactly(o, ["blake3", "executable", "path", "size"], at, refuse);
    const path = string(o.path, `${at}.path`, refuse);
    if (previous !== undefined && !(previous < path)) refuse(`${at}.path is not after ${JSON.stringify(previous)} (outputs are sorted by path, each once)`);
    previous = path;
    if (!Number.isSafeInteger(o.size) || (o.size as number) < 0) refuse(`${at}.size is not a byte count`);
    if (typeof o.executable !== "boolean") refuse(`${at}.executable is not true or false`);
    return { path, blake3: hex64(o.blake3, `${at}.blake3`, refuse) as Digest, size: o.size as number, executable: o.executable as boolean };
  });
  return { action_key, sandbox, outputs };
}

function exactly(o: Record<string, unknown>, names: readonly string[], at: string, refuse: Refuse): void {
  const extra = Object.keys(o).filter((k) => !names.includes(k));
  if (extra.length) refuse(`${at} has member${extra.length === 1 ? "" : "s"} ${extra.map((k) => JSON.stringify(k)).join(", ")} that a v1 fingerprint does not`);
  const missing = names.filter((k) => !(k in o));
  if (missing.length) refuse(`${at} lacks ${missing.map((k) => JSON.stringify(k)).join(", ")}`);
}
