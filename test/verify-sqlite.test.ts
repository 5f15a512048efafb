// The real machine is reproducible, and moves between stores without changing.
import { beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { wmb, wmbSync } from "./helpers/cli.ts";
import { sqliteFixture, type SqliteFixture } from "./helpers/sqlite-fixture.ts";

let fx: SqliteFixture;
beforeAll(async () => {
  fx = await sqliteFixture();
});

describe("//sqlite-cli:sealed reproducibility and bundles", () => {
  it("verify rebuilds the whole closure in a varied sandbox and finds it identical", async () => {
    const r = await wmb(fx.workspace, ["verify", "--json", "--store", fx.store, "//sqlite-cli:sealed"]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.reproducible).toBe(true);
    const round = report.rounds[0];
    expect(round.identityAfter).toBe(round.identityBefore);
    const statuses = Object.fromEntries(round.actions.map((a: { label: string; status: string }) => [a.label, a.status]));
    expect(statuses["//sqlite-cli:wasm_sqlite3"]).toBe("identical");
    expect(statuses["//sqlite-cli:sealed"]).toBe("identical");
  }, 300_000); // rebuilds the whole closure cold (sqlite3.c alone ~60 s), next to other suites

  it("bundle, import into a fresh store elsewhere, run: same identity, same output", () => {
    const dir = mkdtempSync(join(tmpdir(), "wmb-bundle-"));
    const bundle = join(dir, "sqlite-cli.wmb.tar");
    const b = wmbSync(fx.workspace, ["bundle", "--store", fx.store, "//sqlite-cli:sealed", "-o", bundle]);
    expect(b.code, b.stderr).toBe(0);
    const identity = b.stdout.trim();
    expect(identity).toBe(JSON.parse(readFileSync(join(fx.workspace, "wmb-out/sqlite-cli/sqlite-cli.json"), "utf8")).seal.digest);

    const elsewhere = join(dir, "elsewhere-store");
    const imp = wmbSync(dir, ["store", "import", bundle, "--store", elsewhere]);
    expect(imp.code, imp.stderr).toBe(0);
    expect(imp.stdout.trim()).toBe(identity);
    const q = ["--", ":memory:", "select 'same' as s, 1+1 as two;"];
    const there = wmbSync(dir, ["run", "--store", elsewhere, identity, ...q]);
    const here = wmbSync(fx.workspace, ["run", "--store", fx.store, identity, ...q]);
    expect(there.code, there.stderr).toBe(0);
    expect(there.stdout).toBe(here.stdout);
    const ins = JSON.parse(wmbSync(dir, ["inspect", "--json", "--store", elsewhere, identity]).stdout);
    expect(ins.identity).toBe(identity);
  });

  it("refuses a truncated bundle, admitting nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), "wmb-bundle-cut-"));
    const bundle = join(dir, "b.tar");
    expect(wmbSync(fx.workspace, ["bundle", "--store", fx.store, "//sqlite-cli:sealed", "-o", bundle]).code).toBe(0);
    const bytes = readFileSync(bundle);
    const cut = join(dir, "cut.tar");
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const store = join(dir, "store");
    const r = wmbSync(dir, ["store", "import", cut, "--store", store]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("nothing was imported");
    expect(JSON.parse(wmbSync(dir, ["store", "stats", "--json", "--store", store]).stdout).blobs).toBe(0);
  });

  it("refuses a bundle with one flipped byte and admits nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), "wmb-bundle-bad-"));
    const bundle = join(dir, "b.tar");
    expect(wmbSync(fx.workspace, ["bundle", "--store", fx.store, "//sqlite-cli:sealed", "-o", bundle]).code).toBe(0);
    const bytes = readFileSync(bundle);
    bytes[bytes.length - 1024 - 700] ^= 0x01; // inside the last blob's data
    const flipped = join(dir, "flipped.tar");
    writeFileSync(flipped, bytes);
    const store = join(dir, "store");
    const r = wmbSync(dir, ["store", "import", flipped, "--store", store]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("nothing was imported");
    const stats = JSON.parse(wmbSync(dir, ["store", "stats", "--json", "--store", store]).stdout);
    expect(stats.blobs).toBe(0);
  });
});
