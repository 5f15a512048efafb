// Deterministic tar: the same entries always give the same bytes, whatever the host, the
// file system's listing order, the umask or the clock.
//
// The writer emits plain ustar only: entries sorted by the bytes of their names (so a parent
// directory precedes its children), one mtime for all of them, uid/gid 0, empty uname/gname,
// modes normalized (directories 0755, files 0644, or 0755 when any execute bit was asked for),
// no pax or GNU extension headers, and the end-of-archive marker of two zero blocks (no padding
// to a 10 KiB record, which nothing needs). Missing parent directories are added, so every
// extracted directory gets the normalized mode rather than whatever the extractor chooses.
//
// The one reader of tar archives is tar-reader.ts.

import { headerChecksum, TarFormatError } from "./tar-reader.ts";

const BLOCK = 512;
const MAX_OCTAL_SIZE = 0o77777777777; // 11 octal digits: 8 GiB - 1

export interface DeterministicTarEntry {
  /** Path inside the archive; a leading "/" and a trailing "/" are ignored ("/db" = "db"). */
  path: string;
  type: "file" | "dir";
  /** Only the execute bits matter for files (any one set gives 0755); ignored for directories. */
  mode?: number;
  /** File contents (default empty); directories must have none. */
  data?: Uint8Array;
}

export interface DeterministicTarOptions {
  /** Seconds since the Unix epoch, stamped on every entry. */
  mtime: number;
}

/** A ustar archive of `entries`, byte-for-byte reproducible (see the file comment). */
export function writeDeterministicTar(entries: readonly DeterministicTarEntry[], opts: DeterministicTarOptions): Uint8Array {
  if (!Number.isInteger(opts.mtime) || opts.mtime < 0 || opts.mtime > MAX_OCTAL_SIZE) {
    throw new TarFormatError(`mtime must be a whole number of seconds between 0 and ${MAX_OCTAL_SIZE}, got ${opts.mtime}.`);
  }
  const byName = new Map<string, { type: "file" | "dir"; mode: number; data: Uint8Array }>();
  for (const e of entries) {
    const name = normalizePath(e.path);
    if (e.type === "dir") {
      if (e.data && e.data.length > 0) throw new TarFormatError(`directory "${e.path}" cannot have data.`);
      const prev = byName.get(name);
      if (prev && prev.type !== "dir") throw new TarFormatError(`"${e.path}" is listed both as a file and as a directory.`);
      byName.set(name, { type: "dir", mode: 0o755, data: new Uint8Array(0) });
    } else {
      if (byName.has(name)) throw new TarFormatError(`"${e.path}" is listed more than once.`);
      const data = e.data ?? new Uint8Array(0);
      if (data.length > MAX_OCTAL_SIZE) throw new TarFormatError(`file "${e.path}" is larger than ustar allows (8 GiB).`);
      byName.set(name, { type: "file", mode: (e.mode ?? 0) & 0o111 ? 0o755 : 0o644, data });
    }
  }
  // Every ancestor of an entry becomes a directory entry of its own.
  for (const name of [...byName.keys()]) {
    const parts = name.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      const existing = byName.get(dir);
      if (existing?.type === "file") throw new TarFormatError(`"${name}" lies below "${dir}", which is a file.`);
      if (!existing) byName.set(dir, { type: "dir", mode: 0o755, data: new Uint8Array(0) });
    }
  }

  const enc = new TextEncoder();
  const stored = [...byName.entries()].map(([name, e]) => ({ ...e, stored: enc.encode(e.type === "dir" ? `${name}/` : name) }));
  stored.sort((a, b) => compareBytes(a.stored, b.stored));

  let total = 2 * BLOCK;
  for (const e of stored) total += BLOCK + roundUp(e.data.length);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const e of stored) {
    const h = out.subarray(offset, offset + BLOCK);
    const [prefix, name] = splitUstarName(e.stored);
    h.set(name, 0);
    writeOctal(h, 100, 8, e.mode);
    writeOctal(h, 108, 8, 0);
    writeOctal(h, 116, 8, 0);
    writeOctal(h, 124, 12, e.data.length);
    writeOctal(h, 136, 12, opts.mtime);
    h[156] = e.type === "dir" ? 0x35 : 0x30;
    h.set(enc.encode("ustar\0"), 257);
    h.set(enc.encode("00"), 263);
    // uname, gname: left empty (all zero).
    writeOctal(h, 329, 8, 0);
    writeOctal(h, 337, 8, 0);
    h.set(prefix, 345);
    writeChecksum(h);
    out.set(e.data, offset + BLOCK);
    offset += BLOCK + roundUp(e.data.length);
  }
  return out;
}

function normalizePath(path: string): string {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0) throw new TarFormatError(`"${path}" names the archive root, not an entry.`);
  if (parts.includes("..")) throw new TarFormatError(`"${path}" contains "..".`);
  if (path.includes("\0")) throw new TarFormatError(`"${path}" contains a NUL character.`);
  return parts.join("/");
}

/** ustar keeps names up to 100 bytes, or up to 255 split at a "/" into prefix (155) and name (100). */
function splitUstarName(name: Uint8Array): [Uint8Array, Uint8Array] {
  if (name.length <= 100) return [new Uint8Array(0), name];
  for (let i = Math.min(155, name.length - 1); i > 0; i--) {
    if (name[i] === 0x2f && name.length - i - 1 <= 100 && name.length - i - 1 > 0) {
      return [name.subarray(0, i), name.subarray(i + 1)];
    }
  }
  throw new TarFormatError(`"${new TextDecoder().decode(name)}" is too long for a ustar name (at most 255 bytes, split at a "/").`);
}

function writeOctal(h: Uint8Array, at: number, width: number, value: number): void {
  const digits = value.toString(8).padStart(width - 1, "0");
  for (let i = 0; i < width - 1; i++) h[at + i] = digits.charCodeAt(i);
  h[at + width - 1] = 0;
}

function writeChecksum(h: Uint8Array): void {
  const digits = headerChecksum(h).toString(8).padStart(6, "0");
  for (let i = 0; i < 6; i++) h[148 + i] = digits.charCodeAt(i);
  h[154] = 0;
  h[155] = 0x20;
}

function roundUp(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
