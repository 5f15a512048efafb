// extractRootfs against hand-crafted hostile tars: every way out of the destination is refused
// before anything is written, and a good tar lands read-only.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tar from "tar";
import { afterAll, describe, expect, it } from "vitest";
import { extractRootfs, removeExtractedRootfs } from "../src/run/rootfs-extract.ts";
import { WmbError } from "../src/errors.ts";

interface TarEntrySpec {
  name: string;
  type?: string;
  data?: string | Uint8Array;
  linkname?: string;
  mode?: number;
  /** ustar prefix field (joined to name with "/"). */
  prefix?: string;
  /** A pax extended header placed before the entry. */
  pax?: Record<string, string>;
  /** A GNU long-name entry placed before the entry. */
  gnuLongName?: string;
}

const enc = new TextEncoder();

function putString(block: Uint8Array, offset: number, length: number, s: string): void {
  const bytes = enc.encode(s);
  if (bytes.length > length) throw new Error(`field too long: ${s}`);
  block.set(bytes, offset);
}

function putOctal(block: Uint8Array, offset: number, length: number, n: number): void {
  putString(block, offset, length, n.toString(8).padStart(length - 1, "0") + "\0");
}

function headerBlock(name: string, type: string, size: number, opts: { linkname?: string; mode?: number; prefix?: string }): Uint8Array {
  const h = new Uint8Array(512);
  putString(h, 0, 100, name);
  putOctal(h, 100, 8, opts.mode ?? (type === "5" ? 0o755 : 0o644));
  putOctal(h, 108, 8, 0);
  putOctal(h, 116, 8, 0);
  putOctal(h, 124, 12, size);
  putOctal(h, 136, 12, 0);
  h[156] = type.charCodeAt(0);
  putString(h, 157, 100, opts.linkname ?? "");
  putString(h, 257, 6, "ustar\0");
  putString(h, 263, 2, "00");
  putString(h, 345, 155, opts.prefix ?? "");
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  putString(h, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

function padded(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.length / 512) * 512);
  out.set(data);
  return out;
}

function paxData(records: Record<string, string>): Uint8Array {
  let text = "";
  for (const [k, v] of Object.entries(records)) {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    text += `${len}${body}`;
  }
  return enc.encode(text);
}

/** A ustar archive built by hand, so it can hold anything an attacker would put in one. */
function craftTar(entries: TarEntrySpec[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const e of entries) {
    if (e.pax) {
      const data = paxData(e.pax);
      blocks.push(headerBlock("PaxHeader", "x", data.length, {}), padded(data));
    }
    if (e.gnuLongName !== undefined) {
      const data = enc.encode(e.gnuLongName + "\0");
      blocks.push(headerBlock("././@LongLink", "L", data.length, {}), padded(data));
    }
    const data = typeof e.data === "string" ? enc.encode(e.data) : (e.data ?? new Uint8Array());
    blocks.push(headerBlock(e.name, e.type ?? "0", data.length, e), padded(data));
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let o = 0;
  for (const b of blocks) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}

const made: string[] = [];
function freshDir(): string {
  const d = mkdtempSync(join(tmpdir(), "wmb-rootfs-test-"));
  made.push(d);
  return join(d, "rootfs");
}

afterAll(async () => {
  for (const d of made) await removeExtractedRootfs(d);
});

async function expectRefused(entries: TarEntrySpec[], message: RegExp): Promise<string> {
  const dest = freshDir();
  const err = await extractRootfs(craftTar(entries), dest).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WmbError);
  expect((err as WmbError).message).toMatch(message);
  // Validation happens before any write: the destination holds nothing.
  expect(existsSync(dest) ? readdirSync(dest) : []).toEqual([]);
  return (err as WmbError).message;
}

describe("extractRootfs: a good rootfs", () => {
  it("extracts files and directories and makes the tree read-only", async () => {
    const dest = freshDir();
    const r = await extractRootfs(
      craftTar([
        { name: "db/", type: "5" },
        { name: ".sqliterc", data: ".mode box\n" },
        { name: "etc/motd", data: "hello\n" }, // parent directory not listed: created implicitly
        { name: "bin/tool", data: "x", mode: 0o755 },
      ]),
      dest,
    );
    expect(r.entries).toEqual(["db/", ".sqliterc", "etc/motd", "bin/tool"]);
    expect(readFileSync(join(dest, ".sqliterc"), "utf8")).toBe(".mode box\n");
    expect(readFileSync(join(dest, "etc/motd"), "utf8")).toBe("hello\n");
    expect(statSync(join(dest, "db")).isDirectory()).toBe(true);
    const mode = (p: string) => statSync(join(dest, p)).mode & 0o777;
    expect(mode(".sqliterc")).toBe(0o444);
    expect(mode("bin/tool")).toBe(0o555);
    expect(mode("etc")).toBe(0o555);
    expect(mode("db")).toBe(0o555);
    expect(mode(".")).toBe(0o555);
  });

  it("reads archives written by the tar package (pax headers, long names, ./ prefixes)", async () => {
    const src = mkdtempSync(join(tmpdir(), "wmb-rootfs-src-"));
    made.push(src);
    const long = "d".repeat(120);
    mkdirSync(join(src, long), { recursive: true });
    writeFileSync(join(src, long, "f".repeat(110)), "deep");
    writeFileSync(join(src, "top"), "t");
    const tgz = join(src, "..", `${src.split("/").pop()}.tar`);
    await tar.c({ file: tgz, cwd: src, portable: true }, ["."]);
    const dest = freshDir();
    await extractRootfs(readFileSync(tgz), dest);
    expect(readFileSync(join(dest, long, "f".repeat(110)), "utf8")).toBe("deep");
    expect(readFileSync(join(dest, "top"), "utf8")).toBe("t");
  });

  it("accepts the same directory twice and a ./ root entry", async () => {
    const dest = freshDir();
    await extractRootfs(craftTar([{ name: "./", type: "5" }, { name: "a/", type: "5" }, { name: "./a", type: "5" }, { name: "a/x", data: "1" }]), dest);
    expect(readFileSync(join(dest, "a/x"), "utf8")).toBe("1");
  });
});

describe("extractRootfs: hostile archives are refused, naming the entry", () => {
  it("absolute paths", async () => {
    const msg = await expectRefused([{ name: "ok", data: "1" }, { name: "/etc/evil", data: "x" }], /absolute path/);
    expect(msg).toContain('"/etc/evil"');
  });

  it(".. components", async () => {
    await expectRefused([{ name: "../evil", data: "x" }], /"\.\.\/evil".*outside the rootfs/);
    await expectRefused([{ name: "a/../../evil", data: "x" }], /"a\/\.\.\/\.\.\/evil"/);
    await expectRefused([{ name: "a/b/..", type: "5" }], /"a\/b\/\.\."/);
  });

  it("a benign ustar name overridden by a pax path, a GNU long name or the prefix field", async () => {
    await expectRefused([{ name: "innocent", data: "x", pax: { path: "../../pax-evil" } }], /"\.\.\/\.\.\/pax-evil"/);
    await expectRefused([{ name: "innocent", data: "x", gnuLongName: "/tmp/gnu-evil" }], /"\/tmp\/gnu-evil".*absolute/);
    await expectRefused([{ name: "evil", data: "x", prefix: "../.." }], /"\.\.\/\.\.\/evil"/);
  });

  it("symbolic links, pointing out or not", async () => {
    await expectRefused([{ name: "passwd", type: "2", linkname: "/etc/passwd" }], /"passwd" is a symbolic link/);
    await expectRefused([{ name: "up", type: "2", linkname: "../../.." }], /"up" is a symbolic link/);
    // The classic two-step: a link to a directory outside, then a file written through it.
    await expectRefused(
      [
        { name: "out", type: "2", linkname: "/tmp" },
        { name: "out/pwned", data: "x" },
      ],
      /"out" is a symbolic link/,
    );
  });

  it("hard links", async () => {
    await expectRefused([{ name: "shadow", type: "1", linkname: "/etc/shadow" }], /"shadow" is a hard link/);
    await expectRefused([{ name: "a", data: "x" }, { name: "b", type: "1", linkname: "a" }], /"b" is a hard link/);
  });

  it("devices, fifos and unknown types", async () => {
    await expectRefused([{ name: "dev/sda", type: "4" }], /"dev\/sda" is a device node/);
    await expectRefused([{ name: "dev/mem", type: "3" }], /"dev\/mem" is a device node/);
    await expectRefused([{ name: "pipe", type: "6" }], /"pipe" is a fifo/);
    await expectRefused([{ name: "weird", type: "S" }], /"weird" has unsupported tar type/);
  });

  it("duplicate files and files below files", async () => {
    await expectRefused([{ name: "a", data: "1" }, { name: "a", data: "2" }], /"a" appears more than once/);
    await expectRefused([{ name: "a", data: "1" }, { name: "a/b", data: "2" }], /"a\/b" lies below the file "a"/);
    await expectRefused([{ name: "a/b", data: "1" }, { name: "a", data: "2" }], /"a" appears more than once/);
  });

  it("corrupt and truncated archives", async () => {
    const good = craftTar([{ name: "a", data: "hello" }]);
    const corrupt = good.slice();
    corrupt[0] = "b".charCodeAt(0);
    const dest = freshDir();
    await expect(extractRootfs(corrupt, dest)).rejects.toThrow(/bad checksum/);
    await expect(extractRootfs(good.subarray(0, 512), freshDir())).rejects.toThrow(/truncated/);
    await expect(extractRootfs(good.subarray(0, 1024), freshDir())).rejects.toThrow(/truncated/);
  });

  it("a destination that is not empty", async () => {
    const dest = freshDir();
    mkdirSync(dest, { recursive: true });
    writeFileSync(join(dest, "already"), "");
    await expect(extractRootfs(craftTar([{ name: "a", data: "1" }]), dest)).rejects.toThrow(/not empty/);
  });
});
