// src/digest.ts for the page (bin/web-bundle.mjs puts it in its place): the same lowercase hex
// BLAKE3, from @noble/hashes, the pure-JS implementation wmb's tests cross-check the native one with.
import { blake3 } from "@noble/hashes/blake3.js";
import { bytesToHex } from "@noble/hashes/utils.js";

export type Digest = string & { readonly __brand: "Digest" };
export type ActionKey = string & { readonly __brand: "ActionKey" };

export function hashBytes(data: Uint8Array | string): Digest {
  return bytesToHex(blake3(typeof data === "string" ? new TextEncoder().encode(data) : data)) as Digest;
}
