// wmb run figures: first run (with transpile), warm run, and a 100,000-row workload in the
// machine next to the same SQL in the host's better-sqlite3.
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, fmt, median, REPO, row, section } from "./harness.ts";

const WORKLOAD = `
create table t(id integer primary key, k integer, v text);
with recursive c(i) as (select 1 union all select i + 1 from c where i < 100000)
insert into t(k, v) select i % 97, 'row-' || i from c;
select k, count(*), sum(length(v)) from t group by k order by k limit 3;
`;

export async function runBench(): Promise<void> {
  section("wmb run //sqlite-cli:sealed");
  const store = mkdtempSync(join(tmpdir(), "wmb-bench-run-"));
  const env = { WMB_STORE: store };
  cli(REPO, ["build", "//sqlite-cli:sealed"], env);
  row("first run of -version (check + transpile + run)", fmt(cli(REPO, ["run", "//sqlite-cli:sealed", "--", "-version"], env).ms));
  const warm = [0, 1, 2].map(() => cli(REPO, ["run", "wmb-out/sqlite-cli/sqlite-cli.json", "--", "-version"], env).ms);
  row("warm run of -version (median of 3)", fmt(median(warm)));

  const db = mkdtempSync(join(tmpdir(), "wmb-bench-db-"));
  const inMachine = cli(REPO, ["run", "wmb-out/sqlite-cli/sqlite-cli.json", "--db", db, "--", ":memory:", WORKLOAD], env).ms;
  const t0 = performance.now();
  const host = new Database(":memory:");
  host.exec(WORKLOAD.split(";").slice(0, 2).join(";") + ";");
  host.prepare("select k, count(*), sum(length(v)) from t group by k order by k limit 3").all();
  host.close();
  const native = performance.now() - t0;
  row("100k-row insert + aggregate in the machine (wall)", fmt(inMachine));
  row("same SQL in host better-sqlite3", fmt(native), `sandbox slowdown ${(inMachine / native).toFixed(1)}x`);
  rmSync(store, { recursive: true, force: true });
  rmSync(db, { recursive: true, force: true });
}
