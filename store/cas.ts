// Blob storage on disk: cas/<first 2 hex>/<other 62 hex>, named by BLAKE3.
// Writes are atomic: temp file in cas/tmp, fsync, chmod read-only, rename over whatever is there.
import { uniqueSuffix } from "../src/unique-name.ts";
import { chmodSync, closeSync, constants as fsc, copyFileSync, fsync, mkdirSync, openSync, promises as fsp, renameSync, rmSync, statSync, writeFileSync, type BigIntStats, type Stats } from "node:fs";
import { promisify } from "node:util";
import { join } from "node:path";
import { hashFile, type Digest } from "../src/digest.ts";

/** The stat signature recorded when a blob was last verified, if the index has one. */
export type VerifiedSig = (digest: Digest) => string | undefined;

const fsyncFd = promisify(fsync);

// The small steps of admitting a blob are synchronous calls: each is microseconds, while an
// asynchronous one costs a thread-pool round trip, and an action makes several. Only the fsync,
// which can take long on a slow disk, stays asynchronous.
export class Cas {
  readonly root: string;
  private readonly tmpDir: string;
  /** Shard directories known to exist. */
  private readonly shards = new Set<string>();

  constructor(storeDir: string) {
    this.root = join(storeDir, "cas");
    this.tmpDir = join(this.root, "tmp");
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.tmpDir, { recursive: true });
  }

  path(digest: Digest): string {
    return blobPath(this.root, digest);
  }

  /** Copy `src` into the CAS under its digest (computed here), atomically. `verifiedSig` gives
   * the stat signature a blob had when last verified (see adoptTemp). */
  async putFile(src: string, verifiedSig: VerifiedSig): Promise<{ digest: Digest; size: number; statSig: string }> {
    const tmp = this.tempPath();
    copyFileSync(src, tmp, fsc.COPYFILE_FICLONE);
    return this.adoptTemp(tmp, verifiedSig);
  }

  /** Like putFile, but moves `src` (a file nothing else will use, e.g. an action's output in a
   * sandbox about to be removed) instead of copying it. */
  async moveFile(src: string, verifiedSig: VerifiedSig): Promise<{ digest: Digest; size: number; statSig: string }> {
    const tmp = this.tempPath();
    try {
      renameSync(src, tmp);
    } catch {
      copyFileSync(src, tmp, fsc.COPYFILE_FICLONE); // another filesystem
    }
    return this.adoptTemp(tmp, verifiedSig);
  }

  async putBytes(data: Uint8Array, verifiedSig: VerifiedSig): Promise<{ digest: Digest; size: number; statSig: string }> {
    const tmp = this.tempPath();
    writeFileSync(tmp, data);
    return this.adoptTemp(tmp, verifiedSig);
  }

  private tempPath(): string {
    return join(this.tmpDir, uniqueSuffix());
  }

  /** Hash the temp file and move it to its name. A file already there is kept only when its
   * stat is the one recorded when it was last verified (no write since: ctime cannot be set
   * back); otherwise it is atomically replaced, so a wrong file never stays behind a right name. */
  private async adoptTemp(tmp: string, verifiedSig: VerifiedSig): Promise<{ digest: Digest; size: number; statSig: string }> {
    let renamed = false;
    try {
      const { digest, size } = await hashFile(tmp);
      const dest = this.path(digest);
      const existing = this.statSig(digest);
      if (existing !== undefined && existing === verifiedSig(digest)) return { digest, size, statSig: existing };
      const fd = openSync(tmp, "r+");
      try {
        await fsyncFd(fd);
      } finally {
        closeSync(fd);
      }
      chmodSync(tmp, 0o444);
      const shard = digest.slice(0, 2);
      if (!this.shards.has(shard)) {
        mkdirSync(join(this.root, shard), { recursive: true });
        this.shards.add(shard);
      }
      renameSync(tmp, dest);
      renamed = true;
      // The rename is durable before any row names the blob: a power loss leaves no row
      // naming a file that is not there (the shard's entry and tmp's removal, synced).
      await Promise.all([fsyncDir(join(this.root, shard)), fsyncDir(this.tmpDir)]);
      return { digest, size, statSig: statSignature(statSync(dest, { bigint: true })) };
    } finally {
      if (!renamed) rmSync(tmp, { force: true });
    }
  }

  async remove(digest: Digest): Promise<void> {
    await fsp.rm(this.path(digest), { force: true });
  }

  statSig(digest: Digest): string | undefined {
    try {
      return statSignature(statSync(this.path(digest), { bigint: true }));
    } catch {
      return undefined;
    }
  }

  /** Every digest with a file on disk (for fsck and gc). */
  async *list(): AsyncGenerator<Digest> {
    let shards: string[];
    try {
      shards = await fsp.readdir(this.root);
    } catch {
      return;
    }
    for (const shard of shards.sort()) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      for (const rest of (await fsp.readdir(join(this.root, shard))).sort()) {
        yield (shard + rest) as Digest;
      }
    }
  }

  /** Temp files left by a crashed writer. */
  async staleTemps(olderThanMs: number): Promise<string[]> {
    const now = Date.now();
    const out: string[] = [];
    for (const name of await fsp.readdir(this.tmpDir).catch(() => [] as string[])) {
      const st = await statOrNull(join(this.tmpDir, name));
      if (st && now - st.mtimeMs > olderThanMs) out.push(join(this.tmpDir, name));
    }
    return out;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fd = openSync(dir, "r");
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

/** Where a blob lives under a CAS root: concatenated, not joined (a no-op build asks it for
 * every served blob, #16). */
export function blobPath(root: string, digest: string): string {
  return root + "/" + digest.slice(0, 2) + "/" + digest.slice(2);
}

/** size, ctime and inode: any write to a blob changes ctime, which userspace cannot set back. */
export function statSignature(st: BigIntStats): string {
  return `${st.size}:${st.ctimeNs}:${st.ino}`;
}

async function statOrNull(p: string): Promise<Stats | null> {
  try {
    return await fsp.stat(p);
  } catch {
    return null;
  }
}
