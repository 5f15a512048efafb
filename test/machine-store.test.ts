// Sealed machines in the store: registered by identity, their transpiled component a rooted
// store entry that survives gc (so the first run after gc does not transpile again).
import { beforeAll, describe, expect, it } from "vitest";
import { cpSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeWorkspace, wmbSync, writeFiles } from "./helpers/cli.ts";
import { sqliteFixture, type SqliteFixture } from "./helpers/sqlite-fixture.ts";

let fx: SqliteFixture;
let store: string;
let identity: string;

beforeAll(async () => {
  fx = await sqliteFixture();
  // gc deletes: work on a copy, never on the shared fixture's store.
  store = join(mkdtempSync(join(tmpdir(), "wmb-machine-store-")), "store");
  cpSync(fx.store, store, { recursive: true });
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
});
