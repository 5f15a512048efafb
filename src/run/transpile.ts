// Turns a WASI 0.2 component into JavaScript that runs on @bytecodealliance/preview2-shim.
// The output is a pure function of the component bytes and the jco-transpile version, so the
// store can cache it once per component digest (the caller folds TRANSPILER_ID into that key).
import { packageVersion } from "../package-version.ts";
import { promises as fsp } from "node:fs";
import { dirname, join } from "node:path";
import { importModule } from "../import-module.ts";

/** The generated ES module and its manifest always have these names, whatever the component. */
export const ENTRY_FILE = "component.js";
export const MANIFEST_FILE = "wmb-transpile.json";

const jcoVersion = packageVersion("@bytecodealliance/jco-transpile");

/** Identity of the transpiler: enters the cache key of a transpiled component. */
export const TRANSPILER_ID = `jco-transpile@${jcoVersion};instantiation=async;manifest=2`;

/** What the runner needs to know about a transpiled component without loading it. */
export interface TranspileManifest {
  /** The ES module exporting `instantiate(getCoreModule, imports)`. */
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
  if (!(ENTRY_FILE in result.files)) {
    throw new Error(`jco-transpile produced no ${ENTRY_FILE} (files: ${Object.keys(result.files).join(", ")})`);
  }
  const all: Record<string, Uint8Array> = {
    ...result.files,
    [MANIFEST_FILE]: new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n"),
  };
  const files: Record<string, Uint8Array> = {};
  for (const name of Object.keys(all).sort()) files[name] = all[name]!;
  if (outDir !== undefined) await writeTranspiled(files, outDir);
  return { files, manifest };
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
