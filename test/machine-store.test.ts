// Sealed machines in the store: registered by identity, their transpiled component a rooted
// store entry that survives gc (so the first run after gc does not transpile again).
import { beforeAll, describe, expect, it } from "vitest";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import Database from "better-sqlite3";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeWorkspace, wmbSync, writeFiles } from "./helpers/cli.ts";
import { copyFixtureStore, sqliteFixture, type SqliteFixture } from "./helpers/sqlite-fixture.ts";

let fx: SqliteFixture;
let store: string;
let identity: string;

beforeAll(async () => {
  fx = await sqliteFixture();
  // gc deletes: work on a copy, never on the shared fixture's store.
  store = join(mkdtempSync(join(tmpdir(), "wmb-machine-store-")), "store");
  copyFixtureStore(fx.store, store);
  identity = JSON.parse(readFileSync(join(fx.workspace, "wmb-out/sqlite-cli/sqlite-cli.json"), "utf8")).seal.digest;
});

const runTimed = () => wmbSync(fx.workspace, ["run", "--store", store, "--timings", identity, "--", ":memory:", "select 40+2;"]);

describe("machines in the store", () => {
  it("keeps the transpiled component through gc: the first run after gc does not transpile", () => {
    const first = runTimed();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain("42");
    expect(runTimed().stderr).toContain("transpile cached");

    // Garbage of its own, whatever other suites did to the fixture: an output no label serves any more.
    const ws = makeWorkspace({ "BUILD.ts": `export default (w) => { w.package("p").write({ name: "g", out: "g.txt", content: "old" }); };` });
    expect(wmbSync(ws, ["build", "--store", store, "//p:g"]).code).toBe(0);
    writeFiles(ws, { "BUILD.ts": `export default (w) => { w.package("p").write({ name: "g", out: "g.txt", content: "new" }); };` });
    expect(wmbSync(ws, ["build", "--store", store, "//p:g"]).code).toBe(0);

    const gc = wmbSync(fx.workspace, ["store", "gc", "--store", store, "--keep-builds", "0", "--grace", "0", "--json"]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(JSON.parse(gc.stdout).blobsDeleted).toBeGreaterThan(0); // gc really collected

    const after = runTimed();
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toContain("42");
    expect(after.stderr).toContain("transpile cached");
    expect(wmbSync(fx.workspace, ["store", "fsck", "--store", store]).code).toBe(0);
  });

  it("counts the machine and its transpiled component in store stats", () => {
    const stats = JSON.parse(wmbSync(fx.workspace, ["store", "stats", "--store", store, "--json"]).stdout);
    expect(stats.machines).toBeGreaterThanOrEqual(1);
    expect(stats.transpiled_components).toBeGreaterThanOrEqual(1); // other suites may have run other kernels in the shared store
  });

  it("keeps the component's V8 code cache like any blob: a crafted one in its place is refused, never run", () => {
    const cacheRow = () => {
      const db = new Database(join(store, "index.sqlite"), { readonly: true });
      try {
        return db.prepare(`SELECT digest, created_at FROM transpiled WHERE path LIKE 'host/v8-code-cache/%'`).get() as { digest: string; created_at: number } | undefined;
      } finally {
        db.close();
      }
    };
    const blobPath = (digest: string) => join(store, "cas", digest.slice(0, 2), digest.slice(2));
    expect(runTimed().code).toBe(0);
    const kept = cacheRow();
    expect(kept).toBeDefined(); // written by a run and kept in the store
    const again = runTimed();
    expect(again.stdout).toContain("42");
    expect(cacheRow()).toEqual(kept); // V8 took it: not written again

    // What an attacker with write access to the store would try: a code cache V8 accepts for the
    // module (same source length, same Node) whose code is theirs. V8 checks nothing more.
    const entryRow = new Database(join(store, "index.sqlite"), { readonly: true });
    const entry = entryRow.prepare(`SELECT digest FROM transpiled WHERE path = 'component.cjs'`).get() as { digest: string };
    entryRow.close();
    const dir = mkdtempSync(join(tmpdir(), "wmb-code-cache-"));
    const crafted = join(dir, "crafted.v8cache");
    const craft = `
      const { readFileSync, writeFileSync } = require("node:fs");
      const { Script } = require("node:vm");
      const wrapped = "(function (exports, require, module, __filename, __dirname) { " + readFileSync(process.argv[1], "latin1") + "\\n})";
      const head = "(function (exports, require, module, __filename, __dirname) { process.stdout.write('PWNED\\\\n'); process.exit(7); /*";
      const tail = "*/\\n})";
      writeFileSync(process.argv[2], new Script(head + " ".repeat(wrapped.length - head.length - tail.length) + tail).createCachedData());`;
    expect(spawnSync(process.execPath, ["-e", craft, blobPath(entry.digest), crafted]).status).toBe(0);
    // The crafted cache is a working attack: loaded the way the runner loads the module, it runs.
    const proof = spawnSync(process.execPath, ["-e", `require(${JSON.stringify(join(__dirname, "..", "bin", "code-cache.cjs"))}).runCached(process.argv[1], process.argv[2], require)`, blobPath(entry.digest), crafted], { encoding: "utf8" });
    expect(proof.stdout).toBe("PWNED\n");

    chmodSync(blobPath(kept!.digest), 0o644);
    writeFileSync(blobPath(kept!.digest), readFileSync(crafted));
    const attacked = runTimed();
    expect(attacked.stdout).not.toContain("PWNED");
    expect(attacked.code, attacked.stderr).toBe(0);
    expect(attacked.stdout).toContain("42");
    // The crafted blob was dropped and a cache of the module itself kept in its place.
    const replaced = cacheRow();
    expect(replaced!.created_at).toBeGreaterThan(kept!.created_at);
    expect(wmbSync(fx.workspace, ["store", "fsck", "--store", store]).code).toBe(0);
  });
});
