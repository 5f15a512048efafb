// The C toolchains through the wasi_compile / wasi_link rules, on real sandboxes.
import { systemToolchainInstalled } from "./helpers/system-toolchain.ts";
import { existsSync, promises as fsp } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import type { Toolchain } from "../rules/rule.ts";
import { createToolchain, ToolchainError } from "../rules/toolchain.ts";
import { wasiBinary, wasiCompile, wasiLink } from "../rules/wasi-cc.ts";
import { runRule } from "./helpers/action-context.ts";

const HELLO = `#include <stdio.h>\nint main(void) { printf("hello from %s\\n", __FILE__); return 0; }\n`;

interface WasmModuleApi {
  compile(bytes: Uint8Array): Promise<object>;
  Module: { imports(m: object): { module: string; name: string }[]; exports(m: object): { name: string }[] };
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmModuleApi }).WebAssembly;

const systemInstalled = systemToolchainInstalled;

async function compileTwice(tc: Toolchain): Promise<[Buffer, Buffer]> {
  const attrs = { name: "hello_o", src: "hello.c", defines: ["GREETING=1"], copts: ["-g"] };
  // Two sandboxes at different paths: nothing of the path may reach the object.
  const a = await runRule(wasiCompile, attrs, { inputs: { "hello.c": HELLO }, toolchain: tc });
  const b = await runRule(wasiCompile, attrs, { inputs: { "hello.c": HELLO }, toolchain: tc });
  expect(a.dir).not.toBe(b.dir);
  return [await fsp.readFile(a.outputPaths[0]!), await fsp.readFile(b.outputPaths[0]!)];
}

async function expectCompileError(tc: Toolchain): Promise<void> {
  const err = (await runRule(wasiCompile, { name: "bad_o", src: "bad.c" }, { inputs: { "bad.c": "int main(void) { return undeclared_thing; }\n" }, toolchain: tc }).then(
    () => undefined,
    (e: unknown) => e,
  )) as ToolchainError;
  expect(err).toBeInstanceOf(ToolchainError);
  expect(err.command).toMatch(/^clang .*-c bad\.c -o bad\.o$/);
  expect(err.exitCode).not.toBe(0);
  expect(err.stderr).toMatch(/bad\.c:1:\d+: error: use of undeclared identifier 'undeclared_thing'/);
  expect(err.message).toContain("bad.c");
}

async function linkAndCheck(tc: Toolchain): Promise<Buffer> {
  const obj = await runRule(wasiCompile, { name: "hello_o", src: "hello.c" }, { inputs: { "hello.c": HELLO }, toolchain: tc });
  const linked = await runRule(
    wasiLink,
    { name: "hello", max_memory: 2 * 1024 * 1024 },
    { inputs: { "hello.o": await fsp.readFile(obj.outputPaths[0]!) }, toolchain: tc },
  );
  const wasm = await fsp.readFile(linked.outputPaths[0]!);
  const mod = await Wasm.compile(wasm);
  expect(Wasm.Module.imports(mod).some((i) => i.module === "wasi_snapshot_preview1")).toBe(true);
  expect(Wasm.Module.exports(mod).map((e) => e.name)).toContain("_start");
  return wasm;
}

describe("hermetic toolchain", () => {
  const tc = createToolchain("hermetic", { jobs: 2 });
  afterAll(() => tc.close());

  it("identity is the YoWASP wasm modules, sysroot tar and driver", async () => {
    const files = await tc.identityFiles();
    expect(files.some((f) => f.endsWith("llvm.core.wasm"))).toBe(true);
    expect(files.some((f) => f.endsWith("llvm-resources.tar"))).toBe(true);
    for (const f of files) expect(existsSync(f)).toBe(true);
  });

  it("compiles the same C file to identical bytes in two sandboxes, concurrently", async () => {
    const [[a, b], [c]] = await Promise.all([compileTwice(tc), compileTwice(tc)]);
    expect(a.length).toBeGreaterThan(0);
    expect(a.equals(b)).toBe(true);
    expect(a.equals(c)).toBe(true);
  });

  it("surfaces the compiler's stderr and command on a compile error", () => expectCompileError(tc));

  it("links a wasi command module with a memory maximum", async () => {
    await linkAndCheck(tc);
  });

  it("an aborted command fails and the pool keeps working", async () => {
    const ac = new AbortController();
    const pending = runRule(wasiCompile, { name: "hello_o", src: "hello.c" }, { inputs: { "hello.c": HELLO }, toolchain: tc, signal: ac.signal });
    ac.abort(new Error("stop"));
    await expect(pending).rejects.toThrow(/stop/);
    await linkAndCheck(tc);
  });
});

describe.skipIf(!systemInstalled)("system toolchain", () => {
  const tc = systemInstalled ? createToolchain("system", { jobs: 2 }) : undefined!;

  it("identity is the real binaries, the wasi-libc sysroot and the headers compiles include", async () => {
    const files = await tc.identityFiles();
    expect(files.some((f) => /\/clang(-\d+)?$/.test(f))).toBe(true);
    expect(files.some((f) => f.endsWith("/libc.a"))).toBe(true);
    // wasi-libc's (/usr/include/wasm32-wasi) and clang's own (`clang -print-resource-dir`/include).
    expect(files.some((f) => /\/include\/wasm32-wasip?1?\/stdio\.h$/.test(f))).toBe(true);
    expect(files.some((f) => /\/lib\/clang\/[^/]+\/include\/stddef\.h$/.test(f))).toBe(true);
  });

  it("compiles the same C file to identical bytes in two sandboxes", async () => {
    const [a, b] = await compileTwice(tc);
    expect(a.equals(b)).toBe(true);
    // -ffile-prefix-map keeps the sandbox path out even with -g.
    expect(a.includes(Buffer.from("/tmp/"))).toBe(false);
  });

  it("surfaces the compiler's stderr and command on a compile error", () => expectCompileError(tc));

  it("links", async () => {
    await linkAndCheck(tc);
  });
});

describe("wasiBinary", () => {
  it("declares one compile per file and a link over their objects", () => {
    const { compiles, link } = wasiBinary({
      name: "wasm",
      defines: ["A=1"],
      sources: [
        { src: "sqlite3.c", srcs: [":src"] },
        { src: "shims/x.c", srcs: ["shims/x.c"], defines: ["B"] },
      ],
      max_memory: 65536,
    });
    expect(compiles.map((c) => [c.name, c.out, c.defines])).toEqual([
      ["wasm_sqlite3", "_objs/wasm/sqlite3.o", ["A=1"]],
      ["wasm_x", "_objs/wasm/shims/x.o", ["A=1", "B"]],
    ]);
    expect(link).toMatchObject({ name: "wasm", srcs: [":wasm_sqlite3", ":wasm_x"], out: "wasm.wasm", max_memory: 65536 });
  });
});
