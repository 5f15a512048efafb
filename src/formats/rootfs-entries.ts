// A rootfs tar's entries, parsed and validated before anything is written anywhere: only regular
// files and directories, every path relative and inside the rootfs. Pure (no file system), so
// `wmb run` (src/run/rootfs-extract.ts) and the page that runs a machine in a tab read a rootfs
// the same way.
import { WmbError } from "../errors.ts";
import { readTar, TarFormatError, type TarEntry } from "./tar-reader.ts";

type EntryKind = "file" | "directory";

export interface RootfsEntry {
  name: string;
  kind: EntryKind;
  mode: number;
  data: Uint8Array;
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

export function rootfsError(message: string, cause?: unknown): WmbError {
  return new WmbError("INTEGRITY", `unsafe or invalid rootfs: ${message}`, { cause });
}
