// Signatures on remote-cache results (docs/TRUST.md, "Result fingerprint"): `--remote-upload`
// with a signing key attaches to each result's manifest a DSSE envelope over the result's
// fingerprint (src/trust/result-fingerprint.ts); with trusted keys configured a result is a hit
// only when one of them signed exactly it. The envelopes are checked on bytes before anything
// reads them, and the fingerprint is built again here from the key the build looked up and the
// result it received, then compared as bytes: nothing the signed document says is believed.
import { DSSE_MEDIA_TYPE, encodeEnvelope, parseEnvelope, signEnvelope, verifyEnvelope } from "../trust/dsse.ts";
import { RESULT_FINGERPRINT_TYPE, resultFingerprintBytes, resultFingerprintMismatch, type ResultToSign } from "../trust/result-fingerprint.ts";
import type { PublicKey, SigningKey } from "../trust/keys.ts";
import type { ActionKey } from "../digest.ts";
import { WmbError } from "../errors.ts";

/** The artifactType of a result's signature manifest (its one layer: DSSE_MEDIA_TYPE). */
export const RESULT_SIGNATURE_ARTIFACT_TYPE = "application/vnd.wmb.action.result.signature.v1";
export { DSSE_MEDIA_TYPE };

/** The envelope bytes `--remote-upload` attaches to the result of `key`. */
export function signResult(signer: SigningKey, key: ActionKey, result: ResultToSign): Buffer {
  return encodeEnvelope(signEnvelope(RESULT_FINGERPRINT_TYPE, resultFingerprintBytes(key, result), signer));
}

/** Why a result is not taken, when no trusted key vouches for it. */
export type IgnoredWhy = "unsigned" | "untrusted" | "bad";

export type ResultVerdict =
  | { trusted: true; signers: string[] }
  | { trusted: false; why: IgnoredWhy; /** keyids of untrusted signers, or of bad signatures */ signers: string[]; detail?: string };

/**
 * What the envelopes attached to a result say about it as the answer to `key`. Trusted when one
 * envelope carries a valid signature by a trusted key over exactly this result's fingerprint;
 * else "bad" (a trusted key's name on a signature that does not check, or a valid one over
 * another result: copied from one, or over bytes changed since), "untrusted" (signed only by
 * keys not trusted here), or "unsigned" (no envelope at all).
 */
export function judgeResult(envelopes: readonly Uint8Array[], trusted: readonly PublicKey[], key: ActionKey, result: ResultToSign): ResultVerdict {
  if (envelopes.length === 0) return { trusted: false, why: "unsigned", signers: [] };
  const bad = new Set<string>();
  const untrusted = new Set<string>();
  let detail: string | undefined;
  for (const bytes of envelopes) {
    let verdict;
    try {
      verdict = verifyEnvelope(parseEnvelope(bytes, "a signature of the result"), trusted, RESULT_FINGERPRINT_TYPE, "a signature of the result");
    } catch (e) {
      if (!(e instanceof WmbError)) throw e;
      bad.add("(malformed)");
      detail ??= e.message.replace(/\.$/, "");
      continue;
    }
    if (verdict.payloadBytes) {
      const mismatch = resultFingerprintMismatch(verdict.payloadBytes, key, result);
      if (mismatch === undefined) return { trusted: true, signers: verdict.validSigners };
      for (const s of verdict.validSigners) bad.add(s);
      detail ??= mismatch;
    }
    for (const s of verdict.badSignatures) bad.add(s || "(no keyid)");
    for (const s of verdict.untrustedSigners) untrusted.add(s || "(no keyid)");
  }
  if (bad.size) return { trusted: false, why: "bad", signers: [...bad].sort(), ...(detail && { detail }) };
  return { trusted: false, why: "untrusted", signers: [...untrusted].sort() };
}

/** The remote results a build ignored for want of a trusted signature, said in ONE line at its end. */
export class IgnoredResults {
  private readonly counts: Record<IgnoredWhy, number> = { unsigned: 0, untrusted: 0, bad: 0 };
  private readonly untrustedSigners = new Set<string>();
  private firstBad?: string;

  add(label: string, v: Extract<ResultVerdict, { trusted: false }>): void {
    this.counts[v.why]++;
    if (v.why === "untrusted") for (const s of v.signers) this.untrustedSigners.add(s);
    if (v.why === "bad") this.firstBad ??= `${label}: ${v.detail ?? `claiming ${v.signers.join(", ")}`}`;
  }

  get total(): number {
    return this.counts.unsigned + this.counts.untrusted + this.counts.bad;
  }

  /** "9 remote results were not signed by a key trusted here (from --trusted-key), so they were
   * built here: 3 unsigned, 5 signed by keys not trusted (rogue), 1 with a bad signature (…)." */
  line(trustedFrom: string): string | undefined {
    const n = this.total;
    if (n === 0) return undefined;
    const parts: string[] = [];
    if (this.counts.unsigned) parts.push(`${this.counts.unsigned} unsigned`);
    if (this.counts.untrusted) parts.push(`${this.counts.untrusted} signed only by ${this.untrustedSigners.size === 1 ? "a key" : "keys"} not trusted here (${[...this.untrustedSigners].sort().join(", ")})`);
    if (this.counts.bad) parts.push(`${this.counts.bad} with a bad signature (first: ${this.firstBad})`);
    return `${n} remote result${n === 1 ? " was" : "s were"} ignored and built here, not signed by a key trusted by ${trustedFrom}: ${parts.join(", ")}.`;
  }
}
