// The SQLite index of the store (better-sqlite3, WAL): opens it and migrates it. The schema is
// schema.sql (version 1) plus the migration-N-*.sql files listed below, applied in order on open.
import Database from "better-sqlite3";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { wmbFile } from "../src/repo-root.ts";
import { WmbError } from "../src/errors.ts";

type Db = Database.Database;

// better-sqlite3 is told where its addon is (its JavaScript is bundled into dist/wmb.cjs): its
// own `bindings` lookup searches a dozen directories, relative to a file the bundle lacks.
let addonPath: string | null | undefined;
export function sqliteAddon(): string | undefined {
  if (addonPath === undefined) {
    try {
      addonPath = createRequire(import.meta.url).resolve("better-sqlite3/build/Release/better_sqlite3.node");
    } catch {
      addonPath = null; // better-sqlite3 looks for it itself, and says what is missing
    }
  }
  return addonPath ?? undefined;
}

/** Migrations by version; version 1 is schema.sql. Append, never edit. */
const MIGRATIONS: { version: number; sql: () => string }[] = [
  { version: 1, sql: () => sqlFile("./schema.sql") },
  { version: 2, sql: () => sqlFile("./migration-2-machines.sql") },
  { version: 3, sql: () => sqlFile("./migration-3-transpiled.sql") },
  { version: 4, sql: () => sqlFile("./migration-4-sandboxed.sql") },
  { version: 5, sql: () => sqlFile("./migration-5-oci.sql") },
  { version: 6, sql: () => sqlFile("./migration-6-remote-results.sql") },
  { version: 7, sql: () => sqlFile("./migration-7-build-timeline.sql") },
  { version: 8, sql: () => sqlFile("./migration-8-machine-signers.sql") },
  { version: 9, sql: () => sqlFile("./migration-9-generation.sql") },
];
function sqlFile(rel: string): string {
  return readFileSync(wmbFile(join("store", rel)), "utf8");
}

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

export function openIndex(file: string): Db {
  let db: Db;
  try {
    db = new Database(file, { timeout: 30_000, nativeBinding: sqliteAddon() });
  } catch (e) {
    throw new WmbError("STORE", `Cannot open the store index ${file}: ${(e as Error).message}; check the path and its permissions.`, { subject: file, cause: e });
  }
  walMode(db);
  db.pragma("synchronous = NORMAL");
  db.pragma("foreign_keys = ON");
  migrate(db, file);
  return db;
}

/** Switch to WAL. On a fresh store another process may be migrating it: switching then answers
 * "database is locked" at once (SQLite does not wait on it), so wait here, as long as the busy
 * timeout would. */
function walMode(db: Db): void {
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      db.pragma("journal_mode = WAL");
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== "SQLITE_BUSY" || Date.now() > until) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

function migrate(db: Db, file: string): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current === SCHEMA_VERSION) return;
  if (current > SCHEMA_VERSION) {
    throw new WmbError("STORE", `The store index ${file} has schema version ${current}, newer than this wmb knows (${SCHEMA_VERSION}); upgrade wmb or use another --store.`, { subject: file });
  }
  // IMMEDIATE takes the write lock first, so two processes opening a fresh store do not both migrate.
  db.transaction(() => {
    const now = db.pragma("user_version", { simple: true }) as number;
    for (const m of MIGRATIONS) {
      if (m.version > now) db.exec(m.sql());
    }
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
