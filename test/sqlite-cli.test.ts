// //sqlite-cli end to end through the CLI: the real fetch, compiles, component, rootfs, spec
// and seal, checked against independent recomputation with @noble/hashes.
import { beforeAll, describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blake3 } from "@noble/hashes/blake3.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { buildJson, executed, wmb, wmbSync } from "./helpers/cli.ts";
import { copyWorkspace, sqliteFixture, type SqliteFixture } from "./helpers/sqlite-fixture.ts";
import { canonicalize } from "../src/formats/jcs.ts";
import { readTar } from "../src/formats/tar-reader.ts";
import { readComponent } from "../src/formats/wasm.ts";

const hex = (b: Uint8Array) => bytesToHex(blake3(b));

let fx: SqliteFixture;
beforeAll(async () => {
  fx = await sqliteFixture();
});

describe("//sqlite-cli:sealed", () => {
  it("builds every stage from an empty store, one compile per C file", () => {
    const labels = fx.summary.actions.filter((a) => a.status === "executed").map((a) => a.label);
    for (const l of ["src", "wasm_sqlite3", "wasm_shell", "wasm_wasi_shims", "wasm", "component", "rootfs", "spec", "sealed"]) {
      expect(labels).toContain(`//sqlite-cli:${l}`);
    }
  });

  it("has a spec whose digests, integer arrays, seal and bindings are right", () => {
    const out = join(fx.workspace, "wmb-out/sqlite-cli");
    const spec = JSON.parse(readFileSync(join(out, "sqlite-cli.json"), "utf8"));
    const wasm = readFileSync(join(out, "sqlite-cli.wasm"));
    const rootfs = readFileSync(join(out, "sqlite-cli.rootfs.tar"));
    expect(spec.kernel_ref).toMatchObject({ digest: `blake3:${hex(wasm)}`, size: wasm.length, media_type: "application/wasm" });
    expect(spec.rootfs_ref).toMatchObject({ digest: `blake3:${hex(rootfs)}`, size: rootfs.length });
    const ints = spec.composition.components[0].digest as number[];
    expect(ints).toHaveLength(32);
    expect(Buffer.from(ints).toString("hex")).toBe(hex(wasm));

    // The identity covers everything but the seal and where the artifacts can be fetched from.
    const { seal, ...unsealed } = spec;
    for (const ref of [unsealed.kernel_ref, unsealed.rootfs_ref]) delete ref.sources;
    expect(seal.digest).toBe(`blake3:${hex(new TextEncoder().encode(canonicalize(unsealed)))}`);
    expect(seal).toMatchObject({ algorithm: "blake3", canonicalization: "jcs-rfc8785" });

    const imports = readComponent(wasm).imports.map((i) => i.name).sort();
    const bound = spec.composition.bindings.map((b: { import_name: string }) => b.import_name).sort();
    expect(bound).toEqual(imports);
    expect(imports.some((i) => i.startsWith("wasi:filesystem/"))).toBe(true);
    expect(imports.some((i) => /^wasi:(sockets|http)\//.test(i))).toBe(false);
    expect(spec.capability_profile).toEqual({ cpus: 1, memory_bytes: 134217728, network: "deny", filesystem: { writable: ["/db"] } });
  });

  it("has a deterministic rootfs tar: sorted, one mtime, root owner, no names", () => {
    const tar = readFileSync(join(fx.workspace, "wmb-out/sqlite-cli/sqlite-cli.rootfs.tar"));
    const entries = readTar(tar);
    const paths = entries.map((e) => e.path);
    expect(paths).toEqual([...paths].sort());
    expect(paths.map((p) => p.replace(/\/$/, ""))).toEqual(expect.arrayContaining(["db", ".sqliterc"]));
    for (const e of entries) {
      expect(e).toMatchObject({ mtime: 0, uid: 0, gid: 0, uname: "", gname: "" });
    }
    // GNU tar reads it the same way.
    const listing = execFileSync("tar", ["-tvf", "-", "--numeric-owner"], { input: tar, encoding: "utf8" });
    expect(listing).toContain("0/0");
    expect(listing).toContain("1970-01-01");
  });

  it("runs: -version prints SQLite 3.52.0", () => {
    const r = wmbSync(fx.workspace, ["run", "--store", fx.store, "//sqlite-cli:sealed", "--", "-version"]);
    expect(r.stderr).not.toContain("error:");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^3\.52\.0 /);
  });

  it("a second build executes nothing", () => {
    const b = buildJson(fx.workspace, ["--store", fx.store, "//sqlite-cli:sealed"]);
    expect(b.counts.executed).toBe(0);
  });

  it("editing /.sqliterc reruns only rootfs, spec and sealed", () => {
    const ws = copyWorkspace();
    appendFileSync(join(ws, "sqlite-cli/rootfs/.sqliterc"), "-- edited by a test\n");
    const b = buildJson(ws, ["--store", fx.store, "//sqlite-cli:sealed"]);
    expect(executed(b)).toEqual(["//sqlite-cli:rootfs", "//sqlite-cli:sealed", "//sqlite-cli:spec"]);
  });

  it("editing a shim reruns that compile, the link and what follows, never sqlite3.c", () => {
    const ws = copyWorkspace();
    appendFileSync(join(ws, "sqlite-cli/shims/wasi_shims.c"), "\nint wmb_test_marker(void) { return 42; }\n");
    const b = buildJson(ws, ["--store", fx.store, "//sqlite-cli:sealed"]);
    const ran = executed(b);
    expect(ran).toContain("//sqlite-cli:wasm_wasi_shims");
    expect(ran).toContain("//sqlite-cli:wasm");
    expect(ran).not.toContain("//sqlite-cli:wasm_sqlite3");
    expect(ran).not.toContain("//sqlite-cli:wasm_shell");
    expect(ran).not.toContain("//sqlite-cli:src");
  });

  it("two clean builds in two directories with two stores give the same identity", async () => {
    const ws = copyWorkspace();
    const store = mkdtempSync(join(tmpdir(), "wmb-second-store-"));
    const r = await wmb(ws, ["build", "--store", store, "//sqlite-cli:sealed"]);
    expect(r.code, r.stderr).toBe(0);
    const a = JSON.parse(readFileSync(join(fx.workspace, "wmb-out/sqlite-cli/sqlite-cli.json"), "utf8"));
    const b = JSON.parse(readFileSync(join(ws, "wmb-out/sqlite-cli/sqlite-cli.json"), "utf8"));
    expect(b.seal.digest).toBe(a.seal.digest);
  }, 300_000); // a whole cold build (sqlite3.c alone ~60 s), next to other suites on 2 cores
});

const hasSystemClang = spawnSync("sh", ["-c", "command -v clang && command -v wasm-ld && ls /usr/lib/wasm32-wasi* >/dev/null 2>&1"]).status === 0;

describe.skipIf(!hasSystemClang)("--toolchain system", () => {
  it("builds the machine with Debian's clang, never reusing hermetic outputs, and it runs", async () => {
    const ws = copyWorkspace();
    const r = await wmb(ws, ["build", "--json", "--toolchain", "system", "--store", fx.store, "//sqlite-cli:sealed"]);
    expect(r.code, r.stderr).toBe(0);
    const b = JSON.parse(r.stdout);
    expect(b.actions.find((a: { label: string }) => a.label === "//sqlite-cli:wasm_sqlite3").status).toBe("executed");
    const run = wmbSync(ws, ["run", "--store", fx.store, "wmb-out/sqlite-cli/sqlite-cli.json", "--", "-version"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^3\.52\.0 /);
  });
});
