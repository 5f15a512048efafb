// DSSE (Dead Simple Signing Envelope, github.com/secure-systems-lab/dsse v1.0): the one form of
// every wmb signature. A signature covers PAE(payloadType, payload), so the type of a document
// is signed with it, and verification works on bytes: `verifyEnvelope` checks the signatures
// first and hands out the payload only when a trusted key signed it (STYLE: verify before
// parsing). keyid is the signing key's NAME; as the spec says it is only a hint, used to pick
// the key to try, never to decide.
import { WmbError } from "../errors.ts";
import { decodeBase64, encodeBase64 } from "./base64.ts";
import type { PublicKey, SigningKey } from "./keys.ts";

export const DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json";
/** Larger envelopes are refused unread: the largest wmb writes (a provenance) is far smaller. */
export const MAX_ENVELOPE_BYTES = 4 << 20;
/** More signatures than this is not an envelope anyone made for wmb; it bounds the work. */
export const MAX_SIGNATURES = 32;

export interface DsseSignature {
  /** The signing key's name (unauthenticated: a hint for which trusted key to try). */
  keyid: string;
  /** Standard base64 of the 64-byte Ed25519 signature over PAE(payloadType, payload). */
  sig: string;
}

export interface DsseEnvelope {
  payloadType: string;
  /** Standard base64 of the payload's bytes. */
  payload: string;
  signatures: DsseSignature[];
}

/** DSSE's Pre-Authentication Encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, each
 * LEN the ASCII decimal byte length, no leading zeros. This is the exact byte string signed. */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, "utf8");
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `, "ascii"), type, Buffer.from(` ${payload.length} `, "ascii"), payload]);
}

/** An envelope of `payload` signed by each of `signers`. */
export function signEnvelope(payloadType: string, payload: Uint8Array, signers: SigningKey | readonly SigningKey[]): DsseEnvelope {
  const bytes = pae(payloadType, payload);
  const list = Array.isArray(signers) ? signers : [signers as SigningKey];
  return {
    payloadType,
    payload: encodeBase64(payload),
    signatures: list.map((s) => ({ keyid: s.name, sig: encodeBase64(s.sign(bytes)) })),
  };
}

/** The envelope as the bytes stored in a registry (`application/vnd.dsse.envelope.v1+json`). */
export function encodeEnvelope(envelope: DsseEnvelope): Buffer {
  return Buffer.from(JSON.stringify({ payloadType: envelope.payloadType, payload: envelope.payload, signatures: envelope.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })) }), "utf8");
}

/**
 * Envelope bytes from wherever they were read, checked for shape only (nothing here says who
 * signed it). `source` names them in the one sentence a malformed envelope gets (INTEGRITY).
 * Fields the spec does not define are ignored, as it requires; a `keyid` that is absent counts
 * as empty (the spec's rule), and such a signature is tried against every trusted key.
 */
export function parseEnvelope(bytes: Uint8Array, source: string): DsseEnvelope {
  const bad = (why: string): never => {
    throw new WmbError("INTEGRITY", `${source} is not a DSSE envelope: ${why}.`, { subject: source });
  };
  if (bytes.length > MAX_ENVELOPE_BYTES) bad(`it is ${bytes.length} bytes, more than the ${MAX_ENVELOPE_BYTES} an envelope may have`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    return bad(e instanceof SyntaxError ? `it is not JSON (${e.message})` : "it is not UTF-8");
  }
  if (!isObject(value)) return bad("it is not a JSON object");
  const { payloadType, payload, signatures } = value;
  if (typeof payloadType !== "string") return bad('its "payloadType" is missing or not a string');
  if (typeof payload !== "string") return bad('its "payload" is missing or not a string');
  if (!decodeBase64(payload, "standard or url-safe")) return bad('its "payload" is not base64');
  if (!Array.isArray(signatures)) return bad('its "signatures" is missing or not an array');
  if (signatures.length === 0) return bad("it has no signatures");
  if (signatures.length > MAX_SIGNATURES) return bad(`it has ${signatures.length} signatures, more than ${MAX_SIGNATURES}`);
  const sigs = signatures.map((s: unknown, i): DsseSignature => {
    if (!isObject(s)) return bad(`its signature ${i + 1} is not an object`);
    if (s.keyid !== undefined && typeof s.keyid !== "string") return bad(`the "keyid" of its signature ${i + 1} is not a string`);
    if (typeof s.sig !== "string") return bad(`its signature ${i + 1} has no "sig" string`);
    if (!decodeBase64(s.sig, "standard or url-safe")) return bad(`the "sig" of its signature ${i + 1} is not base64`);
    return { keyid: (s.keyid as string | undefined) ?? "", sig: s.sig };
  });
  return { payloadType, payload, signatures: sigs };
}

/** What the signatures of an envelope say, from the bytes alone. */
export interface EnvelopeVerdict {
  payloadType: string;
  /** The payload, present only when at least one trusted key signed it: what is not signed
   * is never parsed. */
  payloadBytes?: Uint8Array;
  /** Names of the trusted keys whose signature is valid (each once). */
  validSigners: string[];
  /** Those trusted keys themselves (each once). */
  validKeys: PublicKey[];
  /** keyids of signatures no trusted key has (each once; "" for an absent keyid). */
  untrustedSigners: string[];
  /** keyids of signatures that name a trusted key but are not its signature of these bytes:
   * a signature copied from other bytes, or bytes changed after signing. */
  badSignatures: string[];
}

/**
 * Checks every signature of `envelope` over PAE(payloadType, payload) against the trusted keys,
 * before anything reads the payload. A payloadType other than `expectedType` is refused
 * (INTEGRITY): a signature over one kind of document never stands for another.
 */
export function verifyEnvelope(envelope: DsseEnvelope, trusted: readonly PublicKey[], expectedType: string, source = "the envelope"): EnvelopeVerdict {
  if (envelope.payloadType !== expectedType) {
    throw new WmbError("INTEGRITY", `${source} holds a ${JSON.stringify(envelope.payloadType)} document where a ${JSON.stringify(expectedType)} one belongs.`, { subject: source });
  }
  const payload = decodeBase64(envelope.payload, "standard or url-safe");
  if (!payload) throw new WmbError("INTEGRITY", `${source} is not a DSSE envelope: its "payload" is not base64.`, { subject: source });
  const signed = pae(envelope.payloadType, payload);
  const valid = new Set<string>();
  const validKeys = new Set<PublicKey>();
  const untrusted = new Set<string>();
  const bad = new Set<string>();
  for (const s of envelope.signatures) {
    const sig = decodeBase64(s.sig, "standard or url-safe");
    // The keyid narrows the keys to try (all of them when it is empty); it decides nothing.
    const candidates = s.keyid ? trusted.filter((k) => k.name === s.keyid) : trusted;
    const by = sig && candidates.find((k) => k.verify(signed, sig));
    if (by) {
      valid.add(by.name);
      validKeys.add(by);
    }
    else if (s.keyid && candidates.length === 0) untrusted.add(s.keyid);
    else if (!s.keyid && trusted.length === 0) untrusted.add("");
    else bad.add(s.keyid);
  }
  const verdict: EnvelopeVerdict = { payloadType: envelope.payloadType, validSigners: [...valid], validKeys: [...validKeys], untrustedSigners: [...untrusted], badSignatures: [...bad] };
  if (valid.size > 0) verdict.payloadBytes = payload;
  return verdict;
}

/** Why no trusted key vouches for what `verdict` is about, in words ("signed only by an
 * untrusted key ci-old; a bad signature by ci"), or undefined when one does. */
export function untrustedReason(verdict: EnvelopeVerdict): string | undefined {
  if (verdict.validSigners.length > 0) return undefined;
  const parts: string[] = [];
  const names = (keys: string[]) => keys.map((k) => (k === "" ? "(no keyid)" : k)).join(", ");
  if (verdict.untrustedSigners.length) parts.push(`signed by ${verdict.untrustedSigners.length === 1 ? "a key" : "keys"} not trusted here: ${names(verdict.untrustedSigners)}`);
  if (verdict.badSignatures.length) parts.push(`a bad signature claiming ${names(verdict.badSignatures)}`);
  return parts.join("; ");
}

/** The payload of an envelope whose signatures were NOT checked: for showing what a document
 * claims (`inspect` without trusted keys), never for deciding anything. */
export function unverifiedPayload(envelope: DsseEnvelope): Uint8Array | undefined {
  return decodeBase64(envelope.payload, "standard or url-safe");
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
