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
// The reader understands what real-world tars contain (ustar, pax `x`/`g`, GNU long names,
// base-256 numbers) and reports everything a reader might want to compare: `wmb verify` diffs
// archives field by field, tests check the writer's invariants.

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

export type TarEntryType = "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo" | "other";

export interface TarEntry {
  /** The name as stored (pax path, GNU long name or ustar prefix/name); directories usually end in "/". */
  path: string;
  type: TarEntryType;
  /** The raw typeflag character ("0", "5", …), for entries of type "other". */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** Seconds since the epoch; pax mtimes may have a fraction. */
  mtime: number;
  size: number;
  linkname: string;
  data: Uint8Array;
  /** pax records that applied to this entry (global ones included), empty when none. */
  pax: Record<string, string>;
  /** Byte offset of the entry's header in the archive. */
  offset: number;
}

export class TarFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TarFormatError";
  }
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

/** Every entry of a tar archive, in archive order. Throws TarFormatError on a corrupt archive. */
export function readTar(bytes: Uint8Array): TarEntry[] {
  const out: TarEntry[] = [];
  let offset = 0;
  let global: Record<string, string> = {};
  let local: Record<string, string> = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    if (offset + BLOCK > bytes.length) {
      // Some writers omit the end-of-archive marker; a clean end at a block boundary is accepted.
      if (offset === bytes.length) break;
      throw new TarFormatError(`the archive is truncated at offset ${offset}.`);
    }
    const h = bytes.subarray(offset, offset + BLOCK);
    if (h.every((b) => b === 0)) break;
    const expected = readNumber(h, 148, 8, "checksum", offset);
    if (expected !== headerChecksum(h)) throw new TarFormatError(`the header at offset ${offset} has a bad checksum.`);
    const typeflag = String.fromCharCode(h[156]!);
    let size = readNumber(h, 124, 12, "size", offset);
    const paxSize = local.size ?? global.size;
    if (paxSize !== undefined && typeflag !== "x" && typeflag !== "g") size = Number(paxSize);
    const dataStart = offset + BLOCK;
    if (dataStart + size > bytes.length) throw new TarFormatError(`the entry at offset ${offset} is truncated.`);
    const data = bytes.subarray(dataStart, dataStart + size);
    const headerOffset = offset;
    offset = dataStart + roundUp(size);

    if (typeflag === "x") {
      local = { ...local, ...parsePax(data, headerOffset) };
      continue;
    }
    if (typeflag === "g") {
      global = { ...global, ...parsePax(data, headerOffset) };
      continue;
    }
    if (typeflag === "L") {
      longName = cString(data);
      continue;
    }
    if (typeflag === "K") {
      longLink = cString(data);
      continue;
    }
    const pax = { ...global, ...local };
    const ustar = cString(h.subarray(257, 263)).startsWith("ustar");
    const prefix = ustar ? cString(h.subarray(345, 500)) : "";
    const rawName = cString(h.subarray(0, 100));
    const path = pax.path ?? longName ?? (prefix ? `${prefix}/${rawName}` : rawName);
    const entry: TarEntry = {
      path,
      type: entryType(typeflag, path),
      typeflag,
      mode: readNumber(h, 100, 8, "mode", headerOffset),
      uid: pax.uid !== undefined ? Number(pax.uid) : readNumber(h, 108, 8, "uid", headerOffset),
      gid: pax.gid !== undefined ? Number(pax.gid) : readNumber(h, 116, 8, "gid", headerOffset),
      uname: pax.uname ?? (ustar ? cString(h.subarray(265, 297)) : ""),
      gname: pax.gname ?? (ustar ? cString(h.subarray(297, 329)) : ""),
      mtime: pax.mtime !== undefined ? Number(pax.mtime) : readNumber(h, 136, 12, "mtime", headerOffset),
      size,
      linkname: pax.linkpath ?? longLink ?? cString(h.subarray(157, 257)),
      data,
      pax,
      offset: headerOffset,
    };
    out.push(entry);
    local = {};
    longName = undefined;
    longLink = undefined;
  }
  return out;
}

/** True when the bytes look like a tar archive (a first header with a valid checksum). */
export function looksLikeTar(bytes: Uint8Array): boolean {
  if (bytes.length < BLOCK || bytes.length % BLOCK !== 0) return false;
  const h = bytes.subarray(0, BLOCK);
  if (h.every((b) => b === 0)) return true;
  try {
    return readNumber(h, 148, 8, "checksum", 0) === headerChecksum(h);
  } catch {
    return false;
  }
}

function entryType(typeflag: string, path: string): TarEntryType {
  switch (typeflag) {
    case "0":
    case "\0":
    case "7":
      // Old (v7) archives mark directories only by a trailing slash.
      return typeflag === "\0" && path.endsWith("/") ? "dir" : "file";
    case "1":
      return "hardlink";
    case "2":
      return "symlink";
    case "3":
      return "char";
    case "4":
      return "block";
    case "5":
      return "dir";
    case "6":
      return "fifo";
    default:
      return "other";
  }
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

function headerChecksum(h: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum;
}

function writeChecksum(h: Uint8Array): void {
  const digits = headerChecksum(h).toString(8).padStart(6, "0");
  for (let i = 0; i < 6; i++) h[148 + i] = digits.charCodeAt(i);
  h[154] = 0;
  h[155] = 0x20;
}

function readNumber(h: Uint8Array, at: number, width: number, what: string, offset: number): number {
  const field = h.subarray(at, at + width);
  if (field[0]! & 0x80) {
    // GNU base-256: big-endian two's complement with the top bit of the first byte as marker.
    let v = BigInt(field[0]! & 0x7f);
    if (field[0]! & 0x40) v -= 0x80n;
    for (let i = 1; i < width; i++) v = (v << 8n) | BigInt(field[i]!);
    return Number(v);
  }
  const text = cString(field).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`the header at offset ${offset} has an invalid ${what} field ${JSON.stringify(text)}.`);
  return parseInt(text, 8);
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** pax records: "<len> <key>=<value>\n", len counting the whole record. */
function parsePax(data: Uint8Array, offset: number): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    const len = space < 0 ? NaN : parseInt(new TextDecoder().decode(data.subarray(i, space)), 10);
    if (!Number.isInteger(len) || len <= 0 || i + len > data.length) throw new TarFormatError(`the pax header at offset ${offset} is malformed.`);
    const record = new TextDecoder().decode(data.subarray(space + 1, i + len - 1));
    const eq = record.indexOf("=");
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    i += len;
  }
  return out;
}

function roundUp(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
