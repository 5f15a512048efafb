// Turns a WASI 0.2 component into JavaScript that runs on @bytecodealliance/preview2-shim.
// The output is a pure function of the component bytes and the jco-transpile and esbuild
// versions, so the store can cache it once per component digest (the caller folds TRANSPILER_ID
// into that key).
import { packageVersion } from "../package-version.ts";
import { promises as fsp } from "node:fs";
import { dirname, join } from "node:path";
import { importModule } from "../import-module.ts";

/** The generated module and its manifest always have these names, whatever the component. The
 * module is CommonJS (jco writes an ES module; esbuild converts it): the runner compiles it with a
 * V8 code cache, which Node 20 keeps for no ES module (#12). */
export const ENTRY_FILE = "component.cjs";
export const MANIFEST_FILE = "wmb-transpile.json";
/** What jco calls the module it generates. */
const JCO_ENTRY = "component.js";

/** Identity of the transpiler: enters the cache key of a transpiled component. */
export const TRANSPILER_ID = `jco-transpile@${packageVersion("@bytecodealliance/jco-transpile")};esbuild@${packageVersion("esbuild")};instantiation=async;entry=cjs;manifest=3`;

/** What the runner needs to know about a transpiled component without loading it. */
export interface TranspileManifest {
  /** The CommonJS module exporting `instantiate(getCoreModule, imports)`. */
  entry: string;
  /** The core wasm modules the entry loads, compiled by the runner ahead of instantiation. */
  coreModules: string[];
  /** Interfaces the component imports, unversioned (e.g. "wasi:cli/environment"). */
  imports: string[];
  /** Exported names and kinds, as jco reports them. */
  exports: [string, "function" | "instance"][];
  transpiler: string;
}

export interface TranspiledComponent {
  /** Relative path -> bytes; sorted by path, includes MANIFEST_FILE. */
  files: Record<string, Uint8Array>;
  manifest: TranspileManifest;
}

/**
 * Transpile `componentBytes` in jco's `instantiation: "async"` mode: the generated module imports
 * no WASI implementation of its own, so the runner decides every capability at instantiation.
 * When `outDir` is given the files are also written there (the directory is created).
 */
export async function transpileComponent(componentBytes: Uint8Array, outDir?: string): Promise<TranspiledComponent> {
  // Loaded only to transpile: a warm `wmb run` needs TRANSPILER_ID, not the transpiler (#12).
  const { transpileBytes } = await importModule<typeof import("@bytecodealliance/jco-transpile")>("@bytecodealliance/jco-transpile");
  const result = await transpileBytes(componentBytes, {
    name: "component",
    instantiation: "async",
    // No WASI shim mapping, no TypeScript, no minification (oxc output could vary across versions
    // of a transitive dependency; keep the bytes a function of jco-transpile alone).
    wasiShim: false,
    emitTypescriptDeclarations: false,
    minify: false,
    optimize: false,
    noComponentErrorWrapping: false,
  });
  const manifest: TranspileManifest = {
    entry: ENTRY_FILE,
    coreModules: Object.keys(result.files)
      .filter((f) => f.endsWith(".wasm"))
      .sort(),
    imports: [...result.imports].sort(),
    exports: result.exports,
    transpiler: TRANSPILER_ID,
  };
  const { [JCO_ENTRY]: esm, ...coreModules } = result.files;
  if (esm === undefined) {
    throw new Error(`jco-transpile produced no ${JCO_ENTRY} (files: ${Object.keys(result.files).join(", ")})`);
  }
  const all: Record<string, Uint8Array> = {
    ...coreModules,
    [ENTRY_FILE]: await commonJsOf(esm),
    [MANIFEST_FILE]: new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n"),
  };
  const files: Record<string, Uint8Array> = {};
  for (const name of Object.keys(all).sort()) files[name] = all[name]!;
  if (outDir !== undefined) await writeTranspiled(files, outDir);
  return { files, manifest };
}

/** jco's ES module as CommonJS. It imports nothing (instantiation mode); the `import.meta.url`
 * esbuild warns about is read only when no getCoreModule is given, and the runner gives one. */
async function commonJsOf(esm: Uint8Array): Promise<Uint8Array> {
  const { transformSync } = await importModule<typeof import("esbuild")>("esbuild");
  // ASCII: bin/code-cache.cjs reads what it compiles as latin1.
  const { code } = transformSync(new TextDecoder().decode(esm), { loader: "js", format: "cjs", charset: "ascii", sourcefile: JCO_ENTRY, logLevel: "silent" });
  return new TextEncoder().encode(code);
}

/** Write transpiled files under `outDir`, refusing any name that would land outside it. */
export async function writeTranspiled(files: Record<string, Uint8Array>, outDir: string): Promise<void> {
  await fsp.mkdir(outDir, { recursive: true });
  for (const [rel, bytes] of Object.entries(files)) {
    if (rel.startsWith("/") || rel.split("/").some((s) => s === ".." || s === "")) {
      throw new Error(`refusing transpiled file name ${JSON.stringify(rel)}`);
    }
    const dest = join(outDir, rel);
    await fsp.mkdir(dirname(dest), { recursive: true });
    await fsp.writeFile(dest, bytes);
  }
}

/** Read the manifest of a transpiled directory (written by transpileComponent). */
export async function readTranspileManifest(jsDir: string): Promise<TranspileManifest> {
  return JSON.parse(await fsp.readFile(join(jsDir, MANIFEST_FILE), "utf8")) as TranspileManifest;
}
