// Loading BUILD.ts: it is TypeScript (transpiled on the fly by tsx, registered by bin/wmb.mjs),
// and its default export receives a Workspace on which packages declare targets.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { ensureStoreDir } from "../store/store-dir.ts";
import { hashBytes } from "./digest.ts";
import { packageVersion } from "./package-version.ts";
import { checkBuildFileTypes } from "./build-file-types.ts";
import { dirname, isAbsolute, join, normalize, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { createRequire, isBuiltin } from "node:module";
import { Script } from "node:vm";
import { importModule } from "./import-module.ts";
import { lineMapOf, originalLine, type LineMap } from "./source-lines.ts";
import { WmbError } from "./errors.ts";
import { quotedValue } from "./terminal-text.ts";
import { canonicalLabel, formatLabel, isLabelRef, isValidPackageName, isValidTargetName } from "./label.ts";
import { expandGlobs } from "./glob.ts";
import type { CommonAttrs, RuleDef } from "../rules/rule.ts";
import { library, macros, type Library, type Macros } from "../rules/index.ts";

export interface SourceInput {
  /** Where it sits in the sandbox: the path relative to its package directory. */
  path: string;
  /** Absolute path in the workspace. */
  file: string;
}

export interface Target {
  label: string;
  pkg: string;
  name: string;
  rule: RuleDef<any>;
  attrs: CommonAttrs & Record<string, unknown>;
  /** Labels whose outputs are inputs, in srcs order. */
  deps: string[];
  sources: SourceInput[];
  outputs: string[];
  /** "BUILD.ts:12", worked out from the declaring call's stack only when read (an error, a query). */
  readonly declaredAt: string;
}

export interface LoadedWorkspace {
  root: string;
  buildFile: string;
  targets: Map<string, Target>;
  /** BUILD.ts reads nothing but its own text (see readsOnlyItself): the same text declares the
   * same targets, up to its globs' directory listings. */
  selfContained: boolean;
  /** BUILD.ts as it was read. */
  buildFileText: string;
}

type AttrsOf<R> = R extends RuleDef<infer A> ? Omit<A, "srcs"> & { srcs?: string[] } : never;
type MacroAttrs<M> = M extends (pkg: Package, attrs: infer A) => unknown ? A : never;

/** What BUILD.ts sees for one package: one method per rule and macro, each returning the label. */
export type Package = { readonly name: string } & {
  [K in keyof Library]: (attrs: AttrsOf<Library[K]>) => string;
} & {
  [K in keyof Macros]: (attrs: MacroAttrs<Macros[K]>) => string;
} & {
  /** Declare a target with a rule defined in BUILD.ts itself. */
  target<A extends CommonAttrs>(rule: RuleDef<A>, attrs: A): string;
};

export interface Workspace {
  package(name: string): Package;
}

export type BuildFile = (w: Workspace) => void | Promise<void>;

export { buildFileCache, findWorkspaceRoot } from "./workspace-root.ts";


/** `cacheDir` (under the store) keeps BUILD.ts compiled, once per content. */
export async function loadWorkspace(root: string, cacheDir: string): Promise<LoadedWorkspace> {
  const buildFile = join(root, "BUILD.ts");
  if (!existsSync(buildFile)) {
    throw new WmbError("BUILD_FILE", `No BUILD.ts in ${root}; create one or pass --workspace DIR.`, { subject: buildFile });
  }
  const { mod, selfContained, text } = await importBuildFile(buildFile, cacheDir);
  if (typeof mod.default !== "function") {
    throw new WmbError("BUILD_FILE", `${buildFile} must export default a function (w: Workspace) => void that declares targets.`, { subject: buildFile });
  }
  return { root, buildFile, targets: await declareTargets(root, buildFile, mod.default as BuildFile), selfContained, buildFileText: text };
}

/** The targets BUILD.ts's function declares (what loadWorkspace does once the file is loaded;
 * also the fuzz target of declared attributes). Throws BUILD_FILE errors naming the site. */
export async function declareTargets(root: string, buildFile: string, declareAll: BuildFile): Promise<Map<string, Target>> {
  // Where each target was declared is found only when asked (an error, `query targets`): a
  // stack captured per declaration was a sixth of loading 20,000 of them, and kept alive (#16).
  let sites: Map<string, Target> | undefined;
  const siteOf = (label: string) => (sites ??= declarationSites(root, buildFile, declareAll)).get(label)?.declaredAt ?? "BUILD.ts";
  const targets = new Map<string, Target>();
  const outputsByPackage = new Map<string, Map<string, Target>>();
  const workspace: Workspace = { package: (name) => makePackage(root, buildFile, name, targets, outputsByPackage, siteOf) };
  try {
    await declareAll(workspace);
  } catch (e) {
    if (e instanceof WmbError) throw e;
    throw buildFileError(buildFile, e);
  }
  return targets;
}

/** BUILD.ts's function run once more, each declaration's site captured: what a target's
 * `declaredAt` asks for. Only what it declares synchronously, and before an error (the same one
 * the first run met, whose own sites are then the ones asked for). */
function declarationSites(root: string, buildFile: string, declareAll: BuildFile): Map<string, Target> {
  const targets = new Map<string, Target>();
  const outputsByPackage = new Map<string, Map<string, Target>>();
  try {
    const rest = declareAll({ package: (name) => makePackage(root, buildFile, name, targets, outputsByPackage) });
    if (rest instanceof Promise) rest.catch(() => {}); // declared after an await: "BUILD.ts"
  } catch {
    // The sites declared before it are those asked for.
  }
  return targets;
}

/** BUILD.ts as a module. The usual BUILD.ts imports only types: it is type-checked (when the
 * workspace has a tsconfig.json) and esbuild strips the types, once per content (cached in
 * `cacheDir`, under the store, with a line map to name BUILD.ts lines in errors), and runs
 * through node:vm: no module loader, no source map to parse on every build (#12); imports of
 * Node built-ins come from `require`. One with other imports, import.meta or top-level await
 * goes through tsx, which resolves them next to BUILD.ts. */
async function importBuildFile(buildFile: string, cacheDir: string): Promise<{ mod: { default?: unknown }; selfContained: boolean; text: string }> {
  const source = readFileSync(buildFile, "utf8");
  const base = join(cacheDir, hashBytes(`${buildFile}\n${packageVersion("esbuild")}\nplain 2\n${source}`));
  let plain: PlainBuildFile | undefined;
  if (existsSync(`${base}.cjs`)) {
    const lines = JSON.parse(readFileSync(`${base}.lines.json`, "utf8")) as LineMap;
    plain = { code: readFileSync(`${base}.cjs`, "utf8"), lines, selfContained: existsSync(`${base}.self-contained`) };
  } else if (!existsSync(`${base}.tsx`)) {
    await checkBuildFileTypes(dirname(buildFile), buildFile);
    plain = await compilePlain(buildFile, source);
    // The cache lives under the store: check the store's path first (a bad one fails at once).
    ensureStoreDir(dirname(cacheDir));
    mkdirSync(cacheDir, { recursive: true });
    if (plain) {
      if (plain.selfContained) writeAtomically(`${base}.self-contained`, "");
      writeAtomically(`${base}.lines.json`, JSON.stringify(plain.lines));
      writeAtomically(`${base}.cjs`, plain.code);
    } else {
      writeAtomically(`${base}.tsx`, ""); // remembered: this one needs tsx
    }
  }
  try {
    if (plain) return { mod: runPlain(buildFile, plain), selfContained: plain.selfContained, text: source };
    const mod = (await tsImport(pathToFileURL(buildFile).href, import.meta.url)) as { default?: unknown };
    // Outside a "type": "module" package, tsx compiles BUILD.ts to CommonJS: unwrap its exports.
    const inner = mod.default as { default?: unknown } | undefined;
    return { mod: typeof mod.default !== "function" && inner && typeof inner === "object" ? inner : mod, selfContained: false, text: source };
  } catch (e) {
    throw buildFileError(buildFile, e);
  }
}

interface PlainBuildFile {
  code: string;
  lines: LineMap;
  selfContained: boolean;
}

/** BUILD.ts without its types, as CommonJS, when it needs nothing a module loader gives
 * (imports, import.meta, top-level await); undefined when it does. A syntax error is thrown. */
async function compilePlain(buildFile: string, source: string): Promise<PlainBuildFile | undefined> {
  const { transformSync } = await importModule<typeof import("esbuild")>("esbuild");
  let esm: string;
  try {
    esm = transformSync(source, { loader: "ts", format: "esm", target: "node20", sourcefile: buildFile }).code;
  } catch (e) {
    throw buildFileError(buildFile, e);
  }
  if (!importsOnlyBuiltins(esm) || /\bimport\s*\(|\brequire\s*\(|\bimport\.meta\b/.test(esm)) return undefined;
  try {
    const cjs = transformSync(source, { loader: "ts", format: "cjs", target: "node20", sourcefile: buildFile, sourcemap: "external" });
    if (cjs.warnings.length > 0) return undefined;
    // Comments dropped, so that only code is looked at.
    const bare = transformSync(esm, { loader: "js", format: "esm", minifyWhitespace: true }).code;
    return { code: cjs.code, lines: lineMapOf((JSON.parse(cjs.map) as { mappings: string }).mappings), selfContained: readsOnlyItself(bare) };
  } catch {
    return undefined; // top-level await: an ES module only
  }
}

/** Whether every import and re-export of this ES module (as esbuild writes them) names a Node
 * built-in (`node:fs`, `path`): the plain path's `require` gives those as they are. Anything else
 * (a package, another .ts file) needs tsx's resolution and loaders. */
function importsOnlyBuiltins(esm: string): boolean {
  const statement = /^\s*(?:import\s+(?:[^;"'`]*?\s+from\s+)?|export\s+(?:\*|\{[^}]*\})(?:\s+as\s+[\w$]+)?\s+from\s+)["']([^"']+)["'];?[ \t]*$/gm;
  for (const m of esm.matchAll(statement)) if (!isBuiltin(m[1]!)) return false;
  // One the pattern did not take apart: tsx takes it.
  return !/^\s*(import\s|export\s[^;]*\sfrom\s)/m.test(esm.replace(statement, ""));
}

/** Names through which a module reaches beyond its own text: imports, the process (its
 * environment, files, arguments), clocks, the global object (as variables: `p.fetch(…)` declares
 * a target), and, wherever they appear, randomness, the locale and the reflective paths to any
 * of them. A word in a string counts too: taken for impure wrongly costs speed, never results. */
const REACHES_OUT = new RegExp(
  String.raw`(?<![.\w$])(?:import|require|module|exports|process|global|globalThis|self|window|Date|performance|crypto|Intl|eval|Function|Reflect|Proxy|Symbol|setTimeout|setInterval|setImmediate|queueMicrotask|fetch|WebAssembly|Atomics|SharedArrayBuffer|WeakRef|FinalizationRegistry|Buffer|arguments|__dirname|__filename)(?![\w$])` +
    String.raw`|\b(?:constructor|prototype|__proto__|random|toLocale\w*)\b`,
);

/** Whether BUILD.ts (as ES module code, types stripped) declares targets from nothing but its
 * own text and the workspace API: no name in REACHES_OUT, and it exports exactly its default.
 * Such a file declares the same targets whenever its text is the same (its globs aside, which
 * read directories: the no-op memo lists them again), so a no-op build need not run it. */
function readsOnlyItself(esm: string): boolean {
  const body = esm.replace(/export\s*\{\s*[\w$]+\s+as\s+default\s*\};?\s*$/, "");
  return !REACHES_OUT.test(body) && !/\bexport\b/.test(body);
}

/** Line maps of the BUILD.ts files run by runPlain, for siteFromStack. */
const lineMaps = new Map<string, LineMap>();
/** What runPlain puts before the code on its first line (columns there are shifted by it). */
const PLAIN_PREFIX = `(function (exports, require, module) {"use strict";`;

function runPlain(buildFile: string, plain: { code: string; lines: LineMap }): { default?: unknown } {
  lineMaps.set(buildFile, plain.lines);
  // Named after BUILD.ts itself, so its frames in a stack trace are found by siteFromStack.
  const script = new Script(`${PLAIN_PREFIX}${plain.code}\n})`, { filename: buildFile });
  const module = { exports: {} as { default?: unknown } };
  (script.runInThisContext() as (e: unknown, r: unknown, m: unknown) => void)(module.exports, createRequire(buildFile), module);
  return module.exports;
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

async function tsImport(url: string, parent: string): Promise<unknown> {
  return (await importModule<typeof import("tsx/esm/api")>("tsx/esm/api")).tsImport(url, parent);
}

/** `siteOf` names a target's site when asked; without it every declaration captures its own. */
function makePackage(
  root: string,
  buildFile: string,
  pkg: string,
  targets: Map<string, Target>,
  outputsByPackage: Map<string, Map<string, Target>>,
  siteOf?: (label: string) => string,
): Package {
  if (!isValidPackageName(pkg)) {
    throw new WmbError("BUILD_FILE", `${new DeclarationSite(buildFile)}: "${pkg}" is not a valid package name (letters, digits, _ . - and /).`, { subject: buildFile });
  }
  const pkgDir = join(root, pkg);
  // Normalized output path -> the (non-glob) target declaring it: one lookup per output, so
  // declaring N targets costs O(N), not O(N²).
  let outputOwners = outputsByPackage.get(pkg);
  if (!outputOwners) outputsByPackage.set(pkg, (outputOwners = new Map()));
  const owners = outputOwners;
  const declare = (rule: RuleDef<any>, rawAttrs: unknown): string => {
    // A message thrown from here names the declaration being made: its stack is still this one.
    const site: Site = siteOf ? { toString: () => new DeclarationSite(buildFile, declare).toString() } : new DeclarationSite(buildFile, declare);
    const attrs = checkAttrs(rule, rawAttrs, site, pkg);
    const label = formatLabel({ pkg, name: attrs.name });
    if (targets.has(label)) {
      throw new WmbError("DUPLICATE_TARGET", `${site}: target ${label} is declared twice (first at ${targets.get(label)!.declaredAt}); rename one of them.`, { subject: label });
    }
    if (rule.name === "glob") {
      attrs.srcs = expandGlobs(pkgDir, attrs.patterns as string[]);
    }
    const deps: string[] = [];
    const sources: SourceInput[] = [];
    for (const s of attrs.srcs ?? []) {
      if (isLabelRef(s)) {
        deps.push(canonicalLabel(s, pkg));
      } else {
        sources.push(sourceInput(pkgDir, s, site, label));
      }
    }
    let outputs: string[];
    try {
      outputs = rule.outputs(attrs);
    } catch (e) {
      throw new WmbError("BUILD_FILE", `${site}: ${label}: ${(e as Error).message}`, { subject: label });
    }
    const seen = new Set<string>();
    for (const o of outputs) {
      const n = normalize(o);
      if (isAbsolute(o) || n.startsWith("..") || n === ".") {
        throw new WmbError("BUILD_FILE", `${site}: ${label} declares output "${o}", which is not a relative path inside the package.`, { subject: label });
      }
      if (seen.has(n)) throw new WmbError("DUPLICATE_OUTPUT", `${site}: ${label} declares output "${o}" twice; list it once.`, { subject: label });
      seen.add(n);
    }
    const target = new DeclaredTarget(label, pkg, attrs.name, rule, attrs, deps, sources, outputs, siteOf ?? site);
    // A glob only gathers sources: its outputs may repeat another target's.
    if (rule.name !== "glob") {
      for (const n of seen) {
        const other = owners.get(n);
        if (other) {
          throw new WmbError("DUPLICATE_OUTPUT", `${site}: output "${n}" of ${label} is already declared by ${other.label} (${other.declaredAt}); give one of them another name.`, { subject: label });
        }
      }
      for (const n of seen) owners.set(n, target);
    }
    targets.set(label, target);
    return label;
  };

  const api: Record<string, unknown> = { name: pkg, target: declare };
  for (const [key, rule] of Object.entries(library)) api[key] = (attrs: unknown) => declare(rule as RuleDef<any>, attrs);
  for (const [key, macro] of Object.entries(macros)) {
    api[key] = (attrs: unknown) => (macro as (p: Package, a: unknown) => string)(api as Package, attrs);
  }
  return api as Package;
}

function checkAttrs(rule: RuleDef<any>, raw: unknown, site: Site, pkg: string): CommonAttrs & Record<string, unknown> {
  const fail = (why: string) => new WmbError("BUILD_FILE", `${site}: ${rule.name}(): ${why}.`);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw fail("expects an attributes object");
  // An attribute set to undefined is an attribute left out (keys are canonical JSON, which has no undefined).
  // Copied without them rather than deleted after: a deletion turns an object into a slow dictionary.
  const attrs = {} as CommonAttrs & Record<string, unknown>;
  for (const [key, v] of Object.entries(raw as Record<string, unknown>)) if (v !== undefined) attrs[key] = v;
  if (typeof attrs.name !== "string" || !isValidTargetName(attrs.name)) {
    throw fail(`"name" must be a target name (letters, digits, _ - . +, up to 255 characters), got ${quotedValue(attrs.name)}`);
  }
  if (attrs.srcs !== undefined && (!Array.isArray(attrs.srcs) || attrs.srcs.some((s) => typeof s !== "string"))) {
    throw fail(`//${pkg}:${attrs.name}: "srcs" must be an array of strings`);
  }
  for (const { key, base, optional } of attrTypesOf(rule)) {
    const v = attrs[key];
    if (v === undefined) {
      if (!optional) throw fail(`//${pkg}:${attrs.name}: attribute "${key}" is required (${base})`);
      continue;
    }
    const ok =
      base === "string[]" ? Array.isArray(v) && v.every((x) => typeof x === "string")
      : base === "object" ? typeof v === "object" && v !== null
      : typeof v === base;
    if (!ok) throw fail(`//${pkg}:${attrs.name}: attribute "${key}" must be ${base}, got ${quotedValue(v)}`);
  }
  return attrs;
}

/** A rule's attrTypes, parsed once per rule (a graph declares thousands of targets, #16). */
const parsedAttrTypes = new WeakMap<RuleDef<any>, { key: string; base: string; optional: boolean }[]>();
function attrTypesOf(rule: RuleDef<any>): { key: string; base: string; optional: boolean }[] {
  let parsed = parsedAttrTypes.get(rule);
  if (!parsed) {
    parsed = Object.entries(rule.attrTypes ?? {}).map(([key, type]) => ({ key, base: type.replace(/\?$/, ""), optional: type.endsWith("?") }));
    parsedAttrTypes.set(rule, parsed);
  }
  return parsed;
}

function sourceInput(pkgDir: string, rel: string, site: Site, label: string): SourceInput {
  const n = normalize(rel);
  if (isAbsolute(rel) || n === ".." || n.startsWith(".." + sep)) {
    throw new WmbError("BUILD_FILE", `${site}: ${label} lists source "${rel}", which leaves its package directory; sources must be relative paths inside the package.`, { subject: label });
  }
  return { path: n, file: join(pkgDir, n) };
}

/** "BUILD.ts:12" when written into a message. */
type Site = { toString(): string };

/** Frames a declaration site keeps below `declare`: the rule's method, a macro and its method,
 * BUILD.ts (a BUILD.ts helper that declares is a BUILD.ts frame itself). */
const SITE_FRAMES = 5;

/** A target as BUILD.ts declared it. A class, not an object literal with a getter: one of those
 * per target was a dictionary-mode object holding its declaration's whole context (9 MB at
 * 20,000 targets). */
class DeclaredTarget implements Target {
  constructor(
    readonly label: string,
    readonly pkg: string,
    readonly name: string,
    readonly rule: RuleDef<any>,
    readonly attrs: CommonAttrs & Record<string, unknown>,
    readonly deps: string[],
    readonly sources: SourceInput[],
    readonly outputs: string[],
    /** Its site, or how to find it by label (worked out when first asked). */
    private readonly site: Site | ((label: string) => string),
  ) {}

  get declaredAt(): string {
    return typeof this.site === "function" ? this.site(this.label) : this.site.toString();
  }
}

/** Where BUILD.ts declared a target. The stack is captured (cheap: V8 keeps raw frames, only the
 * few below `declare`, #16) but formatted, through BUILD.ts's line map, only when a message needs
 * "BUILD.ts:12". */
class DeclarationSite {
  private readonly captured: { stack?: string } = {};
  private text?: string;

  constructor(
    private readonly buildFile: string,
    below?: (...args: any[]) => unknown,
  ) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = SITE_FRAMES;
    Error.captureStackTrace(this.captured, below ?? DeclarationSite);
    Error.stackTraceLimit = limit;
  }

  toString(): string {
    this.text ??= siteFromStack(this.captured.stack ?? "", this.buildFile) ?? "BUILD.ts";
    return this.text;
  }
}

function buildFileError(buildFile: string, e: unknown): WmbError {
  const msg = e instanceof Error ? e.message : String(e);
  // esbuild (via tsx): "Transform failed with 1 error:\n/abs/BUILD.ts:3:7: ERROR: Expected ..."
  const m = /BUILD\.ts:(\d+):(\d+): ERROR: (.*)/.exec(msg);
  if (m) {
    return new WmbError("BUILD_FILE", `BUILD.ts:${m[1]}:${m[2]}: syntax error: ${m[3]}; fix ${buildFile} and run again.`, { subject: buildFile, cause: e });
  }
  const where = e instanceof Error ? siteFromStack(e.stack ?? "", buildFile) : undefined;
  const firstLine = msg.split("\n")[0];
  return new WmbError("BUILD_FILE", `${where ?? "BUILD.ts"}: ${firstLine}; fix ${buildFile} and run again.`, { subject: buildFile, cause: e });
}

function siteFromStack(stack: string, buildFile: string): string | undefined {
  const lines = lineMaps.get(buildFile);
  for (const line of stack.split("\n")) {
    const i = line.indexOf(buildFile);
    if (i < 0) continue;
    const m = /^(?:\?[^:]*)?:(\d+):(\d+)/.exec(line.slice(i + buildFile.length));
    if (!m) continue;
    if (!lines) return `BUILD.ts:${m[1]}`; // tsx's frames are mapped already
    const [generated, column] = [Number(m[1]), Number(m[2])];
    const original = originalLine(lines, generated, generated === 1 ? column - PLAIN_PREFIX.length : column);
    return original === undefined ? "BUILD.ts" : `BUILD.ts:${original}`;
  }
  return undefined;
}
