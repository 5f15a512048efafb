// Unpacks a machine's rootfs tar into a host directory that is then mounted read-only as the
// guest's `/`. The tar comes from a sealed spec, but extraction treats it as hostile anyway:
// only regular files and directories are accepted, every path must stay inside destDir, and
// the finished tree is made read-only.
//
// Links are refused outright, not checked: a rootfs needs none, and a tree without links is
// one whose every path provably resolves inside destDir (the runtime refuses absolute and
// escaping symlinks too, but a tree that holds none needs no such reasoning).
// Synchronous file calls: microseconds each, where an asynchronous one is a thread-pool round
// trip, and a run waits for both the extraction and the removal (#12).
import { chmodSync, mkdirSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { readRootfsEntries, rootfsError, type RootfsEntry } from "../formats/rootfs-entries.ts";
export { readRootfsEntries, ROOTFS_LIMITS, type RootfsEntry } from "../formats/rootfs-entries.ts";

export interface ExtractedRootfs {
  /** Paths in tar order, relative to destDir, directories with a trailing "/". */
  entries: string[];
}


/**
 * Extract `tarBytes` (read by tar-reader.ts) into `destDir`, which must not exist or be
 * empty. Throws a WmbError naming the entry on: absolute paths, `..` components, backslashes,
 * symlinks, hard links, devices, fifos, duplicates (also after Unicode normalization), absurd
 * depth or size, and whatever the reader refuses (checksums, truncation, bad pax records).
 * Nothing is written unless the whole archive is acceptable.
 */
export async function extractRootfs(tarBytes: Uint8Array, destDir: string): Promise<ExtractedRootfs> {
  const entries = readRootfsEntries(tarBytes);
  mkdirSync(destDir, { recursive: true });
  if (readdirSync(destDir).length > 0) {
    throw rootfsError(`the extraction directory ${destDir} is not empty.`);
  }
  const root = realpathSync(destDir);
  const dirs = new Set<string>([root]);

  const ensureDir = (abs: string) => {
    if (dirs.has(abs)) return;
    mkdirSync(abs, { recursive: true, mode: 0o755 });
    // Record the directory and its ancestors up to the root.
    for (let d = abs; d !== root && !dirs.has(d); d = resolve(d, "..")) dirs.add(d);
  };

  for (const e of entries) {
    const abs = join(root, e.name);
    // Belt and braces: names are already validated, but never write outside root.
    const rel = relative(root, abs);
    if (rel.startsWith("..") || rel.startsWith(sep)) throw rootfsError(`entry ${JSON.stringify(e.name)} escapes the rootfs.`);
    try {
      if (e.kind === "directory") {
        ensureDir(abs);
      } else {
        ensureDir(resolve(abs, ".."));
        // "wx": never follow or replace something already there.
        writeFileSync(abs, e.data, { flag: "wx", mode: 0o644 });
      }
    } catch (err) {
      throw rootfsError(`cannot extract entry ${JSON.stringify(e.name)}: ${(err as Error).message}`, err);
    }
  }
  makeReadOnly(root, entries);
  return { entries: entries.map((e) => (e.kind === "directory" ? `${e.name}/` : e.name)) };
}

/** Remove a tree made by extractRootfs (its directories are read-only, so rm alone fails for non-root users). */
export async function removeExtractedRootfs(dir: string): Promise<void> {
  const walk = (d: string): void => {
    chmodSync(d, 0o755);
    for (const ent of readdirSync(d, { withFileTypes: true })) {
      if (ent.isDirectory()) walk(join(d, ent.name));
    }
  };
  try {
    walk(dir);
  } catch {
    // Already gone or partly removed: rm below does the rest.
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Files 0444 (0555 if executable in the tar), directories 0555, children before parents. */
function makeReadOnly(root: string, entries: RootfsEntry[]): void {
  const dirs = new Set<string>();
  for (const e of entries) {
    const abs = join(root, e.name);
    if (e.kind === "file") chmodSync(abs, e.mode & 0o111 ? 0o555 : 0o444);
    else dirs.add(abs);
    for (let d = resolve(abs, ".."); d !== root && d.startsWith(root + sep); d = resolve(d, "..")) dirs.add(d);
  }
  const deepestFirst = [...dirs].sort((a, b) => b.length - a.length);
  for (const d of deepestFirst) chmodSync(d, 0o555);
  chmodSync(root, 0o555);
}

