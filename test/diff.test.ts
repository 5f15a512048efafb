import { parse } from "@bytecodealliance/jco-transpile/wasm-tools";
import { describe, expect, it } from "vitest";
import { writeDeterministicTar, type DeterministicTarEntry } from "../src/formats/det-tar.ts";
import { diffArtifacts, type DiffReport } from "../src/formats/diff.ts";

const text = (s: string) => new TextEncoder().encode(s);

function as<K extends DiffReport["kind"]>(r: DiffReport, kind: K): Extract<DiffReport, { kind: K }> {
  expect(r.kind).toBe(kind);
  return r as Extract<DiffReport, { kind: K }>;
}

describe("diffArtifacts", () => {
  it("says identical for the same bytes", () => {
    const r = diffArtifacts(text("x"), text("x"), "a.txt");
    expect(r.kind).toBe("identical");
    expect(r.summary).toBe("a.txt: identical (1 bytes)");
  });

  it("diffs tar archives by entry and field", () => {
    const entries: DeterministicTarEntry[] = [
      { path: "db", type: "dir" },
      { path: ".sqliterc", type: "file", data: text(".headers on\n.mode box\n") },
      { path: "gone", type: "file", data: text("bye") },
      { path: "tool", type: "file", data: text("#!") },
    ];
    const a = writeDeterministicTar(entries, { mtime: 0 });
    const b = writeDeterministicTar(
      [
        { path: "db", type: "dir" },
        { path: ".sqliterc", type: "file", data: text(".headers on\n.mode csv\n") },
        { path: "new", type: "file", data: text("hi") },
        { path: "tool", type: "file", data: text("#!"), mode: 0o755 },
      ],
      { mtime: 86400 },
    );
    const r = as(diffArtifacts(a, b, "sqlite-cli.rootfs.tar"), "tar");
    expect(r.added).toEqual(["new"]);
    expect(r.removed).toEqual(["gone"]);
    const byPath = Object.fromEntries(r.changed.map((c) => [c.path, c.fields.map((f) => f.field)]));
    expect(byPath).toEqual({ ".sqliterc": ["mtime", "content"], "db/": ["mtime"], tool: ["mode", "mtime"] });
    const mode = r.changed.find((c) => c.path === "tool")!.fields[0]!;
    expect([mode.a, mode.b]).toEqual(["0644", "0755"]);
    expect(r.changed.find((c) => c.path === "db/")!.fields[0]).toEqual({ field: "mtime", a: "0", b: "86400" });
    expect(r.orderDiffers).toBe(false);
    expect(r.summary).toBe("tar sqlite-cli.rootfs.tar: 1 added, 1 removed, 3 changed (mtime, content, mode)");
    // The changed text file comes with its own small line diff.
    expect(r.text).toContain("    -.mode box");
    expect(r.text).toContain("    +.mode csv");
    expect(r.text).toContain("- gone");
    expect(r.text).toContain("+ new");
  });

  it("names owner changes and order changes in a tar written by someone else", () => {
    const a = writeDeterministicTar([{ path: "a", type: "file", data: text("1") }, { path: "b", type: "file", data: text("2") }], { mtime: 0 });
    // Same entries in another order with another owner: patch a copy of the headers by hand.
    const swapped = new Uint8Array(a.length);
    swapped.set(a.subarray(1024, 2048), 0);
    swapped.set(a.subarray(0, 1024), 1024);
    const owned = Uint8Array.from(swapped);
    owned.set(text("0001750\0"), 108); // uid 1000 on the first header ("b")
    fixChecksum(owned.subarray(0, 512));
    const r = as(diffArtifacts(a, owned, "x.tar"), "tar");
    expect(r.orderDiffers).toBe(true);
    expect(r.changed).toEqual([{ path: "b", fields: [{ field: "owner", a: "0:0 (-:-)", b: "1000:0 (-:-)" }] }]);
    expect(r.text).toContain("order: entry 0 is a in a, b in b");
  });

  it("diffs wasm binaries by section, descending into nested modules", async () => {
    const a = await parse(`(component (core module (memory 1 2) (func (export "f") (result i32) i32.const 1)) (@custom "note" "x"))`);
    const b = await parse(`(component (core module (memory 1 4) (func (export "f") (result i32) i32.const 1)) (@custom "extra" "y") (@custom "note" "x"))`);
    const r = as(diffArtifacts(a, b, "sqlite-cli.wasm"), "wasm");
    expect(r.moduleKindA).toBe("component");
    expect(r.sections.map((s) => [s.name, s.change])).toEqual([
      ["core module", "changed"],
      ["custom:extra", "added"],
    ]);
    expect(r.sections[0]!.nested!.map((s) => [s.name, s.change, s.sizeA, s.sizeB])).toEqual([["memory", "changed", 4, 4]]);
    expect(r.summary).toBe("wasm sqlite-cli.wasm: 1 section changed, 1 section added (first: core module)");
    expect(r.text).toMatch(/~ section #0\/#0 core module: \d+ -> \d+ bytes\n {4}~ section #\d\/#\d memory: 4 -> 4 bytes\n\+ section #1 custom:extra: 7 bytes/);
  });

  it("diffs JSON by path with both values", () => {
    const a = text(JSON.stringify({ name: "m", capability_profile: { network: "deny", cpus: 1 }, composition: { bindings: [{ import_name: "wasi:a" }, { import_name: "wasi:b" }] } }));
    const b = text(JSON.stringify({ name: "m", capability_profile: { network: "allow", cpus: 1 }, composition: { bindings: [{ import_name: "wasi:a" }] }, seal: {} }, null, 2));
    const r = as(diffArtifacts(a, b, "sqlite-cli.json"), "json");
    expect(r.changes).toEqual([
      { path: "$.capability_profile.network", a: '"deny"', b: '"allow"' },
      { path: "$.composition.bindings[1]", a: '{"import_name":"wasi:b"}', b: "(absent)" },
      { path: "$.seal", a: "(absent)", b: "{}" },
    ]);
    expect(r.summary).toBe("json sqlite-cli.json: 3 paths differ (first: $.capability_profile.network)");
    const same = as(diffArtifacts(text('{"a":1,"b":2}'), text('{ "b": 2, "a": 1 }\n'), "x.json"), "json");
    expect(same.changes).toEqual([]);
    expect(same.summary).toContain("same value");
  });

  it("diffs text as a unified diff capped at about 40 lines", () => {
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i}`);
    const changed = [...lines];
    changed[100] = "LINE 100";
    const r = as(diffArtifacts(text(lines.join("\n")), text(changed.join("\n")), "shell.c"), "text");
    expect(r.changedLines).toBe(2);
    expect(r.text.split("\n")).toEqual(["--- a/shell.c", "+++ b/shell.c", "@@ -101,1 +101,1 @@", "line 97", "line 98", "line 99", "-line 100", "+LINE 100", "line 101", "line 102", "line 103"].map((l, i) => (i > 2 && !/^[-+]/.test(l) ? ` ${l}` : l)));

    const all = lines.map((l) => `${l}!`);
    const big = as(diffArtifacts(text(lines.join("\n")), text(all.join("\n")), "big.txt"), "text");
    expect(big.changedLines).toBe(400);
    const shown = big.text.split("\n");
    expect(shown.length).toBeLessThanOrEqual(40);
    expect(shown.at(-1)).toMatch(/^… \(\d+ more lines\)$/);
  });

  it("falls back to the first differing byte for binary data, and for a .tar that is not one", () => {
    const a = Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    const b = Uint8Array.from(a);
    b[12] = 0xff;
    const r = as(diffArtifacts(a, b, "blob.bin"), "binary");
    expect(r.offset).toBe(12);
    expect(r.text).toContain("a: 04 05 06 07 08 09 0a 0b [0c] 0d 0e 0f 10 11 12 13");
    expect(r.text).toContain("b: 04 05 06 07 08 09 0a 0b [ff] 0d 0e 0f 10 11 12 13");
    const short = as(diffArtifacts(a, a.subarray(0, 10), "x.tar"), "binary");
    expect(short.offset).toBe(10);
    expect(short.summary).toBe("binary x.tar: first difference at byte 10 (sizes 20 and 10)");
  });
});

function fixChecksum(h: Uint8Array): void {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  h.set(text(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
}
