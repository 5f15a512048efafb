// Blob storage on disk: cas/<first 2 hex>/<other 62 hex>, named by BLAKE3.
// Writes are atomic: temp file in cas/tmp, fsync, chmod read-only, rename over whatever is there.
// While a build gathers its index writes, a new blob's fsyncs wait for the commit (see Durability).
import { uniqueSuffix } from "../src/unique-name.ts";
import { chmodSync, closeSync, fsync, fsyncSync, mkdirSync, openSync, promises as fsp, renameSync, rmSync, statSync, writeFileSync, type Stats } from "node:fs";
import { promisify } from "node:util";
import { join } from "node:path";
import { copyToNewFile } from "../src/copy-to-new-file.ts";
import { hashBytes, hashFile, type Digest } from "../src/digest.ts";

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
  /** While a build gathers its writes: the new blobs not yet durable. */
  private deferred?: Durability;

  constructor(storeDir: string) {
    this.root = join(storeDir, "cas");
    this.tmpDir = join(this.root, "tmp");
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.tmpDir, { recursive: true });
  }

  /** From now on, a new blob is renamed to its name at once and made durable by the returned
   * hooks, which the index calls before each commit (Sql.gatherWrites), until `end`. */
  deferDurability(): Durability {
    const d = new Durability(this.tmpDir, () => {
      if (this.deferred === d) this.deferred = undefined;
    });
    this.deferred = d;
    return d;
  }

  /** New blobs not yet known durable (a build's, until its next commit). */
  get unsynced(): number {
    return this.deferred?.pending ?? 0;
  }

  path(digest: Digest): string {
    return blobPath(this.root, digest);
  }

  /** Copy `src` into the CAS under its digest (computed here), atomically. `verifiedSig` gives
   * the stat signature a blob had when last verified (see adoptTemp). */
  async putFile(src: string, verifiedSig: VerifiedSig): Promise<{ digest: Digest; size: number; statSig: string }> {
    const tmp = this.tempPath();
    const bytes = copyToNewFile(src, tmp);
    return this.adoptTemp(tmp, verifiedSig, bytes && { digest: hashBytes(bytes), size: bytes.length });
  }

  /** Like putFile, but moves `src` (a file nothing else will use, e.g. an action's output in a
   * sandbox about to be removed) instead of copying it. */
  async moveFile(src: string, verifiedSig: VerifiedSig): Promise<{ digest: Digest; size: number; statSig: string }> {
    const tmp = this.tempPath();
    try {
      renameSync(src, tmp);
    } catch {
      copyToNewFile(src, tmp); // another filesystem
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

  /** Hash the temp file (unless `hashed` gives the digest of the bytes written to it) and move it
   * to its name. A file already there is kept only when its stat is the one recorded when it was
   * last verified (no write since: ctime cannot be set back); otherwise it is atomically replaced,
   * so a wrong file never stays behind a right name. */
  private async adoptTemp(tmp: string, verifiedSig: VerifiedSig, hashed?: { digest: Digest; size: number }): Promise<{ digest: Digest; size: number; statSig: string }> {
    let renamed = false;
    try {
      const { digest, size } = hashed ?? (await hashFile(tmp));
      const dest = this.path(digest);
      const existing = this.statSig(digest);
      if (existing !== undefined && existing === verifiedSig(digest)) return { digest, size, statSig: existing };
      chmodSync(tmp, 0o444);
      const shard = join(this.root, digest.slice(0, 2));
      if (!this.shards.has(shard)) {
        mkdirSync(shard, { recursive: true });
        this.shards.add(shard);
      }
      if (this.deferred && existing === undefined) {
        // A new name no committed row can name yet: made durable before the commit that names it.
        renameSync(tmp, dest);
        renamed = true;
        this.deferred.add(dest, shard);
      } else {
        // Durable before any row names it: the bytes, then (the shard's entry, tmp's removal) the name.
        await fsyncPath(tmp);
        renameSync(tmp, dest);
        renamed = true;
        await Promise.all([fsyncPath(shard), fsyncPath(this.tmpDir)]);
      }
      return { digest, size, statSig: statSignature(statSync(dest)) };
    } finally {
      if (!renamed) rmSync(tmp, { force: true });
    }
  }

  async remove(digest: Digest): Promise<void> {
    await fsp.rm(this.path(digest), { force: true });
  }

  statSig(digest: Digest): string | undefined {
    const st = statSync(this.path(digest), { throwIfNoEntry: false });
    return st && statSignature(st);
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

/** A build's new blobs, made durable before the index commits a row naming them (#27). A cold
 * build of thousands of small blobs paid three fsyncs each on its critical path (the blob, its
 * shard, cas/tmp), waiting behind every other writer of the disk; gathered, they are synced side
 * by side while the actions go on, each directory once per commit. Until the commit no row names
 * them, so a power loss before it leaves, at worst, a name whose bytes are not whole that no row
 * names: an orphan, which fsck re-hashes before adopting and which admitting the same bytes
 * replaces (no verified signature). */
export class Durability {
  /** Blob paths not yet known durable, each with its shard directory (a new entry each time the
   * path is renamed to, so a sync that began before does not take the newer file for synced). */
  private unsynced = new Map<string, { shard: string }>();

  constructor(
    private readonly tmpDir: string,
    private readonly onEnd: () => void,
  ) {}

  get pending(): number {
    return this.unsynced.size;
  }

  add(blob: string, shard: string): void {
    this.unsynced.set(blob, { shard });
  }

  /** Sync what is unsynced now, through the thread pool (what is added meanwhile stays for the next). */
  async sync(): Promise<void> {
    const batch = [...this.unsynced];
    if (batch.length === 0) return;
    await Promise.all(batch.map(([blob]) => fsyncPath(blob, true)));
    await Promise.all([...new Set([this.tmpDir, ...batch.map(([, e]) => e.shard)])].map((dir) => fsyncPath(dir)));
    for (const [blob, e] of batch) if (this.unsynced.get(blob) === e) this.unsynced.delete(blob);
  }

  /** Sync everything unsynced, before returning (right before a commit: what a sync still running
   * has not confirmed is synced again). */
  syncNow(): void {
    if (this.unsynced.size === 0) return;
    for (const blob of this.unsynced.keys()) fsyncPathSync(blob, true);
    for (const dir of new Set([this.tmpDir, ...[...this.unsynced.values()].map((e) => e.shard)])) fsyncPathSync(dir);
    this.unsynced.clear();
  }

  /** Everything synced; blobs admitted from now on are durable before they are returned. */
  end(): void {
    this.syncNow();
    this.onEnd();
  }
}

/** fsync a file or directory by path; `goneOk`: a blob removed meanwhile (found corrupt, and its
 * rows dropped in the same transaction) needs nothing. */
async function fsyncPath(path: string, goneOk = false): Promise<void> {
  const fd = openToSync(path, goneOk);
  if (fd === undefined) return;
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncPathSync(path: string, goneOk = false): void {
  const fd = openToSync(path, goneOk);
  if (fd === undefined) return;
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function openToSync(path: string, goneOk: boolean): number | undefined {
  try {
    return openSync(path, "r");
  } catch (e) {
    if (goneOk && (e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** Where a blob lives under a CAS root: concatenated, not joined (a no-op build asks it for
 * every served blob, #16). */
export function blobPath(root: string, digest: string): string {
  return root + "/" + digest.slice(0, 2) + "/" + digest.slice(2);
}

/** size, ctime and inode: any write to a blob changes ctime, which userspace cannot set back.
 * From a plain stat (ctime in milliseconds as a double, a fraction of a microsecond here, finer
 * than the kernel's file clock): a BigIntStats makes four Date objects, and a no-op build of
 * 20,000 actions asks for one per served blob. A signature recorded in the older nanosecond form
 * differs once, and that blob is hashed again. */
export function statSignature(st: Stats): string {
  return `${st.size}:${st.ctimeMs}:${st.ino}`;
}

async function statOrNull(p: string): Promise<Stats | null> {
  try {
    return await fsp.stat(p);
  } catch {
    return null;
  }
}
