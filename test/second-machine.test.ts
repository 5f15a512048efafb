// A second machine, //examples/wordcount:sealed (a small C program, 16 MiB, nothing writable),
// built, sealed and run through the CLI: what it is granted comes from its own spec, not from
// sqlite-cli's, and run re-checks what seal checks before anything starts.
import { beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "@bytecodealliance/jco-transpile/wasm-tools";
import { buildJson, wmbSync } from "./helpers/cli.ts";
import { resealedMachine, type Replacements } from "./helpers/resealed-machine.ts";
import { copyFixtureStore, copyWorkspace, sqliteFixture } from "./helpers/sqlite-fixture.ts";
import { WASI_HOST, type SealedSpec } from "../src/formats/machine-spec.ts";

let ws: string;
let store: string;
let out: string;

beforeAll(async () => {
  const fx = await sqliteFixture(); // its store already holds the fetched preview1 adapter
  ws = copyWorkspace();
  store = join(mkdtempSync(join(tmpdir(), "wmb-wordcount-")), "store");
  copyFixtureStore(fx.store, store);
  buildJson(ws, ["--store", store, "//examples/wordcount:sealed"]);
  out = join(ws, "wmb-out/examples/wordcount");
});

const run = (args: string[], input = "") => wmbSync(ws, ["run", "--store", store, ...args], { input });

/** The built machine with its spec edited and sealed again (a valid seal over whatever it says). */
const resealed = (edit: (spec: SealedSpec) => void, replace?: Replacements) => resealedMachine(out, "wordcount", edit, replace);

/** wordcount's spec around a kernel that imports a socket interface (and binds it to the host). */
async function withSocketImport(network: "deny" | "allow"): Promise<string> {
  const kernel = await parse(`(component (import "wasi:sockets/tcp@0.2.3" (instance)) (core module (memory 1 16)))`);
  return resealed((s) => {
    s.capability_profile.network = network;
    s.composition.bindings = [{ consumer_id: s.composition.root, import_name: "wasi:sockets/tcp@0.2.3", provider_id: WASI_HOST, export_name: "wasi:sockets/tcp@0.2.3" }];
  }, { kernel });
}

/** `<store>/machines/<identity hex>`: where a machine's writable paths live by default. */
const dataDir = (spec: string) => join(store, "machines", (JSON.parse(readFileSync(spec, "utf8")) as SealedSpec).seal.digest.slice("blake3:".length));

describe("a second machine", () => {
  it("runs with its own name as argv[0], counting stdin and a file of its own rootfs", () => {
    const piped = run(["//examples/wordcount:sealed"], "one two three\nfour\n");
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout).toBe("argv0 wordcount\n2 4 19 -\n");
    const motd = run([join(out, "wordcount.json"), "--", "/etc/motd"]);
    expect(motd.stdout).toBe("argv0 wordcount\n2 11 53 /etc/motd\n");
  });

  it("sees exactly HOME=/ of the environment, nothing of the host's", () => {
    const r = wmbSync(ws, ["run", "--store", store, join(out, "wordcount.json"), "--", "--env"], { env: { WMB_HOST_SECRET: "s3cret" } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("argv0 wordcount\nenv HOME=/\n");
  });

  it("declares nothing writable, so it can write nowhere: not /, not /db, not /tmp", () => {
    const r = run([join(out, "wordcount.json"), "--", "--write", "/x.txt", "--write", "/db/y", "--write", "/tmp/z"]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe("argv0 wordcount"); // it ran
    expect(lines.slice(1)).toHaveLength(3);
    for (const l of lines.slice(1)) expect(l).toMatch(/^cannot write \/\S+: (Read-only file system|No such file or directory)$/);
  });

  it("refuses --db and --mount for paths its spec does not declare, before anything runs", () => {
    const db = run(["--db", mkdtempSync(join(tmpdir(), "wmb-db-")), join(out, "wordcount.json"), "--", "/etc/motd"]);
    expect(db.code).toBe(2);
    expect(db.stdout).toBe("");
    expect(db.stderr).toBe("error: wordcount cannot mount /db: it declares no writable path, so there is nothing to mount with --db.\n");
    const mount = run(["--mount", `/data=${tmpdir()}`, join(out, "wordcount.json")]);
    expect(mount.code).toBe(2);
    expect(mount.stderr).toContain("wordcount cannot mount /data");
  });

  it("inspect shows its own profile and that only the rootfs is mounted", () => {
    const r = wmbSync(ws, ["inspect", "--store", store, "--json", join(out, "wordcount.json")]);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout) as { capabilities: { memory_bytes: number; filesystem: { writable: string[] } }; grant: { argv0: string; writable: unknown[] } };
    expect(info.capabilities.memory_bytes).toBe(16 * 1024 * 1024);
    expect(info.grant).toMatchObject({ argv0: "wordcount", writable: [] });
    const text = wmbSync(ws, ["inspect", "--store", store, join(out, "wordcount.json")]).stdout;
    expect(text).toContain("\nmounts    / read-only (rootfs)\n");
  });

  it("with several writable paths declared, mounts one directory each (--mount or the store's default), and nothing else", () => {
    const spec = resealed((s) => (s.capability_profile.filesystem.writable = ["/out", "/var/log"]));
    const outDir = mkdtempSync(join(tmpdir(), "wmb-out-"));
    const r = run(["--mount", `/out=${outDir}`, spec, "--", "--write", "/out/a", "--write", "/var/log/b", "--write", "/c"]);
    expect(r.stdout).toBe("argv0 wordcount\nwrote /out/a\nwrote /var/log/b\ncannot write /c: Read-only file system\n");
    expect(readdirSync(outDir)).toEqual(["a"]);
    expect(readdirSync(join(dataDir(spec), "var%2Flog"))).toEqual(["b"]);
    const db = run(["--db", outDir, spec]);
    expect([db.code, db.stderr]).toEqual([2, "error: wordcount cannot mount /db: its writable paths are /out, /var/log, so there is nothing to mount with --db.\n"]);
    mkdirSync(join(outDir, "inner"));
    const nested = run(["--mount", `/out=${outDir}`, "--mount", `/var/log=${join(outDir, "inner")}`, spec]);
    expect(nested.code).toBe(2);
    expect(nested.stdout).toBe("");
    expect(nested.stderr).toMatch(/^error: the directory \S+inner for \/var\/log and the directory \S+ for \/out overlap/);
  });

  it("runs whatever cpus its profile allows, on one thread", () => {
    const spec = resealed((s) => (s.capability_profile.cpus = 8));
    const r = run([spec, "--", "/etc/motd"]);
    expect([r.code, r.stdout]).toEqual([0, "argv0 wordcount\n2 11 53 /etc/motd\n"]);
    const info = JSON.parse(wmbSync(ws, ["inspect", "--store", store, "--json", spec]).stdout) as { grant: { threads: number } };
    expect(info.grant.threads).toBe(1);
  });

  it.each([
    ["/", /must name a directory below \/ in normal form/],
    ["out", /must be an absolute path/],
    ["/a/../out", /must be an absolute path without '\.\.'/],
    ["/out/", /must name a directory below \/ in normal form/],
  ])("a validly sealed spec declaring the writable path %j is refused at run (exit 3)", (path, why) => {
    const r = run([resealed((s) => (s.capability_profile.filesystem.writable = [path])), "--", "/etc/motd"]);
    expect([r.code, r.stdout]).toEqual([3, ""]);
    expect(r.stderr).toMatch(why);
  });

  it("a validly sealed spec declaring one writable path inside another is refused at run (exit 3)", () => {
    const r = run([resealed((s) => (s.capability_profile.filesystem.writable = ["/out", "/out/logs"])), "--", "/etc/motd"]);
    expect([r.code, r.stdout]).toEqual([3, ""]);
    expect(r.stderr).toMatch(/"\/out\/logs" repeats or lies inside writable\[0\] "\/out"/);
  });

  it("a validly sealed spec whose kernel imports wasi:sockets under network \"deny\" is refused at run (exit 3)", async () => {
    const r = run([await withSocketImport("deny")]);
    expect([r.code, r.stdout]).toEqual([3, ""]);
    expect(r.stderr).toMatch(/^error: Refusing to run wordcount \(blake3:[0-9a-f]{64}\): the component imports wasi:sockets\/tcp@0.2.3 but the capability profile says network: "deny"\.\n$/);
  });

  it("under network \"allow\" a socket import is still refused: this runtime implements no sockets", async () => {
    const r = run([await withSocketImport("allow")]);
    expect([r.code, r.stdout]).toEqual([1, ""]);
    expect(r.stderr).toMatch(/^error: Cannot run wordcount \(blake3:[0-9a-f]{64}\): this runtime implements no wasi:sockets\/tcp; run it on a runtime that provides them\.\n$/);
  });

  it("a validly sealed spec binding an import to a provider other than the host is refused at run", () => {
    const spec = resealed((s) => (s.composition.bindings.find((b) => b.import_name.startsWith("wasi:cli/stdout"))!.provider_id = "logger"));
    const r = run([spec]);
    expect([r.code, r.stdout]).toEqual([1, ""]);
    expect(r.stderr).toMatch(/^error: Cannot run wordcount \(blake3:[0-9a-f]{64}\): it binds wasi:cli\/stdout@[\d.]+ to logger, a provider this runtime does not have; /);
  });

  it("a validly sealed spec whose memory_bytes is below the kernel's maximum is refused at run (exit 3)", () => {
    const spec = resealed((s) => (s.capability_profile.memory_bytes = 1024 * 1024));
    const r = run([spec, "--", "/etc/motd"]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^error: Refusing to run wordcount \(blake3:[0-9a-f]{64}\): the component's memory may grow to 16777216 bytes .* more than memory_bytes 1048576\.\n$/);
  });

  it("a validly sealed spec whose bindings leave an import unbound is refused at run (exit 3)", () => {
    const spec = resealed((s) => (s.composition.bindings = s.composition.bindings.filter((b) => !b.import_name.startsWith("wasi:cli/stdout"))));
    const r = run([spec]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/unbound import wasi:cli\/stdout@/);
  });
});
