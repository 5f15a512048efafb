// Reading a signed JSON payload. wmb writes every payload as RFC 8785 (JCS) bytes, and reads one
// only if it is exactly those bytes again: a document with a duplicate member name, or any other
// spelling that two JSON parsers could read differently, is refused, so what was signed is what
// is read. The shape helpers give the one sentence a wrong field gets, naming its JSON path.
import { canonicalize } from "../formats/jcs.ts";
import { WmbError } from "../errors.ts";

export type Json = Record<string, unknown>;

/** What a malformed payload throws: INTEGRITY, "<source> is not <what>: <why>." */
export type Refuse = (why: string) => never;

export function refusal(source: string, what: string): Refuse {
  return (why) => {
    throw new WmbError("INTEGRITY", `${source} is not ${what}: ${why}.`, { subject: source });
  };
}

/** The JSON object `bytes` hold, when they are its canonical (JCS) encoding. */
export function parseCanonical(bytes: Uint8Array, refuse: Refuse): Json {
  let text: string;
  let value: unknown;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    value = JSON.parse(text);
  } catch (e) {
    return refuse(e instanceof SyntaxError ? `it is not JSON (${e.message})` : "it is not UTF-8");
  }
  if (!isJson(value)) return refuse("it is not a JSON object");
  let again: string;
  try {
    again = canonicalize(value);
  } catch (e) {
    return refuse((e as Error).message.replace(/\.$/, ""));
  }
  if (again !== text) return refuse("it is not in canonical JSON form (RFC 8785: sorted members, no spaces, no duplicate names)");
  return value;
}

export function isJson(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Field readers: each returns the value, or refuses naming `path`. */
export function object(v: unknown, path: string, refuse: Refuse): Json {
  return isJson(v) ? v : refuse(`${path} is not an object`);
}

export function string(v: unknown, path: string, refuse: Refuse): string {
  return typeof v === "string" && v !== "" ? v : refuse(`${path} is missing or not a non-empty string`);
}

export function optionalString(v: unknown, path: string, refuse: Refuse): string | undefined {
  return v === undefined ? undefined : string(v, path, refuse);
}

export function array(v: unknown, path: string, refuse: Refuse): unknown[] {
  return Array.isArray(v) ? v : refuse(`${path} is missing or not an array`);
}

const HEX64 = /^[0-9a-f]{64}$/;

/** 64 lowercase hex digits (a BLAKE3 or sha256 digest). */
export function hex64(v: unknown, path: string, refuse: Refuse): string {
  return typeof v === "string" && HEX64.test(v) ? v : refuse(`${path} is not 64 lowercase hex digits`);
}

/** `<algorithm>:<64 hex>`, as wmb writes identities and OCI digests. */
export function prefixedDigest(v: unknown, algorithm: "blake3" | "sha256", path: string, refuse: Refuse): string {
  return typeof v === "string" && v.startsWith(`${algorithm}:`) && HEX64.test(v.slice(algorithm.length + 1)) ? v : refuse(`${path} is not ${algorithm}:<64 hex digits>`);
}

/** RFC 3339 date-time in UTC with a Z, as in-toto and SLSA write timestamps. */
export function optionalTimestamp(v: unknown, path: string, refuse: Refuse): string | undefined {
  if (v === undefined) return undefined;
  return typeof v === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v) && !Number.isNaN(Date.parse(v)) ? v : refuse(`${path} is not an RFC 3339 UTC timestamp`);
}
