// BLAKE3 digests. Bulk hashing uses a native implementation (@napi-rs/blake-hash, several
// GB/s); @noble/hashes is the pure-JS reference the tests cross-check against, and the
// fallback when the native binary cannot load on a platform.
import { createReadStream } from "node:fs";
import { createRequire } from "node:module";
import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js";
import { bytesToHex } from "@noble/hashes/utils.js";

/** Lowercase hex BLAKE3 of some bytes. Branded so a key is never passed as a content digest. */
export type Digest = string & { readonly __brand: "Digest" };
/** Lowercase hex BLAKE3 of an action's canonical key inputs. */
export type ActionKey = string & { readonly __brand: "ActionKey" };

interface Hasher {
  update(data: Uint8Array): void;
  hex(): string;
}

type NativeCtor = new () => { update(b: Uint8Array): void; digest(enc: "hex"): string };

let native: NativeCtor | null | undefined;

/** The native hasher, loaded on first use (a command that hashes nothing never dlopens it). */
function nativeHasher(): NativeCtor | undefined {
  if (native === undefined) {
    native = null;
    if (process.env.WMB_PURE_JS_HASH !== "1") {
      try {
        const require = createRequire(import.meta.url);
        native = (require("@napi-rs/blake-hash") as { Blake3Hasher: NativeCtor }).Blake3Hasher;
      } catch {
        // No build for this platform: the pure-JS reference does the work, slower.
      }
    }
  }
  return native ?? undefined;
}

export function hashImplementation(): "native" | "noble" {
  return nativeHasher() ? "native" : "noble";
}

export function newHasher(): Hasher {
  const nativeCtor = nativeHasher();
  if (nativeCtor) {
    const h = new nativeCtor();
    return { update: (b) => h.update(b), hex: () => h.digest("hex") };
  }
  const h = nobleBlake3.create();
  return { update: (b) => void h.update(b), hex: () => bytesToHex(h.digest()) };
}

export function hashBytes(data: Uint8Array | string): Digest {
  const h = newHasher();
  h.update(typeof data === "string" ? Buffer.from(data, "utf8") : data);
  return h.hex() as Digest;
}

/** The reference implementation, for cross-checks. */
export function hashBytesReference(data: Uint8Array): Digest {
  return bytesToHex(nobleBlake3(data)) as Digest;
}

export async function hashFile(path: string): Promise<{ digest: Digest; size: number }> {
  const h = newHasher();
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const b = chunk as Buffer;
    size += b.length;
    h.update(b);
  }
  return { digest: h.hex() as Digest, size };
}
