// BLAKE3 digests. Bulk hashing uses a native implementation (@napi-rs/blake-hash, several
// GB/s); @noble/hashes is the pure-JS reference the tests cross-check against, and the
// fallback when the native binary cannot load on a platform.
import { createReadStream } from "node:fs";
import { createRequire } from "node:module";
import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { readSmallFile } from "./read-small-file.ts";

/** Lowercase hex BLAKE3 of some bytes. Branded so a key is never passed as a content digest. */
export type Digest = string & { readonly __brand: "Digest" };
/** Lowercase hex BLAKE3 of an action's canonical key inputs. */
export type ActionKey = string & { readonly __brand: "ActionKey" };

interface Hasher {
  update(data: Uint8Array): void;
  hex(): string;
}

type NativeCtor = new () => { update(b: Uint8Array): void; digest(enc: "hex"): string };
interface NativeModule {
  Blake3Hasher: NativeCtor;
  /** One-shot: three times cheaper than a hasher object for the small inputs keys are. */
  blake3(data: Uint8Array | string): Buffer;
}

let native: NativeModule | null | undefined;

/** The native module, loaded on first use (a command that hashes nothing never dlopens it). */
function nativeModule(): NativeModule | undefined {
  if (native === undefined) {
    native = null;
    if (process.env.WMB_PURE_JS_HASH !== "1") {
      try {
        native = loadNative();
      } catch {
        // No build for this platform: the pure-JS reference does the work, slower.
      }
    }
  }
  return native ?? undefined;
}

/** The platform's own package first: the package's index probes the C library and tries a dozen
 * file names before it gets there, which costs more than the dlopen itself (start-up, #12). */
function loadNative(): NativeModule {
  const require = createRequire(import.meta.url);
  const platform = `@napi-rs/blake-hash-${process.platform}-${process.arch}${process.platform === "linux" ? "-gnu" : ""}`;
  try {
    return require(platform) as NativeModule;
  } catch {
    return require("@napi-rs/blake-hash") as NativeModule;
  }
}

function nativeHasher(): NativeCtor | undefined {
  return nativeModule()?.Blake3Hasher;
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

/** A string is hashed as its UTF-8 bytes (the native module takes it as is: no copy to make). */
export function hashBytes(data: Uint8Array | string): Digest {
  const mod = nativeModule();
  if (mod) return mod.blake3(data).toString("hex") as Digest;
  return bytesToHex(nobleBlake3(typeof data === "string" ? Buffer.from(data, "utf8") : data)) as Digest;
}

/** The reference implementation, for cross-checks. */
export function hashBytesReference(data: Uint8Array): Digest {
  return bytesToHex(nobleBlake3(data)) as Digest;
}

/** Files up to this size are read and hashed in one synchronous call: for the small files most
 * actions make, that is several times faster than a stream's asynchronous reads. */
const SMALL_FILE = 4 << 20;

export async function hashFile(path: string): Promise<{ digest: Digest; size: number }> {
  const small = hashSmallFile(path);
  if (small) return small;
  const h = newHasher();
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const b = chunk as Buffer;
    size += b.length;
    h.update(b);
  }
  return { digest: h.hex() as Digest, size };
}

/** The digest of a file of at most SMALL_FILE bytes, read synchronously; undefined for a larger one. */
export function hashSmallFile(path: string): { digest: Digest; size: number } | undefined {
  const bytes = readSmallFile(path, SMALL_FILE);
  return bytes && { digest: hashBytes(bytes), size: bytes.length };
}
