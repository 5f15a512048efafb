// A second machine, //examples/wordcount:sealed (a small C program, 16 MiB, nothing writable),
// built, sealed and run through the CLI: what it is granted comes from its own spec, not from
// sqlite-cli's, and run re-checks what seal checks before anything starts.
import { beforeAll, describe, expect, it } from "vitest";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildJson, wmbSync } from "./helpers/cli.ts";
import { copyWorkspace, sqliteFixture } from "./helpers/sqlite-fixture.ts";
import { formatSpec, sealSpec, type SealedSpec } from "../src/formats/machine-spec.ts";

let ws: string;
let store: string;
let out: string;

beforeAll(async () => {
  const fx = await sqliteFixture(); // its store already holds the fetched preview1 adapter
  ws = copyWorkspace();
  store = join(mkdtempSync(join(tmpdir(), "wmb-wordcount-")), "store");
  cpSync(fx.store, store, { recursive: true });
  buildJson(ws, ["--store", store, "//examples/wordcount:sealed"]);
  out = join(ws, "wmb-out/examples/wordcount");
});

const run = (args: string[], input = "") => wmbSync(ws, ["run", "--store", store, ...args], { input });

/** The built machine's three files in a directory of their own, the spec edited and sealed again. */
function resealed(edit: (spec: SealedSpec) => void): string {
  const dir = mkdtempSync(join(tmpdir(), "wmb-resealed-"));
  for (const f of ["wordcount.wasm", "wordcount.rootfs.tar"]) cpSync(join(out, f), join(dir, f));
  const spec = JSON.parse(readFileSync(join(out, "wordcount.json"), "utf8")) as SealedSpec;
  edit(spec);
  writeFileSync(join(dir, "wordcount.json"), formatSpec(sealSpec(spec)));
  return join(dir, "wordcount.json");
}

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
