// Strict base64 (RFC 4648). Node's decoder skips characters outside the alphabet and ignores
// stray bits, so two different strings can decode to the same bytes; a key or a signature
// must have exactly one spelling, so anything Node would silently repair is refused here.

const STANDARD = /^[A-Za-z0-9+/]*={0,2}$/;
const URL_SAFE = /^[A-Za-z0-9_-]*={0,2}$/;

export type Base64Alphabets = "standard" | "standard or url-safe";

/** The bytes `text` spells, or undefined when it is not canonical base64 in the alphabets given
 * (padding is required for the standard alphabet alone; DSSE allows either alphabet, padded
 * or not). */
export function decodeBase64(text: string, alphabets: Base64Alphabets): Buffer | undefined {
  const standard = STANDARD.test(text);
  const urlSafe = !standard && alphabets !== "standard" && URL_SAFE.test(text);
  if (!standard && !urlSafe) return undefined;
  const body = text.replace(/=+$/, "");
  const padded = body.length !== text.length;
  if (body.length % 4 === 1) return undefined;
  if (padded && text.length % 4 !== 0) return undefined;
  if (!padded && alphabets === "standard" && body.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(text, standard ? "base64" : "base64url");
  // Re-encoding gives the input back only if no bit was ignored (a non-zero tail, extra padding).
  let again = bytes.toString(standard ? "base64" : "base64url").replace(/=+$/, "");
  if (padded) again = again.padEnd(text.length, "=");
  return again === text ? bytes : undefined;
}

/** Standard base64 with padding: what wmb writes (Nix's keys, DSSE envelopes). */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}
