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
import { WmbError } from "../errors.ts";
import { readTar, TarFormatError, type TarEntry } from "../formats/tar-reader.ts";

export interface ExtractedRootfs {
  /** Paths in tar order, relative to destDir, directories with a trailing "/". */
  entries: string[];
}

type EntryKind = "file" | "directory";

export interface RootfsEntry {
  name: string;
  kind: EntryKind;
  mode: number;
  data: Uint8Array;
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

/** Limits for a rootfs: generous for a machine's few files, small enough that a hostile
 * archive cannot fill the disk or build a directory tree deep enough to hurt (CVE-2024-28863). */
export const ROOTFS_LIMITS = { maxEntryBytes: 256 << 20, maxTotalBytes: 1 << 30, maxEntries: 100_000, maxDepth: 64 };

/** Parse and validate every entry before anything touches the disk. */
export function readRootfsEntries(tarBytes: Uint8Array, limits = ROOTFS_LIMITS): RootfsEntry[] {
  let entries: TarEntry[];
  try {
    entries = readTar(tarBytes, limits);
  } catch (e) {
    if (e instanceof TarFormatError) throw rootfsError(`the rootfs tar is corrupt: ${e.message}`, e);
    throw e;
  }
  const out: RootfsEntry[] = [];
  // Keyed by NFC form: names that differ only in Unicode normalization would be one file on
  // some hosts' filesystems (macOS), so the result would depend on the host.
  const seen = new Map<string, EntryKind>();
  for (const e of entries) {
    const raw = e.path;
    let kind: EntryKind;
    switch (e.type) {
      case "file":
        kind = "file";
        break;
      case "dir":
        kind = "directory";
        break;
      case "hardlink":
        throw rootfsError(`entry ${JSON.stringify(raw)} is a hard link; a rootfs may hold only regular files and directories.`);
      case "symlink":
        throw rootfsError(`entry ${JSON.stringify(raw)} is a symbolic link; a rootfs may hold only regular files and directories.`);
      case "char":
      case "block":
        throw rootfsError(`entry ${JSON.stringify(raw)} is a device node; a rootfs may hold only regular files and directories.`);
      case "fifo":
        throw rootfsError(`entry ${JSON.stringify(raw)} is a fifo; a rootfs may hold only regular files and directories.`);
      default:
        throw rootfsError(`entry ${JSON.stringify(raw)} has unsupported tar type ${JSON.stringify(e.typeflag)}.`);
    }
    const name = safeRelativePath(raw, limits.maxDepth);
    if (kind === "directory" && e.size !== 0) throw rootfsError(`directory entry ${JSON.stringify(raw)} has data.`);
    const key = name.normalize("NFC");
    const previous = seen.get(key);
    if (previous !== undefined) {
      // The same directory twice is harmless; anything else would make the result depend on order.
      if (previous === "directory" && kind === "directory") continue;
      throw rootfsError(`entry ${JSON.stringify(raw)} appears more than once in the rootfs tar.`);
    }
    // A file may not sit where a directory is needed, nor below a file.
    const parts = key.split("/");
    for (let i = 1; i < parts.length; i++) {
      const ancestor = parts.slice(0, i).join("/");
      if (seen.get(ancestor) === "file") throw rootfsError(`entry ${JSON.stringify(raw)} lies below the file ${JSON.stringify(ancestor)}.`);
      if (!seen.has(ancestor)) seen.set(ancestor, "directory");
    }
    if (name === ".") {
      if (kind !== "directory") throw rootfsError(`entry ${JSON.stringify(raw)} names the rootfs itself but is not a directory.`);
      continue;
    }
    seen.set(key, kind);
    out.push({ name, kind, mode: e.mode, data: e.data });
  }
  return out;
}

/** "./a/b/" -> "a/b"; refuses absolute paths (also Windows drive and UNC forms), `..`,
 * backslashes, NUL, empty names and absurd depth. */
function safeRelativePath(raw: string, maxDepth: number): string {
  if (raw === "" || raw.includes("\0")) throw rootfsError(`entry ${JSON.stringify(raw)} has an empty or invalid name.`);
  if (raw.startsWith("/") || /^[A-Za-z]:/.test(raw)) throw rootfsError(`entry ${JSON.stringify(raw)} has an absolute path; rootfs paths must be relative.`);
  if (raw.includes("\\")) throw rootfsError(`entry ${JSON.stringify(raw)} contains a backslash; rootfs paths use "/" only.`);
  const parts: string[] = [];
  for (const part of raw.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") throw rootfsError(`entry ${JSON.stringify(raw)} contains "..": it would land outside the rootfs.`);
    parts.push(part);
  }
  if (parts.length > maxDepth) throw rootfsError(`entry ${JSON.stringify(raw.slice(0, 80))}… is ${parts.length} directories deep, more than the ${maxDepth} allowed.`);
  return parts.length === 0 ? "." : parts.join("/");
}

function rootfsError(message: string, cause?: unknown): WmbError {
  return new WmbError("INTEGRITY", `unsafe or invalid rootfs: ${message}`, { cause });
}
