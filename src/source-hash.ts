// Source files are hashed once per change: a file's digest is reused while its stat
// signature (size, mtime, ctime, inode) is the one recorded in the store's stat cache. ctime
// catches an edit whose mtime was set back (`cp -p`, `rsync -t`, `touch -r`, `tar x`): no user
// can set ctime. A file changed at or after the moment it was looked at is racily clean (as
// git says): a later edit within the same clock tick would keep its signature, so it is
// hashed but not recorded, and the next build hashes it again.
import { realpathSync, statSync, type BigIntStats } from "node:fs";
import { relative, sep } from "node:path";
import { hashFile, type Digest } from "./digest.ts";
import { WmbError } from "./errors.ts";
import type { Target } from "./build-file.ts";
import type { Store } from "../store/store.ts";

type StatFields = Pick<BigIntStats, "size" | "mtimeNs" | "ctimeNs" | "ino">;

export function statSignatureOf(st: StatFields): string {
  return `${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.ino}`;
}

/** The signature of a file as it is now (following symlinks). */
export function sourceStatSignature(file: string): string {
  return statSignatureOf(statSync(file, { bigint: true }));
}

const SECOND = 1_000_000_000n;
/** File timestamps come from the kernel's coarse clock, up to a tick (1-10 ms) behind the time;
 * ten times that also covers the moment between a stat and reading the clock. */
const COARSE_CLOCK_NS = 100_000_000n;

/** The wall clock in nanoseconds, as file timestamps count. */
export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/** Whether a file stat'ed at or after `lookedAt` may change again without changing `st`'s
 * signature: it was modified (mtime or ctime) within a clock tick of that moment, or later.
 * Whole-second timestamps (a filesystem that keeps no more) widen the tick to two seconds. */
export function racilyClean(st: StatFields, lookedAt: bigint): boolean {
  const tick = st.mtimeNs % SECOND === 0n && st.ctimeNs % SECOND === 0n ? 2n * SECOND : COARSE_CLOCK_NS;
  const changed = st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs;
  return changed >= lookedAt - tick;
}

/** `st` is the file's stat, taken at or after `lookedAt`. */
async function digestFor(store: Store, file: string, st: StatFields, lookedAt: bigint, statSig = statSignatureOf(st)): Promise<Digest> {
  const cached = store.cachedDigest(file, statSig);
  if (cached) return cached;
  const { digest } = await hashFile(file);
  if (!racilyClean(st, lookedAt)) store.rememberDigest(file, statSig, digest);
  return digest;
}

/** A file's digest, from the stat cache when its signature is unchanged. */
export async function hashStatCached(store: Store, file: string): Promise<Digest> {
  const lookedAt = nowNs();
  return digestFor(store, file, statSync(file, { bigint: true }), lookedAt);
}

/** The same, for a file the caller has just stat'ed (synchronously: within a tick of now). */
export async function digestOfStat(store: Store, file: string, st: BigIntStats): Promise<Digest> {
  return digestFor(store, file, st, nowNs());
}

/** Hashes a workspace's source files, refusing missing files, non-files and symlinks that
 * leave the workspace. */
export class SourceHasher {
  private readonly rootReal: string;
  /** Before any source is stat'ed: the moment racy cleanliness is measured from. */
  readonly lookedAt = nowNs();

  constructor(
    private readonly store: Store,
    private readonly root: string,
  ) {
    this.rootReal = realpathSync(root);
  }

  private readonly checked = new Map<string, { real: string; st: BigIntStats }>();

  /** Refuse a missing file, a non-file or a symlink out of the workspace, before anything runs
   * (the build checks every source of its closure first). The stat is reused by `hash`. */
  check(file: string, t: Target): { real: string; st: BigIntStats } {
    const seen = this.checked.get(file);
    if (seen) return seen;
    const rel = relative(this.root, file);
    let real: string;
    try {
      real = realpathSync(file);
    } catch {
      throw new WmbError("MISSING_SOURCE", `${t.declaredAt}: source file ${rel} of ${t.label} does not exist; create it or fix srcs.`, { subject: t.label });
    }
    if (real !== this.rootReal && !real.startsWith(this.rootReal + sep)) {
      throw new WmbError("MISSING_SOURCE", `${t.declaredAt}: source ${rel} of ${t.label} resolves to ${real}, outside the workspace; sources must live in the workspace.`, { subject: t.label });
    }
    const st = statSync(real, { bigint: true });
    if (!st.isFile()) {
      throw new WmbError("MISSING_SOURCE", `${t.declaredAt}: source ${rel} of ${t.label} is not a regular file.`, { subject: t.label });
    }
    const found = { real, st };
    this.checked.set(file, found);
    return found;
  }

  /** Every source checked so far, as resolved and stat'ed. */
  checkedSources(): { file: string; real: string; st: BigIntStats }[] {
    return [...this.checked].map(([file, { real, st }]) => ({ file, real, st }));
  }

  async hash(file: string, t: Target): Promise<{ digest: Digest; statSig: string }> {
    const { real, st } = this.check(file, t);
    const statSig = statSignatureOf(st);
    return { digest: await digestFor(this.store, real, st, this.lookedAt, statSig), statSig };
  }

}
