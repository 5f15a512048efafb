// Integrity check of the whole store: every blob re-hashed, every row checked.
import { promises as fsp } from "node:fs";
import { hashFile, type Digest } from "../src/digest.ts";
import { statSignature } from "./cas.ts";
import type { Sql } from "./sql.ts";
import type { Store } from "./store.ts";

export interface FsckReport {
  blobsChecked: number;
  bytesChecked: number;
  /** Row and file present, bytes do not hash to the name. */
  corrupt: Digest[];
  /** Row present, file absent. */
  missing: Digest[];
  /** File present, no row (a crash between rename and insert, or an interrupted import). */
  orphaned: Digest[];
  /** Output, root, machine and transpiled rows naming a blob with no row. */
  danglingRows: number;
  staleTemps: number;
  repaired: boolean;
}

/** Tables whose rows name blobs, and the column that does. */
const BLOB_REFERENCES = [
  ["action_outputs", "digest"],
  ["gc_roots", "digest"],
  ["machines", "spec_digest"],
  ["transpiled", "digest"],
] as const;

export async function fsck(store: Store, sql: Sql, opts: { repair: boolean }): Promise<FsckReport> {
  const rows = sql.all<{ digest: Digest; size: number }>(`SELECT digest, size FROM blobs ORDER BY digest`);
  const known = new Set(rows.map((r) => r.digest));
  const report: FsckReport = { blobsChecked: 0, bytesChecked: 0, corrupt: [], missing: [], orphaned: [], danglingRows: 0, staleTemps: 0, repaired: opts.repair };

  for (const r of rows) {
    const path = store.blobPath(r.digest);
    const actual = await hashFile(path).catch(() => undefined);
    if (!actual) {
      report.missing.push(r.digest);
      continue;
    }
    report.blobsChecked++;
    report.bytesChecked += actual.size;
    if (actual.digest !== r.digest) report.corrupt.push(r.digest);
  }
  for await (const d of store.cas.list()) {
    if (!known.has(d)) report.orphaned.push(d);
  }
  report.danglingRows = 0;
  for (const [table, column] of BLOB_REFERENCES) {
    report.danglingRows += sql.count(`SELECT count(*) AS n FROM ${table} WHERE ${column} NOT IN (SELECT digest FROM blobs)`);
  }
  const temps = await store.cas.staleTemps(60 * 60 * 1000);
  report.staleTemps = temps.length;

  if (opts.repair) {
    for (const d of [...report.corrupt, ...report.missing]) {
      await store.cas.remove(d);
      store.forgetBlob(d);
    }
    sql.write(() => {
      sql.run(`DELETE FROM action_results WHERE id IN (SELECT result_id FROM action_outputs WHERE digest NOT IN (SELECT digest FROM blobs))`);
      for (const [table, column] of BLOB_REFERENCES.slice(1)) sql.run(`DELETE FROM ${table} WHERE ${column} NOT IN (SELECT digest FROM blobs)`);
    });
    for (const d of report.orphaned) {
      // Adopt an orphan whose bytes are right (cheap to keep, may be referenced by a retry); drop the rest.
      const path = store.blobPath(d);
      const actual = await hashFile(path).catch(() => undefined);
      if (actual?.digest === d) {
        const st = await fsp.stat(path);
        sql.run(`INSERT OR IGNORE INTO blobs (digest, size, stat_sig, created_at) VALUES (?, ?, ?, ?)`, d, actual.size, statSignature(st), Date.now());
      } else {
        await store.cas.remove(d);
      }
    }
    for (const t of temps) await fsp.rm(t, { force: true });
  }
  return report;
}

export function fsckClean(r: FsckReport): boolean {
  return r.corrupt.length === 0 && r.missing.length === 0 && r.danglingRows === 0;
}
