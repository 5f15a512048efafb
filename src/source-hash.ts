// Source files are hashed once per change: a file's digest is reused while its stat
// signature (size, mtime_ns, inode) is the one recorded in the store's stat cache.
import { realpathSync, statSync, type BigIntStats } from "node:fs";
import { relative, sep } from "node:path";
import { hashFile, type Digest } from "./digest.ts";
import { WmbError } from "./errors.ts";
import type { Target } from "./build-file.ts";
import type { Store } from "../store/store.ts";

export function statSignatureOf(st: { size: bigint; mtimeNs: bigint; ino: bigint }): string {
  return `${st.size}:${st.mtimeNs}:${st.ino}`;
}

/** The signature of a file as it is now (following symlinks). */
export function sourceStatSignature(file: string): string {
  return statSignatureOf(statSync(file, { bigint: true }));
}

async function digestFor(store: Store, file: string, statSig: string): Promise<Digest> {
  const cached = store.cachedDigest(file, statSig);
  if (cached) return cached;
  const { digest } = await hashFile(file);
  store.rememberDigest(file, statSig, digest);
  return digest;
}

/** A file's digest, from the stat cache when its signature is unchanged. */
export async function hashStatCached(store: Store, file: string): Promise<Digest> {
  return digestFor(store, file, sourceStatSignature(file));
}

/** The same, for a file the caller has just stat'ed. */
export async function digestOfStat(store: Store, file: string, st: BigIntStats): Promise<Digest> {
  return digestFor(store, file, statSignatureOf(st));
}

/** Hashes a workspace's source files, refusing missing files, non-files and symlinks that
 * leave the workspace. */
export class SourceHasher {
  private readonly rootReal: string;

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

  async hash(file: string, t: Target): Promise<{ digest: Digest; statSig: string }> {
    const { real, st } = this.check(file, t);
    const statSig = statSignatureOf(st);
    return { digest: await digestFor(this.store, real, statSig), statSig };
  }

}
