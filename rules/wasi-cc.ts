// C for wasm32-wasip1: `wasi_compile` (one C file -> one object) and `wasi_link`
// (objects -> a core wasm module), both run on the engine's toolchain.
//
// Outputs are deterministic: paths in arguments are sandbox-relative, the compilation
// directory is ".", the system toolchain adds -ffile-prefix-map for its sandbox path, and
// no debug info is emitted unless copts ask for it (it would still carry only "." paths).
import { posix } from "node:path";
import { defineRule, type ActionContext, type CommonAttrs, type Toolchain } from "./rule.ts";

export const WASI_TARGET = "wasm32-wasip1";

/** Flags every compile gets before the target's own copts (which may override -O). */
export const BASE_COPTS: readonly string[] = [`--target=${WASI_TARGET}`, "-O2", "-fdebug-compilation-dir=."];

export interface WasiCompileAttrs extends CommonAttrs {
  /** The C file to compile, as it sits in the sandbox (a source file or a dependency's output). */
  src: string;
  /** Object file to write; default: `src` with its extension replaced by ".o". */
  out?: string;
  copts?: string[];
  /** "NAME" or "NAME=VALUE", passed as -D. */
  defines?: string[];
  /** Sandbox-relative include directories, passed as -I. */
  includes?: string[];
}

export interface WasiLinkAttrs extends CommonAttrs {
  /** Module to write; default "<name>.wasm". */
  out?: string;
  /** Objects and archives to link, sandbox-relative; default: every .o/.a input, sorted by path
   * (sorted so the link line never depends on the order inputs were materialized in). */
  objects?: string[];
  /** Extra linker-driver flags, e.g. ["-lwasi-emulated-signal"]. */
  linkopts?: string[];
  /** Maximum linear memory in bytes (a multiple of 64 KiB): -Wl,--max-memory=. The memory
   * limit is then a property of the module itself. */
  max_memory?: number;
  /** Shadow stack size in bytes: -Wl,-z,stack-size= (wasm-ld's default is 64 KiB). */
  stack_size?: number;
}

function requireToolchain(ctx: ActionContext<unknown>): Toolchain {
  if (!ctx.toolchain) throw new Error(`${ctx.label}: no toolchain in the action context (the rule must set usesToolchain)`);
  return ctx.toolchain;
}

function checkSandboxPath(p: string, what: string): string {
  const n = posix.normalize(p);
  if (n.startsWith("/") || n === ".." || n.startsWith("../")) throw new Error(`${what} "${p}" must be a path inside the sandbox`);
  return n;
}

export function objectName(src: string): string {
  return src.replace(/\.[^./]+$/, "") + ".o";
}

/** The clang argv of a compile, exactly as it runs (relative paths only). */
export function compileArgs(a: WasiCompileAttrs): string[] {
  const out = a.out ?? objectName(a.src);
  return [
    ...BASE_COPTS,
    ...(a.defines ?? []).map((d) => `-D${d}`),
    ...(a.includes ?? []).map((i) => `-I${checkSandboxPath(i, "include")}`),
    ...(a.copts ?? []),
    "-c",
    checkSandboxPath(a.src, "src"),
    "-o",
    checkSandboxPath(out, "out"),
  ];
}

export const wasiCompile = defineRule<WasiCompileAttrs>({
  name: "wasi_compile",
  version: 1,
  usesToolchain: true,
  attrTypes: { src: "string", out: "string?", copts: "string[]?", defines: "string[]?", includes: "string[]?" },
  outputs: (a) => [a.out ?? objectName(a.src)],
  async run(ctx) {
    const tc = requireToolchain(ctx);
    const { stderr } = await tc.run("clang", compileArgs(ctx.attrs), ctx.dir, ctx.signal, ctx.env);
    if (stderr.trim()) ctx.log(stderr.trimEnd());
  },
});

const WASM_PAGE = 65536;

export function linkArgs(a: WasiLinkAttrs, inputs: readonly string[]): string[] {
  const objects = a.objects ?? inputs.filter((p) => p.endsWith(".o") || p.endsWith(".a")).sort();
  if (objects.length === 0) throw new Error(`wasi_link: no objects to link (give "objects" or .o/.a inputs in srcs)`);
  const args = [`--target=${WASI_TARGET}`, ...objects.map((o) => checkSandboxPath(o, "object")), ...(a.linkopts ?? [])];
  if (a.max_memory !== undefined) {
    if (!Number.isInteger(a.max_memory) || a.max_memory <= 0 || a.max_memory % WASM_PAGE !== 0) {
      throw new Error(`wasi_link: max_memory ${a.max_memory} must be a positive multiple of 65536 (a wasm page)`);
    }
    args.push(`-Wl,--max-memory=${a.max_memory}`);
  }
  if (a.stack_size !== undefined) {
    if (!Number.isInteger(a.stack_size) || a.stack_size <= 0 || a.stack_size % 16 !== 0) {
      throw new Error(`wasi_link: stack_size ${a.stack_size} must be a positive multiple of 16`);
    }
    args.push(`-Wl,-z,stack-size=${a.stack_size}`);
  }
  args.push("-o", checkSandboxPath(a.out ?? `${a.name}.wasm`, "out"));
  return args;
}

export const wasiLink = defineRule<WasiLinkAttrs>({
  name: "wasi_link",
  version: 1,
  usesToolchain: true,
  attrTypes: { out: "string?", objects: "string[]?", linkopts: "string[]?", max_memory: "number?", stack_size: "number?" },
  outputs: (a) => [a.out ?? `${a.name}.wasm`],
  async run(ctx) {
    const tc = requireToolchain(ctx);
    const args = linkArgs(ctx.attrs, ctx.inputs.map((i) => i.path));
    const { stderr } = await tc.run("clang", args, ctx.dir, ctx.signal, ctx.env);
    if (stderr.trim()) ctx.log(stderr.trimEnd());
  },
});

// ---------------------------------------------------------------- wasiBinary
//
// What a `wasi_binary` macro declares: one wasi_compile target per C file (so a change to
// one file recompiles only that file, and the compiles run in parallel) plus one
// wasi_link target over their objects. `wasiBinary` only computes the targets' attrs; a
// macro declares them:
//
//   const { compiles, link } = wasiBinary({ name: "wasm", ... });
//   for (const c of compiles) pkg.wasi_compile(c);
//   pkg.wasi_link(link);

export interface WasiBinarySource {
  /** The C file, sandbox-relative (as a source file or as a dependency's output). */
  src: string;
  /** What the compile needs in its sandbox: labels (":src") and/or source files (the C
   * file itself when it is a source, headers). */
  srcs: string[];
  copts?: string[];
  defines?: string[];
  includes?: string[];
}

export interface WasiBinaryOptions {
  /** Name of the link target; compile targets are "<name>_<file stem>". */
  name: string;
  /** The module's file name; default "<name>.wasm". */
  out?: string;
  sources: WasiBinarySource[];
  /** Applied to every source before its own copts/defines/includes. */
  copts?: string[];
  defines?: string[];
  includes?: string[];
  linkopts?: string[];
  max_memory?: number;
  stack_size?: number;
}

export interface WasiBinaryTargets {
  compiles: WasiCompileAttrs[];
  link: WasiLinkAttrs;
}

export function wasiBinary(o: WasiBinaryOptions): WasiBinaryTargets {
  const taken = new Set<string>();
  const compiles = o.sources.map((s): WasiCompileAttrs => {
    const stem = posix.basename(s.src).replace(/\.[^.]+$/, "").replace(/[^A-Za-z0-9_]+/g, "_");
    let name = `${o.name}_${stem}`;
    for (let i = 2; taken.has(name); i++) name = `${o.name}_${stem}_${i}`;
    taken.add(name);
    return {
      name,
      srcs: s.srcs,
      src: s.src,
      // Objects live under _objs/<binary>/ so two binaries in a package never collide.
      out: `_objs/${o.name}/${objectName(s.src)}`,
      copts: [...(o.copts ?? []), ...(s.copts ?? [])],
      defines: [...(o.defines ?? []), ...(s.defines ?? [])],
      includes: [...(o.includes ?? []), ...(s.includes ?? [])],
    };
  });
  const link: WasiLinkAttrs = {
    name: o.name,
    srcs: compiles.map((c) => `:${c.name}`),
    out: o.out ?? `${o.name}.wasm`,
    linkopts: o.linkopts ?? [],
    ...(o.max_memory !== undefined ? { max_memory: o.max_memory } : {}),
    ...(o.stack_size !== undefined ? { stack_size: o.stack_size } : {}),
  };
  return { compiles, link };
}
