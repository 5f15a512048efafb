// Garbage collection: keep what the roots and the last N builds reach, delete the rest.
import { promises as fsp } from "node:fs";
import type { Digest } from "../src/digest.ts";
import type { Store } from "./store.ts";

export interface GcReport {
  resultsDeleted: number;
  blobsDeleted: number;
  bytesFreed: number;
  blobsKept: number;
}

export interface GcOptions {
  /** Keep the results used by this many most recent builds. */
  keepBuilds: number;
  /** Spare blobs younger than this, so a build running right now keeps what it just wrote. */
  graceMs: number;
  dryRun?: boolean;
}

export async function gc(store: Store, opts: GcOptions): Promise<GcReport> {
  const db = store.db;
  const cutoff = Date.now() - opts.graceMs;
  const doomedBlobs = db.transaction(() => {
    db.exec(`CREATE TEMP TABLE IF NOT EXISTS keep_results (id INTEGER PRIMARY KEY)`);
    db.exec(`DELETE FROM keep_results`);
    db.prepare(
      `INSERT OR IGNORE INTO keep_results
       SELECT result_id FROM build_actions
       WHERE result_id IS NOT NULL AND build_id IN (SELECT id FROM builds ORDER BY id DESC LIMIT ?)`,
    ).run(opts.keepBuilds);
    // Results created during the grace period belong to builds in flight.
    db.prepare(`INSERT OR IGNORE INTO keep_results SELECT id FROM action_results WHERE created_at >= ?`).run(cutoff);
    const resultsDeleted = opts.dryRun
      ? (db.prepare(`SELECT count(*) AS n FROM action_results WHERE id NOT IN (SELECT id FROM keep_results)`).get() as { n: number }).n
      : db.prepare(`DELETE FROM action_results WHERE id NOT IN (SELECT id FROM keep_results)`).run().changes;
    const blobs = db
      .prepare(
        `SELECT digest, size FROM blobs
         WHERE created_at < ?
           AND digest NOT IN (SELECT digest FROM action_outputs WHERE result_id IN (SELECT id FROM keep_results))
           AND digest NOT IN (SELECT digest FROM gc_roots)`,
      )
      .all(cutoff) as { digest: Digest; size: number }[];
    if (!opts.dryRun) {
      const del = db.prepare(`DELETE FROM blobs WHERE digest = ?`);
      for (const b of blobs) del.run(b.digest);
    }
    return { resultsDeleted, blobs };
  }).immediate();
  // Rows first, then files: a crash in between leaves orphans (fsck adopts or drops them), never dangling rows.
  let bytesFreed = 0;
  for (const b of doomedBlobs.blobs) {
    if (!opts.dryRun) await fsp.rm(store.blobPath(b.digest), { force: true });
    bytesFreed += b.size;
  }
  const blobsKept = (db.prepare(`SELECT count(*) AS n FROM blobs`).get() as { n: number }).n;
  return { resultsDeleted: doomedBlobs.resultsDeleted, blobsDeleted: doomedBlobs.blobs.length, bytesFreed, blobsKept };
}
