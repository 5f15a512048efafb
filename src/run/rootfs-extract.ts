// Unpacks a machine's rootfs tar into a host directory that is then mounted read-only as the
// guest's `/`. The tar comes from a sealed spec, but extraction treats it as hostile anyway:
// only regular files and directories are accepted, every path must stay inside destDir, and
// the finished tree is made read-only.
//
// Links are refused outright, not checked: a rootfs needs none, and a tree without links is
// one whose every path provably resolves inside destDir (the runtime refuses absolute and
// escaping symlinks too, but a tree that holds none needs no such reasoning).
import { promises as fsp } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { WmbError } from "../errors.ts";

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

const BLOCK = 512;

/**
 * Extract `tarBytes` (ustar, with pax or GNU long names) into `destDir`, which must not exist
 * or be empty. Throws a WmbError naming the entry on: absolute paths, `..` components,
 * symlinks, hard links, devices, fifos, duplicates, bad checksums, truncated archives.
 * Nothing is written unless the whole archive is acceptable.
 */
export async function extractRootfs(tarBytes: Uint8Array, destDir: string): Promise<ExtractedRootfs> {
  const entries = readRootfsEntries(tarBytes);
  await fsp.mkdir(destDir, { recursive: true });
  if ((await fsp.readdir(destDir)).length > 0) {
    throw rootfsError(`the extraction directory ${destDir} is not empty.`);
  }
  const root = await fsp.realpath(destDir);
  const dirs = new Set<string>([root]);

  const ensureDir = async (abs: string) => {
    if (dirs.has(abs)) return;
    await fsp.mkdir(abs, { recursive: true, mode: 0o755 });
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
        await ensureDir(abs);
      } else {
        await ensureDir(resolve(abs, ".."));
        // "wx": never follow or replace something already there.
        await fsp.writeFile(abs, e.data, { flag: "wx", mode: 0o644 });
      }
    } catch (err) {
      throw rootfsError(`cannot extract entry ${JSON.stringify(e.name)}: ${(err as Error).message}`, err);
    }
  }
  await makeReadOnly(root, entries);
  return { entries: entries.map((e) => (e.kind === "directory" ? `${e.name}/` : e.name)) };
}

/** Remove a tree made by extractRootfs (its directories are read-only, so rm alone fails for non-root users). */
export async function removeExtractedRootfs(dir: string): Promise<void> {
  const walk = async (d: string): Promise<void> => {
    await fsp.chmod(d, 0o755);
    for (const ent of await fsp.readdir(d, { withFileTypes: true })) {
      if (ent.isDirectory()) await walk(join(d, ent.name));
    }
  };
  try {
    await walk(dir);
  } catch {
    // Already gone or partly removed: rm below does the rest.
  }
  await fsp.rm(dir, { recursive: true, force: true });
}

/** Files 0444 (0555 if executable in the tar), directories 0555, children before parents. */
async function makeReadOnly(root: string, entries: RootfsEntry[]): Promise<void> {
  const dirs = new Set<string>();
  for (const e of entries) {
    const abs = join(root, e.name);
    if (e.kind === "file") await fsp.chmod(abs, e.mode & 0o111 ? 0o555 : 0o444);
    else dirs.add(abs);
    for (let d = resolve(abs, ".."); d !== root && d.startsWith(root + sep); d = resolve(d, "..")) dirs.add(d);
  }
  const deepestFirst = [...dirs].sort((a, b) => b.length - a.length);
  for (const d of deepestFirst) await fsp.chmod(d, 0o555);
  await fsp.chmod(root, 0o555);
}

/** Parse and validate every entry before anything touches the disk. */
export function readRootfsEntries(tarBytes: Uint8Array): RootfsEntry[] {
  const out: RootfsEntry[] = [];
  const seen = new Map<string, EntryKind>();
  let offset = 0;
  let longName: string | undefined;
  let pax: Record<string, string> = {};

  while (true) {
    if (offset + BLOCK > tarBytes.length) throw rootfsError("the rootfs tar is truncated (no end-of-archive marker).");
    const header = tarBytes.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) break;
    verifyChecksum(header, offset);

    const typeflag = String.fromCharCode(header[156]!);
    const size = parseOctal(header.subarray(124, 136), "size", offset);
    const dataStart = offset + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > tarBytes.length) throw rootfsError(`the rootfs tar is truncated inside the entry at offset ${offset}.`);
    const data = tarBytes.subarray(dataStart, dataEnd);
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    // Metadata entries apply to the next real entry.
    if (typeflag === "x") {
      pax = parsePax(data, offset);
      continue;
    }
    if (typeflag === "g") continue; // global pax defaults: nothing in them matters for extraction
    if (typeflag === "L") {
      longName = cString(data);
      continue;
    }

    const ustarName = cString(header.subarray(0, 100));
    const prefix = isUstar(header) ? cString(header.subarray(345, 500)) : "";
    const rawName = pax.path ?? longName ?? (prefix ? `${prefix}/${ustarName}` : ustarName);
    const paxSize = pax.size;
    longName = undefined;
    pax = {};
    if (paxSize !== undefined && Number(paxSize) !== size) {
      throw rootfsError(`entry ${JSON.stringify(rawName)}: pax size ${paxSize} differs from the header size ${size}.`);
    }

    let kind: EntryKind;
    switch (typeflag) {
      case "0":
      case "\0":
      case "7":
        kind = "file";
        break;
      case "5":
        kind = "directory";
        break;
      case "1":
        throw rootfsError(`entry ${JSON.stringify(rawName)} is a hard link; a rootfs may hold only regular files and directories.`);
      case "2":
        throw rootfsError(`entry ${JSON.stringify(rawName)} is a symbolic link; a rootfs may hold only regular files and directories.`);
      case "3":
      case "4":
        throw rootfsError(`entry ${JSON.stringify(rawName)} is a device node; a rootfs may hold only regular files and directories.`);
      case "6":
        throw rootfsError(`entry ${JSON.stringify(rawName)} is a fifo; a rootfs may hold only regular files and directories.`);
      default:
        throw rootfsError(`entry ${JSON.stringify(rawName)} has unsupported tar type ${JSON.stringify(typeflag)}.`);
    }
    const name = safeRelativePath(rawName);
    if (kind === "directory" && size !== 0) throw rootfsError(`directory entry ${JSON.stringify(rawName)} has data.`);
    const previous = seen.get(name);
    if (previous !== undefined) {
      // The same directory twice is harmless; anything else would make the result depend on order.
      if (previous === "directory" && kind === "directory") continue;
      throw rootfsError(`entry ${JSON.stringify(rawName)} appears more than once in the rootfs tar.`);
    }
    // A file may not sit where a directory is needed, nor below a file.
    const parts = name.split("/");
    for (let i = 1; i < parts.length; i++) {
      const ancestor = parts.slice(0, i).join("/");
      if (seen.get(ancestor) === "file") throw rootfsError(`entry ${JSON.stringify(rawName)} lies below the file ${JSON.stringify(ancestor)}.`);
      if (!seen.has(ancestor)) seen.set(ancestor, "directory");
    }
    if (name === ".") {
      if (kind !== "directory") throw rootfsError(`entry ${JSON.stringify(rawName)} names the rootfs itself but is not a directory.`);
      continue;
    }
    seen.set(name, kind);
    const mode = parseOctal(header.subarray(100, 108), "mode", offset);
    out.push({ name, kind, mode, data });
  }
  return out;
}

/** "./a/b/" -> "a/b"; refuses absolute paths, `..`, NUL and empty names. */
function safeRelativePath(raw: string): string {
  if (raw === "" || raw.includes("\0")) throw rootfsError(`entry ${JSON.stringify(raw)} has an empty or invalid name.`);
  if (raw.startsWith("/")) throw rootfsError(`entry ${JSON.stringify(raw)} has an absolute path; rootfs paths must be relative.`);
  const parts: string[] = [];
  for (const part of raw.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") throw rootfsError(`entry ${JSON.stringify(raw)} contains "..": it would land outside the rootfs.`);
    parts.push(part);
  }
  return parts.length === 0 ? "." : parts.join("/");
}

function isUstar(header: Uint8Array): boolean {
  return cString(header.subarray(257, 263)).startsWith("ustar");
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

function parseOctal(field: Uint8Array, what: string, offset: number): number {
  if (field[0]! & 0x80) throw rootfsError(`the tar header at offset ${offset} uses a base-256 ${what}, which a rootfs never needs.`);
  const text = cString(field).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw rootfsError(`the tar header at offset ${offset} has an invalid ${what} field ${JSON.stringify(text)}.`);
  return parseInt(text, 8);
}

function verifyChecksum(header: Uint8Array, offset: number): void {
  const expected = parseOctal(header.subarray(148, 156), "checksum", offset);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  if (sum !== expected) throw rootfsError(`the tar header at offset ${offset} has a bad checksum: the rootfs tar is corrupt.`);
}

/** pax records: "<len> <key>=<value>\n". */
function parsePax(data: Uint8Array, offset: number): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    if (space < 0) break;
    const len = parseInt(new TextDecoder().decode(data.subarray(i, space)), 10);
    if (!Number.isInteger(len) || len <= 0 || i + len > data.length) {
      throw rootfsError(`the pax header before offset ${offset} is malformed.`);
    }
    const record = new TextDecoder().decode(data.subarray(space + 1, i + len - 1));
    const eq = record.indexOf("=");
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    i += len;
  }
  return out;
}

function rootfsError(message: string, cause?: unknown): WmbError {
  return new WmbError("INTEGRITY", `unsafe or invalid rootfs: ${message}`, { cause });
}
