// The slow shared fixture: //sqlite-cli:sealed built once per test run into one store, which
// every suite that needs the real machine reuses (several workspaces may share one store).
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { inject } from "vitest";
import { REPO, wmb } from "./cli.ts";
import "../global-setup.ts";

/** Provided by test/global-setup.ts: one directory per `vitest run`. */
function runDir(): string {
  return inject("runDir");
}

/** A fresh copy of this repository's workspace (BUILD.ts and package sources), for tests that edit sources. */
export function copyWorkspace(): string {
  const ws = mkdtempSync(join(tmpdir(), "wmb-sqlite-ws-"));
  for (const f of ["BUILD.ts", "package.json"]) cpSync(join(REPO, f), join(ws, f));
  for (const d of ["sqlite-cli", "examples"]) cpSync(join(REPO, d), join(ws, d), { recursive: true });
  return ws;
}

export interface SqliteFixture {
  /** The workspace the fixture was built in (do not edit it: copy one with copyWorkspace()). */
  workspace: string;
  /** The shared store, holding every action of the build. */
  store: string;
  /** The build's --json summary. */
  summary: { counts: Record<string, number>; actions: { label: string; status: string; outputs?: Record<string, string> }[] };
}

/** Builds //sqlite-cli:sealed the first time any suite asks, and waits for it in the others. */
export async function sqliteFixture(): Promise<SqliteFixture> {
  const dir = runDir();
  const done = join(dir, "sqlite-fixture.json");
  const lock = join(dir, "sqlite-fixture.lock");
  for (;;) {
    if (existsSync(done)) return JSON.parse(readFileSync(done, "utf8")) as SqliteFixture;
    try {
      mkdirSync(lock);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    const workspace = copyWorkspace();
    const store = join(dir, "store");
    const r = await wmb(workspace, ["build", "--json", "--store", store, "//sqlite-cli:sealed"]);
    if (r.code !== 0) throw new Error(`building //sqlite-cli:sealed failed (exit ${r.code}):\n${r.stderr}`);
    const fixture: SqliteFixture = { workspace, store, summary: JSON.parse(r.stdout) };
    writeFileSync(done, JSON.stringify(fixture));
    return fixture;
  } finally {
    rmdirSync(lock);
  }
}

/** A private copy of the shared store, for a suite that changes what it copies (gc, tampering).
 * Other suites use the store meanwhile, so files come and go under the copy (SQLite's -wal and
 * -shm, cas/tmp, locks, temp files): the index is copied as a consistent snapshot (VACUUM INTO),
 * and only files that stay are copied as they are. */
export function copyFixtureStore(from: string, to: string): void {
  const transient = /(^|[\\/])(index\.sqlite(-wal|-shm|-journal)?|tmp|locks)$|\.tmp$/;
  cpSync(from, to, { recursive: true, filter: (src) => !transient.test(src.slice(from.length)) });
  const db = new Database(join(from, "index.sqlite"), { fileMustExist: true, timeout: 30_000 });
  try {
    db.prepare("VACUUM INTO ?").run(join(to, "index.sqlite"));
  } finally {
    db.close();
  }
}
