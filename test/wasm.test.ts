import { componentWit, parse } from "@bytecodealliance/jco-transpile/wasm-tools";
import { describe, expect, it } from "vitest";
import { memoryMaximumBytes, readComponent, readCoreModuleMemories, readWasmSections, wasmKind, isWasm } from "../src/formats/wasm.ts";
import { tinyComponent } from "./helpers/tiny-component.ts";

describe("wasm reader on WAT-built binaries", () => {
  it("lists a core module's sections with ids, names, offsets and sizes", async () => {
    const bytes = await parse(`(module (import "env" "memory" (memory 1)) (func (export "f") (result i32) i32.const 7) (@custom "hello" "abc"))`);
    const { kind, sections } = readWasmSections(bytes);
    expect(kind).toBe("module");
    expect(sections.map((s) => s.name)).toEqual(["type", "import", "function", "export", "code", "custom:hello"]);
    const custom = sections.at(-1)!;
    expect(custom.id).toBe(0);
    // "hello" (1 + 5 bytes) + "abc".
    expect(custom.size).toBe(9);
    expect(new TextDecoder().decode(bytes.subarray(custom.contentOffset + 6, custom.contentOffset + 9))).toBe("abc");
    expect(custom.contentOffset + custom.size).toBe(bytes.length);
    // Sections tile the binary after the 8-byte preamble.
    expect(sections[0]!.offset).toBe(8);
    for (let i = 1; i < sections.length; i++) expect(sections[i]!.offset).toBe(sections[i - 1]!.contentOffset + sections[i - 1]!.size);
    expect(readCoreModuleMemories(bytes)).toEqual([
      { index: 0, importedFrom: "env.memory", min: 1, max: null, pageSize: 65536, shared: false, memory64: false },
    ]);
  });

  it("reads a component's imports of every kind and memories of nested modules", async () => {
    const bytes = await parse(`(component
      (import "wasi:sockets/tcp@0.2.3" (instance))
      (import "wasi:cli/environment@0.2.3" (instance (export "get-arguments" (func (result (list string))))))
      (import "f" (func))
      (import "t" (type (sub resource)))
      (import "m" (core module))
      (core module (memory 1 4))
      (component
        (core module (import "env" "memory" (memory 0)) (memory i64 3 9))
        (core module (memory 1 2 shared))
      )
    )`);
    expect(wasmKind(bytes)).toBe("component");
    const info = readComponent(bytes);
    expect(info.imports).toEqual([
      { name: "wasi:sockets/tcp@0.2.3", kind: "instance" },
      { name: "wasi:cli/environment@0.2.3", kind: "instance" },
      { name: "f", kind: "func" },
      { name: "t", kind: "type" },
      { name: "m", kind: "module" },
    ]);
    expect(info.coreModules.map((m) => [m.path, m.memories.map((x) => [x.importedFrom ?? "", x.min, x.max, x.memory64, x.shared])])).toEqual([
      ["module[0]", [["", 1, 4, false, false]]],
      ["component[0]/module[0]", [["env.memory", 0, null, false, false], ["", 3, 9, true, false]]],
      ["component[0]/module[1]", [["", 1, 2, false, true]]],
    ]);
    // Each nested module's byte range is a module of its own.
    for (const m of info.coreModules) expect(wasmKind(bytes.subarray(m.offset, m.offset + m.size))).toBe("module");
    expect(memoryMaximumBytes(info.coreModules[0]!.memories[0]!)).toBe(4 * 65536);
    expect(memoryMaximumBytes(info.coreModules[1]!.memories[0]!)).toBeNull();
  });

  it("rejects what is not wasm, and the wrong kind", async () => {
    expect(isWasm(new TextEncoder().encode("not wasm at all"))).toBe(false);
    expect(() => readWasmSections(new TextEncoder().encode("not wasm at all"))).toThrow(/magic/);
    expect(() => readWasmSections(Uint8Array.from([0, 0x61, 0x73, 0x6d, 2, 0, 0, 0]))).toThrow(/unknown WebAssembly version/);
    const module = await parse(`(module)`);
    expect(() => readComponent(module)).toThrow(/found a core module/);
    // A section whose declared size runs past the end.
    const truncated = Uint8Array.from([...module, 0x01, 0x05, 0x00]);
    expect(() => readWasmSections(truncated)).toThrow(/runs past the end/);
  });
});

describe("wasm reader on a real component (clang + componentNew)", () => {
  it("finds the same imports as jco's componentWit", async () => {
    const { component } = await tinyComponent();
    const names = readComponent(component).imports.map((i) => i.name);
    const wit = await componentWit(component);
    const fromJco = [...wit.matchAll(/^\s*import (\S+);$/gm)].map((m) => m[1]);
    expect(names.length).toBeGreaterThan(5);
    expect(names).toEqual(fromJco);
    expect(names).toContain(names.find((n) => /^wasi:filesystem\/preopens@0\.2\.\d+$/.test(n)));
    expect(names.every((n) => n.startsWith("wasi:"))).toBe(true);
    expect(readComponent(component).imports.every((i) => i.kind === "instance")).toBe(true);
  });

  it("reads the linked memory maximum (-Wl,--max-memory) of the main module", async () => {
    const unbounded = readComponent((await tinyComponent()).component);
    const bounded = readComponent((await tinyComponent({ linkFlags: ["-Wl,--max-memory=1048576"] })).component);
    const defined = (info: typeof bounded) => info.coreModules.flatMap((m) => m.memories.filter((x) => !x.importedFrom));
    expect(defined(unbounded).map((m) => m.max)).toEqual([null]);
    expect(defined(bounded).map((m) => [m.max, memoryMaximumBytes(m)])).toEqual([[16, 1048576]]);
    // The adapter imports the main module's memory.
    expect(bounded.coreModules.flatMap((m) => m.memories.filter((x) => x.importedFrom).map((x) => x.importedFrom))).toEqual(["env.memory"]);
  });
});
