// Hostile archives against the one tar reader and its two extractors (the rootfs extractor and
// the extract rule), in the shapes node-tar's advisories list: traversal, links written through,
// malformed pax, absurd sizes and depths, duplicates. Archives are built byte by byte here.
import { describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { readTar } from "../src/formats/tar-reader.ts";
import { extractRootfs } from "../src/run/rootfs-extract.ts";
import { readMembers } from "../rules/extract.ts";

interface RawEntry {
  name: string;
  type?: string;
  data?: Uint8Array | string;
  linkname?: string;
  /** Overrides of raw header fields: [offset, bytes]. */
  patch?: [number, Uint8Array][];
  /** The size field as written, when it must lie. */
  sizeField?: string;
}

const enc = new TextEncoder();
const bytesOf = (d: Uint8Array | string | undefined) => (typeof d === "string" ? enc.encode(d) : (d ?? new Uint8Array(0)));

function header(e: RawEntry): Uint8Array {
  const h = new Uint8Array(512);
  const put = (at: number, s: string) => h.set(enc.encode(s), at);
  const data = bytesOf(e.data);
  h.set(enc.encode(e.name).subarray(0, 100), 0);
  put(100, "0000644\0");
  put(108, "0000000\0");
  put(116, "0000000\0");
  put(124, e.sizeField ?? `${data.length.toString(8).padStart(11, "0")}\0`);
  put(136, "00000000000\0");
  put(156, e.type ?? "0");
  if (e.linkname) put(157, e.linkname);
  put(257, "ustar\0");
  put(263, "00");
  for (const [at, b] of e.patch ?? []) h.set(b, at);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  put(148, `${sum.toString(8).padStart(6, "0")}\0 `);
  return h;
}

/** Entries, each padded to 512, then the end-of-archive marker. */
function tar(entries: RawEntry[], { end = true } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const data = bytesOf(e.data);
    parts.push(header(e), data, new Uint8Array((512 - (data.length % 512)) % 512));
  }
  if (end) parts.push(new Uint8Array(1024));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function pax(records: string | Uint8Array): RawEntry {
  return { name: "PaxHeader", type: "x", data: records };
}

/** A pax record with its correct length prefix. */
function record(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return `${len}${body}`;
}

/** A fresh destination next to a sentinel directory, to prove nothing lands beside it. */
function destination(): { dest: string; sentinel: string } {
  const base = mkdtempSync(join(tmpdir(), "wmb-tar-attack-"));
  mkdirSync(join(base, "sentinel"));
  return { dest: join(base, "dest"), sentinel: join(base, "sentinel") };
}

describe("the tar reader refuses malformed archives, naming the offset", () => {
  const good = { name: "a.txt", data: "hello" };
  const cases: [string, Uint8Array, RegExp][] = [
    ["a bad header checksum", (() => { const t = tar([good]); t[0] = 0x62; return t; })(), /header at offset 0 has a bad checksum/],
    ["an entry whose data runs past the end", tar([good]).subarray(0, 512 + 3), /entry at offset 0 is truncated/],
    ["no end-of-archive marker", tar([good], { end: false }), /truncated at offset 1024 \(no end-of-archive marker\)/],
    ["a size field that is not octal", tar([{ ...good, sizeField: "12345678z00\0" }]), /invalid size field "12345678z00"/],
    ["a negative base-256 size", tar([{ ...good, patch: [[124, new Uint8Array([0xff, ...new Array(11).fill(0xff)])]] }]), /negative size/],
    ["a pax record whose length runs past its header", tar([pax("99 path=x\n"), good]), /pax header at offset 0 is malformed/],
    ["a pax record without key=value", tar([pax("8 nokey\n"), good]), /pax header at offset 0 is malformed/],
    ["a pax record that is not UTF-8", tar([pax(new Uint8Array([...enc.encode("12 path="), 0xff, 0xfe, 0x41, 0x0a])), good]), /not UTF-8/],
    ["a pax size that is not a decimal", tar([pax(record("size", "0x10")), good]), /pax size "0x10" .* is not a decimal number/],
    ["a pax path with a NUL", tar([pax(record("path", "a\0b")), good]), /has a path with a NUL character/],
    ["a global pax size for every entry", tar([{ name: "g", type: "g", data: record("size", "5") }, good]), /global pax header .* sets a size/],
  ];
  for (const [what, bytes, refusal] of cases) {
    it(what, () => {
      expect(() => readTar(bytes)).toThrow(refusal);
    });
  }

  it("entries and totals above the caller's limits", () => {
    const three = tar([good, { ...good, name: "b" }, { ...good, name: "c" }]);
    expect(() => readTar(three, { maxEntries: 2 })).toThrow(/more than the 2 entries allowed/);
    expect(() => readTar(three, { maxEntryBytes: 4 })).toThrow(/is 5 bytes, more than the 4 allowed/);
    expect(() => readTar(three, { maxTotalBytes: 12 })).toThrow(/more than the 12 bytes allowed/);
    // A header that claims a huge size is refused on the claim, before any data is read.
    const huge = tar([{ ...good, sizeField: `${(300 * 1024 * 1024).toString(8).padStart(11, "0")}\0` }], { end: false });
    expect(() => readTar(huge, { maxEntryBytes: 256 << 20 })).toThrow(/more than the 268435456 allowed/);
  });
});

describe("rootfs extraction refuses what would escape or depend on the host, writing nothing", () => {
  const cases: [string, RawEntry[], RegExp][] = [
    ["an absolute path", [{ name: "/etc/passwd", data: "x" }], /absolute path/],
    ["a .. segment", [{ name: "a/../../escape", data: "x" }], /contains "\.\."/],
    ["a Windows drive path", [{ name: "C:/windows/x", data: "x" }], /absolute path/],
    ["a backslash path", [{ name: "..\\..\\escape", data: "x" }], /backslash/],
    ["a symlink out, then a file written through it (CVE-2021-32803)", [{ name: "a", type: "2", linkname: "/tmp" }, { name: "a/x", data: "x" }], /symbolic link/],
    ["a hard link to a host file", [{ name: "h", type: "1", linkname: "/etc/passwd" }], /hard link/],
    ["a device node", [{ name: "dev", type: "3" }], /device node/],
    ["a fifo", [{ name: "f", type: "6" }], /fifo/],
    ["the same file twice", [{ name: "x", data: "1" }, { name: "x", data: "2" }], /appears more than once/],
    ["a file, then a directory of the same name", [{ name: "x", data: "1" }, { name: "x/", type: "5" }], /appears more than once/],
    ["a file below a file", [{ name: "x", data: "1" }, { name: "x/y", data: "2" }], /lies below the file "x"/],
    ["two names equal after Unicode normalization", [{ name: "caf\u00e9", data: "1" }, { name: "cafe\u0301", data: "2" }], /appears more than once/],
    ["a path thousands of directories deep (CVE-2024-28863)", [{ name: "x", data: "1", patch: [] }], /directories deep/],
  ];
  // The deep path needs a pax path (ustar names stop at 255 bytes).
  cases[cases.length - 1]![1] = [pax(record("path", `${"d/".repeat(3000)}f`)), { name: "placeholder", data: "x" }];

  for (const [what, entries, refusal] of cases) {
    it(what, async () => {
      const { dest, sentinel } = destination();
      await expect(extractRootfs(tar(entries), dest)).rejects.toThrow(refusal);
      expect(readdirSync(sentinel)).toEqual([]);
      expect(readdirSync(join(dest, ".."))).toContain("sentinel");
      expect(existsSync(dest)).toBe(false); // validated before anything, even dest, is written
    });
  }
});

describe("the extract rule reads members through the same reader", () => {
  it("takes a regular member from plain and gzipped tarballs", () => {
    const t = tar([{ name: "./pkg/a.txt", data: "A" }, { name: "pkg/b.txt", data: "B" }]);
    for (const bytes of [t, gzipSync(t)]) {
      const m = readMembers(bytes, new Set(["pkg/a.txt", "pkg/b.txt"]));
      expect(new TextDecoder().decode(m.get("pkg/a.txt"))).toBe("A");
      expect(new TextDecoder().decode(m.get("pkg/b.txt"))).toBe("B");
    }
  });

  it("refuses a wanted member that is a link, or present twice", () => {
    expect(() => readMembers(tar([{ name: "pkg/a.txt", type: "2", linkname: "/etc/passwd" }]), new Set(["pkg/a.txt"]))).toThrow(/member "pkg\/a.txt" is a symlink, not a regular file/);
    expect(() => readMembers(tar([{ name: "pkg/a.txt", type: "1", linkname: "pkg/b" }]), new Set(["pkg/a.txt"]))).toThrow(/is a hardlink/);
    expect(() => readMembers(tar([{ name: "pkg/a.txt", data: "1" }, { name: "pkg/a.txt", data: "2" }]), new Set(["pkg/a.txt"]))).toThrow(/appears more than once/);
  });

  it("refuses a corrupt tarball and a corrupt gzip stream with the reader's reason", () => {
    const t = tar([{ name: "a", data: "1" }]);
    t[0] ^= 1;
    expect(() => readMembers(t, new Set(["a"]))).toThrow(/not a readable tarball: the header at offset 0 has a bad checksum/);
    const gz = gzipSync(tar([{ name: "a", data: "1" }]));
    expect(() => readMembers(gz.subarray(0, gz.length - 8), new Set(["a"]))).toThrow(/not a readable gzip stream/);
  });
});
