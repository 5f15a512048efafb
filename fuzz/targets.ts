// One fuzz target per parser that reads bytes from outside. Each calls the function the CLI
// calls and holds it to what must be true of every input: it returns, or refuses with the error
// its callers turn into one sentence (a WmbError; the tar, wasm, JCS and frame readers' own
// error types where the caller wraps them), never another exception; whatever it accepts
// round-trips where a writer exists; the extractor writes nothing outside its root; the frame
// reader buffers no more than its cap. A violated property throws Violation. Hangs and
// unbounded allocation are caught by the runner (fuzz/worker.ts), which watches each input.
import fc from "fast-check";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { Readable } from "node:stream";
import { isDeepStrictEqual } from "node:util";
import { WmbError } from "../src/errors.ts";
import { writeDeterministicTar, type DeterministicTarEntry } from "../src/formats/det-tar.ts";
import { readTar, TarFormatError } from "../src/formats/tar-reader.ts";
import { readComponent, WasmFormatError } from "../src/formats/wasm.ts";
import { canonicalize, CanonicalizationError } from "../src/formats/jcs.ts";
import { checkSealedSpec, formatSpec } from "../src/formats/machine-spec.ts";
import { readMachineIndex, readManifest, ROOTFS_MEDIA_TYPE, SPEC_MEDIA_TYPE, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE } from "../src/remote/machine-artifact.ts";
import { credentialsFor } from "../src/remote/oci/credentials.ts";
import { tokenOfAnswer } from "../src/remote/oci/auth.ts";
import { FrameReader, MAGIC, MAX_FRAME, parseJson, ProtocolError } from "../src/remote/ssh/frames.ts";
import { decodeRequest, remoteCommand, requestOfOriginalCommand } from "../src/remote/ssh/target.ts";
import { extractRootfs, readRootfsEntries, removeExtractedRootfs } from "../src/run/rootfs-extract.ts";
import { declareTargets, type BuildFile } from "../src/build-file.ts";
import { jsonInputs, mutatedCorpus } from "./mutate.ts";

/** A property every input must keep was broken: a finding, not a refusal. */
export class Violation extends Error {
  override name = "Violation";
}

export interface FuzzTarget {
  name: string;
  /** What it calls, for `npm run fuzz -- --list`. */
  calls: string;
  /** Inputs: mutations of the corpus, and for some a structured generator of well-formed ones. */
  inputs(corpus: readonly Uint8Array[]): fc.Arbitrary<Uint8Array>;
  /** Run one input; resolves or throws. */
  run(input: Uint8Array): Promise<void>;
  /** The refusals that are correct answers (everything else thrown is a finding). */
  refuses(e: unknown): boolean;
  /** Called once before the first input and after the last (a scratch directory, a store). */
  setUp?(): Promise<void>;
  tearDown?(): Promise<void>;
}

const utf8 = (b: Uint8Array) => Buffer.from(b).toString("utf8");
/** Input that is not JSON is refused by every caller before the parser under test sees it. */
const NOT_JSON = Symbol("not JSON");
function jsonOf(input: Uint8Array): unknown {
  try {
    return JSON.parse(utf8(input));
  } catch {
    return NOT_JSON;
  }
}
/** A sentence a user reads: one that quotes a whole hostile input is not one. */
const MAX_MESSAGE = 4096;

function sentenceOnly(e: unknown): boolean {
  if (!(e instanceof WmbError)) return false;
  if (e.message.length > MAX_MESSAGE) throw new Violation(`a ${e.code} message of ${e.message.length} characters (at most ${MAX_MESSAGE}): ${e.message.slice(0, 200)}…`);
  return true;
}

let scratch = "";
function scratchDir(): string {
  scratch ||= mkdtempSync(join(tmpdir(), "wmb-fuzz-"));
  return scratch;
}
async function removeScratch(): Promise<void> {
  if (!scratch) return;
  for (const d of readdirSync(scratch)) await removeExtractedRootfs(join(scratch, d)).catch(() => rmSync(join(scratch, d), { recursive: true, force: true }));
  rmSync(scratch, { recursive: true, force: true });
  scratch = "";
}

// ---- tar: the one reader, against the one writer ---------------------------------------------

const tarPath = fc.oneof(
  fc.stringMatching(/^[a-z0-9_.-]{1,12}(\/[a-z0-9_.-]{1,12}){0,3}$/),
  fc.string({ minLength: 1, maxLength: 120 }).filter((s) => !s.includes("\0")),
  fc.stringMatching(/^[a-z]{1,8}$/).map((s) => `${"d/".repeat(60)}${s}`),
);
const tarEntries: fc.Arbitrary<DeterministicTarEntry[]> = fc.uniqueArray(
  fc.record({ path: tarPath, data: fc.uint8Array({ maxLength: 2048 }), mode: fc.constantFrom(0o644, 0o755) }),
  { maxLength: 12, selector: (e) => e.path.replace(/^\/+|\/+$/g, "") },
).map((es) => es.map((e) => ({ ...e, type: "file" as const })));

/** Archives the writer makes, where it accepts the entries. */
function writtenTars(): fc.Arbitrary<Uint8Array> {
  return tarEntries.map((entries) => {
    try {
      return writeDeterministicTar(entries, { mtime: 0 });
    } catch {
      return new Uint8Array(0);
    }
  });
}

const tar: FuzzTarget = {
  name: "tar",
  calls: "readTar (src/formats/tar-reader.ts), round-tripped through writeDeterministicTar",
  inputs: (corpus) => fc.oneof(mutatedCorpus(corpus), writtenTars()),
  refuses: (e) => e instanceof TarFormatError,
  async run(input) {
    const entries = readTar(input);
    // What the reader accepts, written again and read again, is the same archive.
    const files = entries.filter((e) => e.type === "file" || e.type === "dir");
    let rewritten: Uint8Array;
    try {
      rewritten = writeDeterministicTar(
        files.map((e) => ({ path: e.path, type: e.type as "file" | "dir", mode: e.mode, data: e.type === "file" ? e.data : undefined })),
        { mtime: 0 },
      );
    } catch {
      return; // names or sizes the writer does not write (ustar limits): nothing to compare
    }
    // The writer orders entries by path (that is what makes it deterministic): compare sorted.
    const byPath = (a: string[], b: string[]) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0);
    const again = readTar(rewritten).map((e) => [e.path.replace(/\/$/, ""), e.type, Buffer.from(e.data ?? []).toString("hex")]).sort(byPath);
    const before = files.map((e) => [e.path.replace(/\/$/, ""), e.type, Buffer.from(e.type === "file" ? e.data : []).toString("hex")]).sort(byPath);
    if (!isDeepStrictEqual(again, before)) throw new Violation(`an archive read, written and read again differs: ${JSON.stringify(before).slice(0, 300)} vs ${JSON.stringify(again).slice(0, 300)}`);
  },
};

// ---- rootfs: the extractor a run uses -------------------------------------------------------

let rootfsRuns = 0;
const rootfs: FuzzTarget = {
  name: "rootfs",
  calls: "extractRootfs (src/run/rootfs-extract.ts), as wmb run does",
  inputs: (corpus) => fc.oneof(mutatedCorpus(corpus), writtenTars()),
  refuses: sentenceOnly,
  async run(input) {
    const parent = join(scratchDir(), `rootfs-${rootfsRuns++}`);
    mkdirSync(parent);
    const root = join(parent, "root");
    try {
      let extracted: Awaited<ReturnType<typeof extractRootfs>> | undefined;
      try {
        extracted = await extractRootfs(input, root);
      } finally {
        // Nothing outside root, accepted or not; and inside it, nothing that resolves out.
        const outside = readdirSync(parent).filter((n) => n !== "root");
        if (outside.length) throw new Violation(`extraction wrote ${outside.join(", ")} next to its root`);
        for (const p of walk(root)) {
          const rel = relative(realpathSync(root), realpathSync(p));
          if (rel.startsWith("..")) throw new Violation(`extraction made ${p}, which resolves outside its root`);
        }
      }
      // Every entry accepted is on disk with its bytes.
      for (const e of readRootfsEntries(input)) {
        if (e.kind === "file" && !Buffer.from(e.data).equals(readFileSync(join(root, e.name)))) throw new Violation(`${e.name} was extracted with other bytes`);
      }
      if (!extracted) throw new Violation("extractRootfs returned nothing");
    } finally {
      await removeExtractedRootfs(root).catch(() => {});
      rmSync(parent, { recursive: true, force: true });
    }
  },
  tearDown: removeScratch,
};

function walk(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.flatMap((n) => [join(dir, n), ...walk(join(dir, n))]);
}

// ---- bundles: `wmb store import` ------------------------------------------------------------

let bundleStore: import("../store/store.ts").Store | undefined;
const bundle: FuzzTarget = {
  name: "bundle",
  calls: "importBundle (src/bundle.ts) into a real store, as wmb store import does; store fsck clean after",
  inputs: (corpus) => mutatedCorpus(corpus),
  refuses: sentenceOnly,
  async setUp() {
    const { Store } = await import("../store/store.ts");
    bundleStore = await Store.open(join(scratchDir(), "bundle-store"));
  },
  async run(input) {
    const { importBundle } = await import("../src/bundle.ts");
    await importBundle(bundleStore!, input, "the fuzzed bundle");
  },
  async tearDown() {
    if (bundleStore) {
      const { fsckClean } = await import("../store/fsck.ts");
      const report = await bundleStore.fsck({ repair: false });
      bundleStore.close();
      bundleStore = undefined;
      if (!fsckClean(report)) throw new Violation(`the store that imported fuzzed bundles is not clean: ${JSON.stringify(report).slice(0, 300)}`);
    }
    await removeScratch();
  },
};

// ---- wasm -----------------------------------------------------------------------------------

/** A component or module from sections of random ids and bodies, with sizes that may lie. */
const wasmSections = fc
  .tuple(
    fc.constantFrom([0x01, 0x00, 0x00, 0x00], [0x0d, 0x00, 0x01, 0x00]),
    fc.array(fc.record({ id: fc.integer({ min: 0, max: 13 }), body: fc.uint8Array({ maxLength: 64 }), lie: fc.integer({ min: -3, max: 3 }) }), { maxLength: 8 }),
  )
  .map(([version, sections]) => {
    const parts: Uint8Array[] = [Buffer.from([0x00, 0x61, 0x73, 0x6d, ...version])];
    for (const s of sections) parts.push(Buffer.from([s.id]), leb128(Math.max(0, s.body.length + s.lie)), Buffer.from(s.body));
    return new Uint8Array(Buffer.concat(parts));
  });

function leb128(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Buffer.from(out);
}

const wasm: FuzzTarget = {
  name: "wasm",
  calls: "readComponent (src/formats/wasm.ts): imports and memories, as seal and run read them",
  inputs: (corpus) => fc.oneof(mutatedCorpus(corpus), wasmSections),
  refuses: (e) => e instanceof WasmFormatError,
  async run(input) {
    const info = readComponent(input);
    JSON.stringify(info); // what callers do with it (spec, inspect --json) must not throw
  },
};

// ---- sealed specs and JCS ---------------------------------------------------------------------

const spec: FuzzTarget = {
  name: "spec",
  calls: "JSON.parse + checkSealedSpec (src/formats/machine-spec.ts), as loadMachine reads a spec",
  inputs: (corpus) => jsonInputs(corpus),
  refuses: sentenceOnly,
  async run(input) {
    const value = jsonOf(input);
    if (value === NOT_JSON) return;
    const checked = checkSealedSpec(value);
    // A spec accepted once is accepted again from the bytes wmb writes of it, with the same identity.
    const again = checkSealedSpec(JSON.parse(formatSpec(checked)));
    if (again.seal.digest !== checked.seal.digest) throw new Violation(`a spec written again has another identity (${checked.seal.digest} then ${again.seal.digest})`);
  },
};

const jcs: FuzzTarget = {
  name: "jcs",
  calls: "canonicalize (src/formats/jcs.ts): JCS -> parse -> JCS is the same text",
  inputs: (corpus) => fc.oneof(mutatedCorpus(corpus), fc.jsonValue({ maxDepth: 6 }).map((v) => new TextEncoder().encode(JSON.stringify(v)))),
  refuses: (e) => e instanceof CanonicalizationError,
  async run(input) {
    const value = jsonOf(input);
    if (value === NOT_JSON) return;
    const text = canonicalize(value);
    const again = canonicalize(JSON.parse(text));
    if (again !== text) throw new Violation(`JCS is not stable: ${text.slice(0, 200)} then ${again.slice(0, 200)}`);
  },
};

// ---- OCI documents, docker config, token answers ---------------------------------------------

const ociIndex: FuzzTarget = {
  name: "oci-index",
  calls: "readMachineIndex (src/remote/machine-artifact.ts), as pull reads an index",
  inputs: (corpus) => jsonInputs(corpus),
  refuses: sentenceOnly,
  async run(input) {
    readMachineIndex(input, "the fuzzed index");
  },
};

const ociManifest: FuzzTarget = {
  name: "oci-manifest",
  calls: "readManifest (src/remote/machine-artifact.ts) for both roles, as pull reads them",
  inputs: (corpus) => jsonInputs(corpus),
  refuses: sentenceOnly,
  async run(input) {
    for (const [config, layer] of [[SPEC_MEDIA_TYPE, ROOTFS_MEDIA_TYPE], [WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE]] as const) {
      try {
        readManifest(input, config, layer, "the fuzzed manifest");
      } catch (e) {
        if (!sentenceOnly(e)) throw e;
      }
    }
  },
};

const dockerConfig: FuzzTarget = {
  name: "docker-config",
  calls: "credentialsFor (src/remote/oci/credentials.ts) on a config.json, with no credential helper on PATH",
  inputs: (corpus) => jsonInputs(corpus),
  refuses: sentenceOnly,
  async run(input) {
    const dir = join(scratchDir(), "docker");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "config.json"), input);
    const env = { DOCKER_CONFIG: dir, PATH: join(dir, "no-helpers-here") };
    const c = await credentialsFor("127.0.0.1:5000", env);
    if (c !== undefined && (typeof c.username !== "string" || typeof c.password !== "string")) throw new Violation(`credentials that are not strings: ${typeof c.username}, ${typeof c.password}`);
  },
  tearDown: removeScratch,
};

const tokenAnswer: FuzzTarget = {
  name: "token-answer",
  calls: "tokenOfAnswer (src/remote/oci/auth.ts), as the Bearer flow reads a token service's answer",
  inputs: (corpus) => jsonInputs(corpus),
  refuses: sentenceOnly,
  async run(input) {
    const token = tokenOfAnswer(input, "127.0.0.1:5000");
    if (!/^[\x21-\x7e]+$/.test(token)) throw new Violation(`a token that cannot go in a header: ${JSON.stringify(token).slice(0, 100)}`);
  },
};

// ---- ssh ------------------------------------------------------------------------------------

/** Fuzzed bytes as a peer sends them: after MAGIC (or not), in chunks of varying size. */
const sshFrames: FuzzTarget = {
  name: "ssh-frames",
  calls: "FrameReader.handshake/next and parseJson (src/remote/ssh/frames.ts), as both ends read",
  inputs: (corpus) => mutatedCorpus(corpus),
  refuses: (e) => e instanceof ProtocolError,
  async run(input) {
    const chunkSize = 1 + (input.length ? input[0]! * 37 : 0);
    const chunks: Buffer[] = [];
    for (let at = 0; at < input.length; at += chunkSize) chunks.push(Buffer.from(input.subarray(at, at + chunkSize)));
    const reader = new FrameReader(Readable.from(chunks), { expectMagic: true });
    const buffered = () => (reader as unknown as { length: number }).length;
    const cap = MAX_FRAME + 5 + chunkSize + MAGIC.length;
    if (!(await reader.handshake())) return;
    for (let n = 0; n < 1000; n++) {
      const f = await reader.next();
      if (buffered() > cap) throw new Violation(`the frame reader holds ${buffered()} bytes, more than its cap ${cap}`);
      if (!f) return;
      if (f.kind === 0x4a) parseJson(f);
    }
  },
};

const sshRequest: FuzzTarget = {
  name: "ssh-request",
  calls: "decodeRequest (src/remote/ssh/target.ts), as wmb remote serve reads --request; round-trips through remoteCommand",
  inputs: (corpus) => mutatedCorpus(corpus),
  refuses: sentenceOnly,
  async run(input) {
    const r = decodeRequest(Buffer.from(input).toString("latin1"));
    const line = remoteCommand("wmb", r);
    if (!/^wmb remote serve( --request [A-Za-z0-9+/]+={0,2})?$/.test(line)) throw new Violation(`a remote command line with more than fixed words: ${line.slice(0, 200)}`);
    const again = requestOfOriginalCommand(line);
    if (!isDeepStrictEqual(again, r)) throw new Violation(`a request does not round-trip: ${JSON.stringify(r).slice(0, 200)}`);
  },
};

// ---- BUILD.ts-declared attributes ------------------------------------------------------------

/** Values a BUILD.ts can pass that JSON cannot: {"$bigint": "1"}, {"$long": n} (a string of n
 * characters), {"$deep": n} (arrays nested n deep), {"$cycle": 1}, {"$fn": 1}. */
function revive(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(revive);
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (typeof o.$bigint === "string" && /^-?[0-9]{1,30}$/.test(o.$bigint)) return BigInt(o.$bigint);
    if (typeof o.$long === "number") return "x".repeat(Math.min(Math.max(0, o.$long), 1 << 20));
    if (typeof o.$deep === "number") {
      let d: unknown = "leaf";
      for (let i = 0; i < Math.min(Math.max(0, o.$deep), 10_000); i++) d = [d];
      return d;
    }
    if (o.$cycle === 1) {
      const c: Record<string, unknown> = { a: 1 };
      c.self = c;
      return c;
    }
    if (o.$fn === 1) return () => "a function";
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, revive(x)]));
  }
  return v;
}

const RULES = ["write", "run", "copy", "glob", "fetch", "extract", "wasi_compile", "wasi_link", "component", "rootfs", "spec", "seal", "wasi_binary", "no_such_rule"];
const ATTR_KEYS = ["name", "srcs", "out", "outs", "cmd", "content", "executable", "patterns", "url", "integrity", "machine", "spec", "kernel", "files", "deps", "flags", "__proto__", "constructor"];
const special = fc.oneof(
  fc.bigInt().map((b) => ({ $bigint: String(b) })),
  fc.constantFrom({ $long: 1 << 20 }, { $long: 5000 }, { $deep: 5000 }, { $cycle: 1 }, { $fn: 1 }),
);
const attrValue = fc.oneof(fc.string({ maxLength: 20 }), fc.array(fc.string({ maxLength: 12 }), { maxLength: 4 }), fc.jsonValue({ maxDepth: 2 }), special, fc.array(special, { maxLength: 2 }));
const declarations = fc
  .array(fc.tuple(fc.constantFrom(...RULES), fc.oneof(fc.dictionary(fc.constantFrom(...ATTR_KEYS), attrValue, { maxKeys: 6 }), attrValue)), { maxLength: 6 })
  .map((d) => new TextEncoder().encode(JSON.stringify(d)));

const buildAttrs: FuzzTarget = {
  name: "build-attrs",
  calls: "declareTargets (src/build-file.ts) with BUILD.ts declarations of every rule and hostile attributes",
  inputs: (corpus) => fc.oneof(jsonInputs(corpus), declarations),
  refuses: sentenceOnly,
  async run(input) {
    const json = jsonOf(input);
    const decls = json === NOT_JSON ? undefined : revive(json);
    if (!Array.isArray(decls)) return;
    const root = join(scratchDir(), "ws");
    mkdirSync(root, { recursive: true });
    const declareAll: BuildFile = (w) => {
      const p = w.package("p") as unknown as Record<string, (attrs: unknown) => unknown>;
      for (const d of decls as unknown[]) {
        if (!Array.isArray(d)) continue;
        const [rule, attrs] = d as [unknown, unknown];
        const declare = p[String(rule)];
        if (typeof declare !== "function") continue; // BUILD.ts itself would throw a TypeError: its own bug, reported as such
        declare(attrs);
      }
    };
    await declareTargets(root, join(root, "BUILD.ts"), declareAll);
  },
  tearDown: removeScratch,
};

export const TARGETS: readonly FuzzTarget[] = [tar, rootfs, bundle, wasm, spec, jcs, ociIndex, ociManifest, dockerConfig, tokenAnswer, sshFrames, sshRequest, buildAttrs];

export function targetNamed(name: string): FuzzTarget {
  const t = TARGETS.find((x) => x.name === name);
  if (!t) throw new Error(`no fuzz target ${name}; the targets: ${TARGETS.map((x) => x.name).join(", ")}`);
  return t;
}
