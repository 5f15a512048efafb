// A blob is streamed to a temporary file while it is hashed, sha256 and BLAKE3 in one pass, and
// never held whole: memory stays flat whatever size a remote claims or sends. The size it was
// said to have is checked before the first byte (against the response's Content-Length) and
// after the last; a body that goes on past it is cut off there.
import { createHash } from "node:crypto";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { newHasher, type Digest } from "../../digest.ts";
import { WmbError } from "../../errors.ts";
import { uniqueSuffix } from "../../unique-name.ts";
import { brokenBody, declaredLength } from "./bounded-body.ts";

export interface Download {
  /** The temporary file: the caller admits it (store.moveFile) or removes it. */
  path: string;
  size: number;
  /** "sha256:<hex>" */
  sha256: string;
  /** BLAKE3 hex */
  blake3: Digest;
}

const WRITE_BYTES = 1 << 20;

/** The store's temp directory (cas/tmp): a rename away from the store, and `store fsck --repair`
 * clears what a crash leaves there. */
export function storeTempDir(store: { dir: string }): string {
  return join(store.dir, "cas", "tmp");
}

/** Write `res`'s body, which must be exactly `size` bytes, to a new file in `dir`. */
export async function download(res: Response, o: { dir: string; size: number; what: string }): Promise<Download> {
  const refuse = (how: string) => new WmbError("INTEGRITY", `${o.what} ${how} the ${o.size} bytes it should be; nothing was admitted.`, { subject: o.what });
  const declared = declaredLength(res);
  if (declared !== undefined && declared !== o.size) {
    await res.body?.cancel().catch(() => {});
    throw refuse(`is ${declared} bytes by its Content-Length, not`);
  }
  const path = join(o.dir, `download-${uniqueSuffix()}`);
  const file = await open(path, "wx", 0o600);
  const sha256 = createHash("sha256");
  const blake3 = newHasher();
  let size = 0;
  let done = false;
  // Written a MiB (or 256 chunks) at a time: a write per network chunk would be a thread-pool round trip each.
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    try {
      if (pendingBytes) await file.writev(pending);
    } catch (e) {
      throw new WmbError("STORE", `Cannot write ${o.what} to ${o.dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); free some space there and try again.`, { subject: o.dir });
    }
    pending = [];
    pendingBytes = 0;
  };
  try {
    if (res.body) {
      const reader = res.body.getReader();
      try {
        for (;;) {
          const chunk = await reader.read();
          if (chunk.done) break;
          size += chunk.value.length;
          if (size > o.size) throw refuse("goes on past");
          sha256.update(chunk.value);
          blake3.update(chunk.value);
          pending.push(chunk.value);
          pendingBytes += chunk.value.length;
          if (pendingBytes >= WRITE_BYTES || pending.length >= 256) await flush();
        }
      } catch (e) {
        await reader.cancel().catch(() => {});
        throw brokenBody(o.what, e);
      }
    }
    await flush();
    if (size < o.size) throw refuse(`ended after ${size} bytes, short of`);
    done = true;
    return { path, size, sha256: `sha256:${sha256.digest("hex")}`, blake3: blake3.hex() as Digest };
  } finally {
    await file.close();
    if (!done) await rm(path, { force: true });
  }
}
