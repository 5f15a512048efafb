// wmb run on the real sealed machine: checks before running, capabilities, persistence.
import { beforeAll, describe, expect, it } from "vitest";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { wmbSync } from "./helpers/cli.ts";
import { resealedMachine } from "./helpers/resealed-machine.ts";
import { copyFixtureStore, sqliteFixture, type SqliteFixture } from "./helpers/sqlite-fixture.ts";

let fx: SqliteFixture;
/** A copy of the shared fixture's store: runs create mount directories and transpile caches. */
let store: string;
let specPath: string;
let identity: string;
const run = (args: string[], input?: string) => wmbSync(fx.workspace, ["run", "--store", store, ...args], { input });

beforeAll(async () => {
  fx = await sqliteFixture();
  store = join(mkdtempSync(join(tmpdir(), "wmb-run-store-")), "store");
  copyFixtureStore(fx.store, store);
  specPath = join(fx.workspace, "wmb-out/sqlite-cli/sqlite-cli.json");
  identity = JSON.parse(readFileSync(specPath, "utf8")).seal.digest;
});

const SQLITERC = readFileSync(join(import.meta.dirname, "../sqlite-cli/rootfs/.sqliterc"), "utf8");

/** A copy of the built machine's three files, with `mutate` applied, in a directory of its own. */
function tamperedCopy(mutate: (dir: string) => void): string {
  const dir = mkdtempSync(join(tmpdir(), "wmb-tampered-"));
  cpSync(join(fx.workspace, "wmb-out/sqlite-cli"), dir, { recursive: true });
  for (const f of ["sqlite-cli.json", "sqlite-cli.wasm", "sqlite-cli.rootfs.tar"]) {
    const p = join(dir, f);
    writeFileSync(p, readFileSync(p)); // writable copies
  }
  mutate(dir);
  return join(dir, "sqlite-cli.json");
}

function flipByte(path: string, offset: number): void {
  const b = readFileSync(path);
  b[offset] = b[offset]! ^ 0x01;
  writeFileSync(path, b);
}

describe("wmb run", () => {
  it("gives the same output from the label, the spec path and the identity", () => {
    const q = ["--", ":memory:", "select 6*7 as answer;"];
    const a = run(["//sqlite-cli:sealed", ...q]);
    const b = run([specPath, ...q]);
    const c = run([identity, ...q]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toContain("42");
    expect(b.stdout).toBe(a.stdout);
    expect(c.stdout).toBe(a.stdout);
  });

  it("prints what its rootfs's /.sqliterc says (box, headers, NULL): without it list mode, with another one csv", () => {
    const sql = ["--", ":memory:", "select 1 as one, null as n;"];
    const built = run([specPath, ...sql]);
    expect(built.code, built.stderr).toBe(0);
    expect(built.stdout).toBe("╭─────┬──────╮\n│ one │  n   │\n╞═════╪══════╡\n│   1 │ NULL │\n╰─────┴──────╯\n");
    // The same kernel with another rootfs (resealed: a new machine): only /.sqliterc differs.
    const out = join(fx.workspace, "wmb-out/sqlite-cli");
    const without = run([resealedMachine(out, "sqlite-cli", () => {}, { rootfs: { "/db/": "" } }), ...sql]);
    expect(without.code, without.stderr).toBe(0);
    expect(without.stdout).toBe("1|\n");
    const csv = run([resealedMachine(out, "sqlite-cli", () => {}, { rootfs: { "/db/": "", "/.sqliterc": ".mode csv\n.headers on\n" } }), ...sql]);
    expect(csv.stdout).toBe("one,n\r\n1,\r\n");
    // The built rootfs holds the repository's file, byte for byte.
    expect(run([specPath, "--", "-list", "-noheader", ":memory:", "select readfile('/.sqliterc');"]).stdout).toBe(`${SQLITERC}\n`);
  });

  it("pipes stdin to the guest", () => {
    const r = run([specPath, "--", ":memory:"], "select 40+2 as v;\n");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("42");
  });

  it("keeps /db data between runs, in --db DIR or --mount /db/=DIR (the same mount)", () => {
    const db = mkdtempSync(join(tmpdir(), "wmb-db-"));
    expect(run([specPath, "--db", db, "--", "/db/app.db", "create table t(x); insert into t values (7),(8);"]).code).toBe(0);
    expect(existsSync(join(db, "app.db"))).toBe(true);
    const r = run([specPath, "--mount", `/db/=${db}`, "--", "-list", "/db/app.db", "select sum(x) as s from t;"]);
    expect(r.stdout).toBe("s\n15\n");
  });

  it("mounts /db from <store>/machines/<identity>/db by default", () => {
    const dir = join(store, "machines", identity.slice("blake3:".length), "db");
    const r = run([specPath, "--", "/db/default.db", "create table t(x);"]);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(dir)).toContain("default.db");
  });

  it("refuses a --mount for a path its spec does not declare, before anything runs", () => {
    const r = run(["--mount", `/data=${mkdtempSync(join(tmpdir(), "wmb-data-"))}`, specPath, "--", "-version"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("error: sqlite-cli cannot mount /data: its writable paths are /db, so there is nothing to mount.\n");
  });

  it("sorts and groups 100,000 rows in :memory: (temp storage stays in memory: no temp dir exists)", () => {
    const sql = `create table t(k, v);
with recursive c(i) as (select 1 union all select i + 1 from c where i < 100000)
insert into t select i % 97, 'row-' || i from c;
select count(distinct v) as n from t;`;
    const r = run([specPath, "--", ":memory:", sql]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("100000");
  });

  it("propagates the guest's failure exit code", () => {
    const r = run([specPath, "--", "-bail", ":memory:", "select * from no_such_table;"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("no such table");
  });

  it.each([
    ["read a host script by its absolute path", `.read SECRET/x.sql`, /cannot open/],
    ["read a script above the root with ..", `.read ../../../../../..SECRET/x.sql`, /cannot open/],
    ["redirect output to a host path", `.output SECRET/out.txt\nselect 'written';`, /cannot open/],
    ["send one result to a host path", `.once SECRET/once.txt\nselect 'written';`, /cannot open/],
    ["create a database in a host directory", `ATTACH 'SECRET/new.db' AS n; create table n.t(x);`, /unknown database n/],
  ])("cannot %s: the guest ran, the attempt failed inside it, the host is untouched", (_what, attempt, refusal) => {
    const db = mkdtempSync(join(tmpdir(), "wmb-db-"));
    const secretDir = mkdtempSync(join(tmpdir(), "wmb-secret-"));
    writeFileSync(join(secretDir, "x.sql"), "select 'LEAKED';\n");
    const sql = `select 'BEGIN';\n${attempt.replaceAll("SECRET", secretDir)}\n.output stdout\nselect 'END';\n`;
    const r = run([specPath, "--db", db, "--", "-batch", ":memory:"], sql);
    expect(r.stdout).toMatch(/BEGIN[\s\S]*END/); // it ran to the end
    expect(r.stderr).toMatch(refusal);
    expect(r.stdout + r.stderr).not.toContain("LEAKED");
    expect(readdirSync(secretDir)).toEqual(["x.sql"]);
    expect(readdirSync(db)).toEqual([]);
  });

  it("readfile() and writefile() reach the rootfs and /db, never a host path", () => {
    const db = mkdtempSync(join(tmpdir(), "wmb-db-"));
    const secretDir = mkdtempSync(join(tmpdir(), "wmb-secret-"));
    writeFileSync(join(secretDir, "x.sql"), "host secret");
    const sql = `select length(readfile('/.sqliterc')), readfile('${secretDir}/x.sql') is null, writefile('/db/w.txt', 'ok'), writefile('${secretDir}/w.txt', 'pwned') is null;`;
    const r = run([specPath, "--db", db, "--", "-list", "-noheader", ":memory:", sql]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${Buffer.byteLength(SQLITERC)}|1|2|1\n`);
    expect(readFileSync(join(db, "w.txt"), "utf8")).toBe("ok");
    expect(readdirSync(secretDir)).toEqual(["x.sql"]);
  });

  it.each([
    ["the kernel", (d: string) => flipByte(join(d, "sqlite-cli.wasm"), 5000)],
    ["the rootfs", (d: string) => flipByte(join(d, "sqlite-cli.rootfs.tar"), 600)],
    [
      "the integer digest array",
      (d: string) => {
        const p = join(d, "sqlite-cli.json");
        const s = JSON.parse(readFileSync(p, "utf8"));
        s.composition.components[0].digest[0] ^= 1;
        writeFileSync(p, JSON.stringify(s, null, 2));
      },
    ],
    [
      "the seal",
      (d: string) => {
        const p = join(d, "sqlite-cli.json");
        const s = JSON.parse(readFileSync(p, "utf8"));
        s.seal.digest = s.seal.digest.slice(0, -1) + (s.seal.digest.endsWith("0") ? "1" : "0");
        writeFileSync(p, JSON.stringify(s, null, 2));
      },
    ],
  ])("refuses a machine with one flipped byte in %s, with exit 3 and no guest output", (_what, mutate) => {
    // A fresh store: the kernel and rootfs can only come from the (tampered) files next to the spec.
    const empty = mkdtempSync(join(tmpdir(), "wmb-empty-store-"));
    const spec = tamperedCopy(mutate);
    const r = wmbSync(fx.workspace, ["run", "--store", empty, spec, "--", "-version"]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^error: .*(hashes to|does not match|digest)/m);
  });

  it("transpiles a kernel once, then reuses it", () => {
    const r = run(["--timings", specPath, "--", "-version"]);
    expect(r.stderr).toContain("transpile cached");
  });

  it("inspect checks and describes without running, with the mounts run would grant", () => {
    const r = wmbSync(fx.workspace, ["inspect", "--store", store, "--json", specPath]);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.identity).toBe(identity);
    expect(info.imports.length).toBeGreaterThan(5);
    expect(info.capabilities).toEqual({ cpus: 1, memory_bytes: 134217728, network: "deny", filesystem: { writable: ["/db"] } });
    const dbDir = join(store, "machines", identity.slice("blake3:".length), "db");
    expect(info.grant).toMatchObject({ argv0: "sqlite-cli", writable: [{ guest: "/db", host: dbDir }], threads: 1 });
    const text = wmbSync(fx.workspace, ["inspect", "--store", store, specPath]).stdout;
    expect(text).toContain(`mounts    / read-only (rootfs), /db -> ${dbDir}\n`);
  });
});
