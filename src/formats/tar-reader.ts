// The one tar reader: bundles, rootfs extraction, the extract rule, verify's diffs and the spec
// rule all parse archives here, so a hostile archive is refused the same way everywhere.
//
// It understands what real-world tars contain (ustar, pax `x`/`g` records, GNU long names and
// base-256 numbers) and refuses, with a TarFormatError naming the offset: bad checksums,
// truncated entries or headers, malformed numbers (negative base-256 included), malformed or
// non-UTF-8 pax records, pax overrides that are not what they claim (a `size` that is not a
// decimal, a `path` with NUL), entries or archives larger than the caller's limits, and more
// entries than it allows. Where files land is the extractor's business (rootfs-extract.ts
// refuses links, `..` and absolute paths); the reader only reports names as stored.

const BLOCK = 512;

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

export interface TarLimits {
  /** Largest single entry, in bytes. */
  maxEntryBytes?: number;
  /** Largest sum of entry sizes. */
  maxTotalBytes?: number;
  maxEntries?: number;
}

/** Generous defaults: the sqlite-autoconf tarball (~40 MB unpacked) fits many times over. */
export const DEFAULT_TAR_LIMITS: Required<TarLimits> = {
  maxEntryBytes: 1 << 30,
  maxTotalBytes: 4 * (1 << 30),
  maxEntries: 1_000_000,
};

export class TarFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TarFormatError";
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Every entry of a tar archive, in archive order. Throws TarFormatError on a corrupt or oversized archive. */
export function readTar(bytes: Uint8Array, limits: TarLimits = {}): TarEntry[] {
  const { maxEntryBytes, maxTotalBytes, maxEntries } = { ...DEFAULT_TAR_LIMITS, ...limits };
  const out: TarEntry[] = [];
  let offset = 0;
  let total = 0;
  let global: Record<string, string> = {};
  let local: Record<string, string> = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    // No end-of-archive marker: a download or copy cut off at a block boundary looks just
    // like this, so it is refused rather than taken as a whole archive.
    if (offset + BLOCK > bytes.length) throw new TarFormatError(`the archive is truncated at offset ${offset} (no end-of-archive marker).`);
    const h = bytes.subarray(offset, offset + BLOCK);
    if (h.every((b) => b === 0)) break;
    const expected = readNumber(h, 148, 8, "checksum", offset);
    if (expected !== headerChecksum(h)) throw new TarFormatError(`the header at offset ${offset} has a bad checksum.`);
    const typeflag = String.fromCharCode(h[156]!);
    const isMeta = typeflag === "x" || typeflag === "g" || typeflag === "L" || typeflag === "K";
    let size = readNumber(h, 124, 12, "size", offset);
    if (!isMeta && local.size !== undefined) size = paxNumber(local.size, "size", offset);
    if (size > maxEntryBytes) throw new TarFormatError(`the entry at offset ${offset} is ${size} bytes, more than the ${maxEntryBytes} allowed.`);
    total += size;
    if (total > maxTotalBytes) throw new TarFormatError(`the archive holds more than the ${maxTotalBytes} bytes allowed (at offset ${offset}).`);
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
      const records = parsePax(data, headerOffset);
      if (records.size !== undefined) throw new TarFormatError(`the global pax header at offset ${headerOffset} sets a size for every entry.`);
      global = { ...global, ...records };
      continue;
    }
    if (typeflag === "L") {
      longName = name(data, "GNU long name", headerOffset);
      continue;
    }
    if (typeflag === "K") {
      longLink = name(data, "GNU long link", headerOffset);
      continue;
    }
    if (out.length >= maxEntries) throw new TarFormatError(`the archive holds more than the ${maxEntries} entries allowed.`);
    const pax = { ...global, ...local };
    const ustar = cString(h.subarray(257, 263), "magic", headerOffset).startsWith("ustar");
    const prefix = ustar ? cString(h.subarray(345, 500), "prefix", headerOffset) : "";
    const rawName = cString(h.subarray(0, 100), "name", headerOffset);
    const path = pax.path ?? longName ?? (prefix ? `${prefix}/${rawName}` : rawName);
    const linkname = pax.linkpath ?? longLink ?? cString(h.subarray(157, 257), "linkname", headerOffset);
    for (const [what, value] of [["path", path], ["link name", linkname]] as const) {
      if (value.includes("\0")) throw new TarFormatError(`the entry at offset ${headerOffset} has a ${what} with a NUL character.`);
    }
    if (path === "") throw new TarFormatError(`the entry at offset ${headerOffset} has an empty name.`);
    out.push({
      path,
      type: entryType(typeflag, path),
      typeflag,
      mode: readNumber(h, 100, 8, "mode", headerOffset),
      uid: pax.uid !== undefined ? paxNumber(pax.uid, "uid", headerOffset) : readNumber(h, 108, 8, "uid", headerOffset),
      gid: pax.gid !== undefined ? paxNumber(pax.gid, "gid", headerOffset) : readNumber(h, 116, 8, "gid", headerOffset),
      uname: pax.uname ?? (ustar ? cString(h.subarray(265, 297), "uname", headerOffset) : ""),
      gname: pax.gname ?? (ustar ? cString(h.subarray(297, 329), "gname", headerOffset) : ""),
      mtime: pax.mtime !== undefined ? Number(pax.mtime) : readNumber(h, 136, 12, "mtime", headerOffset),
      size,
      linkname,
      data,
      pax,
      offset: headerOffset,
    });
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

export function headerChecksum(h: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum;
}

function readNumber(h: Uint8Array, at: number, width: number, what: string, offset: number): number {
  const field = h.subarray(at, at + width);
  if (field[0]! & 0x80) {
    // GNU base-256: big-endian two's complement with the top bit of the first byte as marker.
    if (field[0]! & 0x40) throw new TarFormatError(`the header at offset ${offset} has a negative ${what}.`);
    let v = BigInt(field[0]! & 0x3f);
    for (let i = 1; i < width; i++) v = (v << 8n) | BigInt(field[i]!);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new TarFormatError(`the header at offset ${offset} has an absurd ${what}.`);
    return Number(v);
  }
  const text = cString(field, what, offset).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`the header at offset ${offset} has an invalid ${what} field ${JSON.stringify(text)}.`);
  return parseInt(text, 8);
}

function paxNumber(value: string, what: string, offset: number): number {
  if (!/^[0-9]{1,15}$/.test(value)) throw new TarFormatError(`the pax ${what} ${JSON.stringify(value)} before offset ${offset} is not a decimal number.`);
  return Number(value);
}

function cString(bytes: Uint8Array, what: string, offset: number): string {
  const end = bytes.indexOf(0);
  return text(end < 0 ? bytes : bytes.subarray(0, end), what, offset);
}

function name(data: Uint8Array, what: string, offset: number): string {
  const end = data.indexOf(0);
  return text(end < 0 ? data : data.subarray(0, end), what, offset);
}

function text(bytes: Uint8Array, what: string, offset: number): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new TarFormatError(`the ${what} of the header at offset ${offset} is not UTF-8.`);
  }
}

/** pax records: "<len> <key>=<value>\n", len counting the whole record. Anything else is refused. */
function parsePax(data: Uint8Array, offset: number): Record<string, string> {
  const out: Record<string, string> = {};
  const malformed = () => new TarFormatError(`the pax header at offset ${offset} is malformed.`);
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    if (space < 0 || space - i > 12) throw malformed();
    const lenText = text(data.subarray(i, space), "pax record length", offset);
    if (!/^[1-9][0-9]*$/.test(lenText)) throw malformed();
    const len = Number(lenText);
    if (i + len > data.length || data[i + len - 1] !== 0x0a || space + 1 >= i + len) throw malformed();
    const record = text(data.subarray(space + 1, i + len - 1), "pax record", offset);
    const eq = record.indexOf("=");
    if (eq <= 0) throw malformed();
    out[record.slice(0, eq)] = record.slice(eq + 1);
    i += len;
  }
  return out;
}

function roundUp(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}
