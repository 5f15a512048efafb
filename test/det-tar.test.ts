import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync, linkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tar from "tar";
import { describe, expect, it } from "vitest";
import { writeDeterministicTar, type DeterministicTarEntry } from "../src/formats/det-tar.ts";
import { looksLikeTar, readTar } from "../src/formats/tar-reader.ts";

const text = (s: string) => new TextEncoder().encode(s);

const ENTRIES: DeterministicTarEntry[] = [
  { path: "/etc/motd", type: "file", data: text("hello\n"), mode: 0o600 },
  { path: "/db", type: "dir", mode: 0o700 },
  { path: "/.sqliterc", type: "file", data: text(".headers on\n") },
  { path: "bin/tool", type: "file", data: text("#!/bin/sh\n"), mode: 0o700 },
  { path: "a-b", type: "file", data: new Uint8Array(513).fill(7) },
];

describe("writeDeterministicTar", () => {
  const bytes = writeDeterministicTar(ENTRIES, { mtime: 1700000000 });

  it("sorts entries by name bytes, adds parents, normalizes modes, owners and mtime", () => {
    const entries = readTar(bytes);
    expect(entries.map((e) => e.path)).toEqual([".sqliterc", "a-b", "bin/", "bin/tool", "db/", "etc/", "etc/motd"]);
    expect(entries.map((e) => e.mode.toString(8))).toEqual(["644", "644", "755", "755", "755", "755", "644"]);
    expect(entries.map((e) => e.type)).toEqual(["file", "file", "dir", "file", "dir", "dir", "file"]);
    for (const e of entries) {
      expect(e.mtime).toBe(1700000000);
      expect([e.uid, e.gid, e.uname, e.gname]).toEqual([0, 0, "", ""]);
      expect(e.pax).toEqual({});
      expect(e.typeflag).toBe(e.type === "dir" ? "5" : "0");
    }
    expect(new TextDecoder().decode(entries.find((e) => e.path === "etc/motd")!.data)).toBe("hello\n");
    expect(entries.find((e) => e.path === "a-b")!.size).toBe(513);
  });

  it("has the exact ustar layout and ends with two zero blocks", () => {
    // 7 headers + data blocks (1 + 2 + 1 + 1) + 2 end blocks.
    expect(bytes.length).toBe(512 * (7 + 5 + 2));
    expect(bytes.subarray(bytes.length - 1024).every((b) => b === 0)).toBe(true);
    const first = bytes.subarray(0, 512);
    const field = (a: number, n: number) => new TextDecoder().decode(first.subarray(a, a + n));
    expect(field(0, 10)).toBe(".sqliterc\0");
    expect(field(100, 8)).toBe("0000644\0");
    expect(field(136, 12)).toBe(`${(1700000000).toString(8)}\0`);
    expect(field(257, 8)).toBe("ustar\x0000");
    expect(first.subarray(265, 329).every((b) => b === 0)).toBe(true);
  });

  it("gives the same bytes for any input order and umask-like modes", () => {
    const shuffled = [...ENTRIES].reverse().map((e) => (e.type === "file" && e.mode === 0o600 ? { ...e, mode: 0o644 } : e));
    const again = writeDeterministicTar(shuffled, { mtime: 1700000000 });
    expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
    const otherTime = writeDeterministicTar(ENTRIES, { mtime: 0 });
    expect(Buffer.from(otherTime).equals(Buffer.from(bytes))).toBe(false);
  });

  it("is read the same way by the system tar and the tar npm package", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wmb-dettar-"));
    const file = join(dir, "a.tar");
    writeFileSync(file, bytes);
    const listing = execFileSync("tar", ["--numeric-owner", "-tvf", file], { encoding: "utf8", env: { ...process.env, TZ: "UTC" } });
    const lines = listing.trim().split("\n");
    expect(lines).toHaveLength(7);
    expect(lines[0]).toMatch(/^-rw-r--r-- 0\/0 +12 2023-11-14 22:13 \.sqliterc$/);
    expect(lines[3]).toMatch(/^-rwxr-xr-x 0\/0 +10 2023-11-14 22:13 bin\/tool$/);
    expect(lines[4]).toMatch(/^drwxr-xr-x 0\/0 +0 2023-11-14 22:13 db\/$/);

    const seen: { path: string; mtime?: Date; uid?: number }[] = [];
    await tar.t({ file, onReadEntry: (e) => seen.push({ path: e.path, mtime: e.mtime, uid: e.uid }) });
    expect(seen.map((e) => e.path)).toEqual([".sqliterc", "a-b", "bin/", "bin/tool", "db/", "etc/", "etc/motd"]);
    expect(seen.every((e) => e.mtime?.getTime() === 1700000000 * 1000 && e.uid === 0)).toBe(true);

    const out = join(dir, "x");
    mkdirSync(out);
    execFileSync("tar", ["-xf", file, "-C", out]);
    expect(readFileSync(join(out, "etc/motd"), "utf8")).toBe("hello\n");
  });

  it("splits long names into ustar prefix and name", () => {
    const dirs = `${"d".repeat(60)}/${"e".repeat(60)}`;
    const long = `${dirs}/${"f".repeat(90)}`;
    const t = writeDeterministicTar([{ path: long, type: "file", data: text("x") }], { mtime: 0 });
    const entries = readTar(t);
    expect(entries.map((e) => e.path)).toEqual([`${"d".repeat(60)}/`, `${dirs}/`, long]);
    expect(entries.every((e) => Object.keys(e.pax).length === 0)).toBe(true);
    // The name field holds only the part after the split.
    expect(new TextDecoder().decode(t.subarray(512, 512 + 62))).toBe(`${"e".repeat(60)}/\0`);
    expect(new TextDecoder().decode(t.subarray(1024, 1024 + 91))).toBe(`${"f".repeat(90)}\0`);
    expect(() => writeDeterministicTar([{ path: `${"d".repeat(120)}/x`, type: "file" }], { mtime: 0 })).toThrow(/too long/);
    expect(() => writeDeterministicTar([{ path: "x".repeat(101), type: "file" }], { mtime: 0 })).toThrow(/too long/);
  });

  it("refuses ambiguous input", () => {
    expect(() => writeDeterministicTar([{ path: "a", type: "file" }, { path: "/a", type: "file" }], { mtime: 0 })).toThrow(/more than once/);
    expect(() => writeDeterministicTar([{ path: "a", type: "file" }, { path: "a/b", type: "file" }], { mtime: 0 })).toThrow(/which is a file/);
    expect(() => writeDeterministicTar([{ path: "../x", type: "file" }], { mtime: 0 })).toThrow(/\.\./);
    expect(() => writeDeterministicTar([{ path: "/", type: "dir" }], { mtime: 0 })).toThrow(/root/);
    expect(() => writeDeterministicTar([], { mtime: -1 })).toThrow(/mtime/);
    expect(() => writeDeterministicTar([], { mtime: 1.5 })).toThrow(/mtime/);
  });

  it("writes an empty archive as two zero blocks", () => {
    const t = writeDeterministicTar([], { mtime: 0 });
    expect(t.length).toBe(1024);
    expect(readTar(t)).toEqual([]);
    expect(looksLikeTar(t)).toBe(true);
    expect(looksLikeTar(text("hello"))).toBe(false);
  });
});

describe("readTar", () => {
  it("reads links, fifos, owners and pax headers written by the system tar", () => {
    const dir = mkdtempSync(join(tmpdir(), "wmb-readtar-"));
    const src = join(dir, "src");
    mkdirSync(src);
    writeFileSync(join(src, "file"), "data");
    symlinkSync("file", join(src, "sym"));
    linkSync(join(src, "file"), join(src, "hard"));
    execFileSync("mkfifo", [join(src, "fifo")]);
    const longName = "n".repeat(150);
    writeFileSync(join(src, longName), "long");
    const file = join(dir, "pax.tar");
    execFileSync("tar", ["--format=pax", "--owner=1234", "--group=99", "--mtime=@1000000000", "-cf", file, "-C", src, "."]);
    const byPath = new Map(readTar(readFileSync(file)).map((e) => [e.path, e]));
    expect(byPath.get("./file")).toMatchObject({ type: "file", uid: 1234, gid: 99, size: 4, mtime: 1000000000 });
    expect(new TextDecoder().decode(byPath.get("./file")!.data)).toBe("data");
    expect(byPath.get("./sym")).toMatchObject({ type: "symlink", linkname: "file", size: 0 });
    // One of the two names of the inode is stored as a hard link to the other.
    const hard = [byPath.get("./hard")!, byPath.get("./file")!].map((e) => e.type).sort();
    expect(hard).toEqual(["file", "hardlink"]);
    expect(byPath.get("./fifo")!.type).toBe("fifo");
    expect(byPath.get("./")!.type).toBe("dir");
    const long = byPath.get(`./${longName}`)!;
    expect(long.pax.path).toBe(`./${longName}`);
    expect(new TextDecoder().decode(long.data)).toBe("long");
  });

  it("reads GNU long names and rejects corrupt headers", () => {
    const dir = mkdtempSync(join(tmpdir(), "wmb-readtar-gnu-"));
    const longName = "g".repeat(200);
    writeFileSync(join(dir, longName), "gnu");
    const file = join(dir, "gnu.tar");
    execFileSync("tar", ["--format=gnu", "-cf", file, "-C", dir, longName]);
    const bytes = readFileSync(file);
    const entries = readTar(bytes);
    expect(entries.map((e) => [e.path, e.size])).toEqual([[longName, 3]]);

    const corrupt = Uint8Array.from(writeDeterministicTar([{ path: "a", type: "file", data: text("x") }], { mtime: 0 }));
    corrupt[0] = 0x62; // "b": the checksum no longer matches
    expect(() => readTar(corrupt)).toThrow(/bad checksum/);
    const truncated = writeDeterministicTar([{ path: "a", type: "file", data: text("x") }], { mtime: 0 }).subarray(0, 700);
    expect(() => readTar(truncated)).toThrow(/truncated/);
  });
});
