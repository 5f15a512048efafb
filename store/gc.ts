// Garbage collection: keep what the roots and the last N builds reach, delete the rest.
// A transpiled component is kept as long as the kernel it was made from. The store calls it with
// its lock held exclusive (store-lock.ts): no build is running, so none can be serving, or have
// just written, what is swept.
import { promises as fsp } from "node:fs";
import type { Digest } from "../src/digest.ts";
import type { Sql } from "./sql.ts";
import { ActionLocks } from "./action-lock.ts";
import { sweepDeadSandboxes } from "../src/sandbox-base.ts";
import type { Store } from "./store.ts";

export interface GcReport {
  resultsDeleted: number;
  blobsDeleted: number;
  bytesFreed: number;
  blobsKept: number;
  /** Action locks left by processes that died (SIGKILL, power loss) and were removed. */
  staleLocks: number;
  /** Sandbox and lane directories of dead builds removed from the sandbox base. */
  staleSandboxes: number;
}

export interface GcOptions {
  /** Keep the results used by this many most recent builds. */
  keepBuilds: number;
  /** Spare results and blobs younger than this: what a build that just ended, or a pull, made. */
  graceMs: number;
  dryRun?: boolean;
}

export async function gc(store: Store, sql: Sql, opts: GcOptions): Promise<GcReport> {
  const cutoff = Date.now() - opts.graceMs;
  const doomed = sql.write(() => {
    sql.exec(`CREATE TEMP TABLE IF NOT EXISTS keep_results (id INTEGER PRIMARY KEY)`);
    sql.exec(`CREATE TEMP TABLE IF NOT EXISTS doomed_blobs (digest TEXT PRIMARY KEY, size INTEGER NOT NULL)`);
    sql.exec(`DELETE FROM keep_results`);
    sql.exec(`DELETE FROM doomed_blobs`);
    sql.run(
      `INSERT OR IGNORE INTO keep_results
       SELECT result_id FROM build_actions
       WHERE result_id IS NOT NULL AND build_id IN (SELECT id FROM builds ORDER BY id DESC LIMIT ?)`,
      opts.keepBuilds,
    );
    // What every label was last served: a no-op build records no rows, yet reaches all of these.
    sql.run(
      `INSERT OR IGNORE INTO keep_results
       SELECT result_id FROM (SELECT result_id, max(build_id) FROM build_actions GROUP BY label) WHERE result_id IS NOT NULL`,
    );
    // Results created during the grace period belong to builds in flight.
    sql.run(`INSERT OR IGNORE INTO keep_results SELECT id FROM action_results WHERE created_at >= ?`, cutoff);
    sql.run(
      `INSERT INTO doomed_blobs SELECT digest, size FROM blobs
       WHERE created_at < ?
         AND digest NOT IN (SELECT digest FROM action_outputs WHERE result_id IN (SELECT id FROM keep_results))
         AND digest NOT IN (SELECT digest FROM gc_roots)`,
      cutoff,
    );
    // Transpiled files whose kernel stays are spared; those of a doomed (or absent) kernel go.
    sql.run(
      `DELETE FROM doomed_blobs WHERE digest IN (
         SELECT digest FROM transpiled
         WHERE kernel_digest IN (SELECT digest FROM blobs) AND kernel_digest NOT IN (SELECT digest FROM doomed_blobs))`,
    );
    const resultsDeleted = sql.count(`SELECT count(*) AS n FROM action_results WHERE id NOT IN (SELECT id FROM keep_results)`);
    const blobs = sql.all<{ digest: Digest; size: number }>(`SELECT digest, size FROM doomed_blobs ORDER BY digest`);
    if (!opts.dryRun) {
      sql.run(`DELETE FROM action_results WHERE id NOT IN (SELECT id FROM keep_results)`);
      sql.run(
        `DELETE FROM transpiled WHERE digest IN (SELECT digest FROM doomed_blobs)
           OR kernel_digest IN (SELECT digest FROM doomed_blobs) OR kernel_digest NOT IN (SELECT digest FROM blobs)`,
      );
      sql.run(`DELETE FROM blobs WHERE digest IN (SELECT digest FROM doomed_blobs)`);
      sql.run(`DELETE FROM sha256_digests WHERE digest IN (SELECT digest FROM doomed_blobs)`);
    }
    return { resultsDeleted, blobs };
  });
  // Rows first (committed durably), then files, both under the exclusive lock: a crash in
  // between leaves orphans (fsck adopts or drops them), never rows naming missing files.
  let bytesFreed = 0;
  for (const b of doomed.blobs) {
    if (!opts.dryRun) await fsp.rm(store.blobPath(b.digest), { force: true });
    bytesFreed += b.size;
  }
  const blobsKept = sql.count(`SELECT count(*) AS n FROM blobs`) - (opts.dryRun ? doomed.blobs.length : 0);
  const staleLocks = opts.dryRun ? 0 : (await new ActionLocks(store.dir).sweep()).length;
  const staleSandboxes = opts.dryRun ? 0 : sweepDeadSandboxes();
  return { resultsDeleted: doomed.resultsDeleted, blobsDeleted: doomed.blobs.length, bytesFreed, blobsKept, staleLocks, staleSandboxes };
}
