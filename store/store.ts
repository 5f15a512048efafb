// The content-addressed store: blobs on disk (cas.ts) + the SQLite index (index-db.ts).
// Every method keeps the invariant that no row names a blob that is not whole on disk.
import type Database from "better-sqlite3";
import { constants as fsc, mkdirSync, promises as fsp } from "node:fs";
import { join, resolve } from "node:path";
import { hashFile, hashBytes, type ActionKey, type Digest } from "../src/digest.ts";
import { WmbError } from "../src/errors.ts";
import { Cas } from "./cas.ts";
import { openIndex } from "./index-db.ts";

export interface StoredOutput {
  digest: Digest;
  executable: boolean;
}
/** Output path (relative to the action's sandbox) -> blob. */
export type OutputMap = Record<string, StoredOutput>;

export interface ActionResult {
  id: number;
  outputsDigest: Digest;
  outputs: OutputMap;
}

export type BlobHealth = "ok" | "missing" | "corrupt";

export function outputsDigestOf(outputs: OutputMap): Digest {
  const entries = Object.keys(outputs)
    .sort()
    .map((p) => [p, outputs[p]!.digest, outputs[p]!.executable ? 1 : 0]);
  return hashBytes(JSON.stringify(entries));
}

/** $WMB_STORE, else <workspace>/.wmb (the workspace is found only when needed). */
export function defaultStoreDir(workspace: () => string): string {
  return process.env.WMB_STORE ? resolve(process.env.WMB_STORE) : join(workspace(), ".wmb");
}

export class Store {
  readonly dir: string;
  readonly cas: Cas;
  readonly db: Database.Database;

  private constructor(dir: string, cas: Cas, db: Database.Database) {
    this.dir = dir;
    this.cas = cas;
    this.db = db;
  }

  static async open(dir: string): Promise<Store> {
    const abs = resolve(dir);
    try {
      mkdirSync(abs, { recursive: true });
    } catch (e) {
      throw new WmbError("STORE", `Cannot create the store directory ${abs}: ${(e as Error).message}.`, { subject: abs });
    }
    const cas = new Cas(abs);
    await cas.init();
    return new Store(abs, cas, openIndex(join(abs, "index.sqlite")));
  }

  close(): void {
    this.flushBuildActions();
    if (this.db.open) this.db.close();
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** Prepared once per store handle: a no-op build runs these thousands of times. */
  private sql(text: string): Database.Statement {
    let st = this.statements.get(text);
    if (!st) {
      st = this.db.prepare(text);
      this.statements.set(text, st);
    }
    return st;
  }

  // ---- blobs ---------------------------------------------------------------------------

  private recordBlob(b: { digest: Digest; size: number; statSig: string }): void {
    this.sql(
      `INSERT INTO blobs (digest, size, stat_sig, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (digest) DO UPDATE SET stat_sig = excluded.stat_sig`,
    ).run(b.digest, b.size, b.statSig, Date.now());
  }

  async putFile(path: string): Promise<{ digest: Digest; size: number }> {
    const b = await this.cas.putFile(path);
    this.recordBlob(b);
    return b;
  }

  async putBytes(data: Uint8Array): Promise<{ digest: Digest; size: number }> {
    const b = await this.cas.putBytes(data);
    this.recordBlob(b);
    return b;
  }

  blobPath(digest: Digest): string {
    return this.cas.path(digest);
  }

  /** Cheap when the blob's stat is unchanged since it was verified; re-hashes otherwise.
   * A corrupt blob is removed with every result that names it, so it is never served. */
  async checkBlob(digest: Digest): Promise<BlobHealth> {
    const row = this.sql(`SELECT stat_sig FROM blobs WHERE digest = ?`).get(digest) as { stat_sig: string } | undefined;
    const sig = this.cas.statSig(digest);
    if (!row || sig === undefined) {
      if (row) this.forgetBlob(digest);
      return "missing";
    }
    if (sig === row.stat_sig) return "ok";
    const actual = await hashFile(this.cas.path(digest)).catch(() => undefined);
    if (actual?.digest === digest) {
      this.sql(`UPDATE blobs SET stat_sig = ? WHERE digest = ?`).run(sig, digest);
      return "ok";
    }
    await this.cas.remove(digest);
    this.forgetBlob(digest);
    return "corrupt";
  }

  /** Drop a blob's row and every action result that names it (the actions will rerun). */
  forgetBlob(digest: Digest): void {
    this.db.transaction(() => {
      this.sql(`DELETE FROM action_results WHERE id IN (SELECT result_id FROM action_outputs WHERE digest = ?)`).run(digest);
      this.sql(`DELETE FROM gc_roots WHERE digest = ?`).run(digest);
      this.sql(`DELETE FROM machines WHERE spec_digest = ?`).run(digest);
      this.sql(`DELETE FROM blobs WHERE digest = ?`).run(digest);
    })();
  }

  /** Copy a blob out of the store (never a link: the store's copy must stay untouched). */
  async materialize(digest: Digest, dest: string, executable: boolean): Promise<void> {
    await fsp.rm(dest, { force: true });
    await fsp.copyFile(this.cas.path(digest), dest, fsc.COPYFILE_FICLONE);
    await fsp.chmod(dest, executable ? 0o555 : 0o444);
  }

  readBlob(digest: Digest): Promise<Buffer> {
    return fsp.readFile(this.cas.path(digest));
  }

  // ---- action results ------------------------------------------------------------------

  /** The first result recorded for a key: a later, different one (a non-deterministic
   * action run again) is kept for `query nondeterministic` but never replaces it. */
  lookupResult(key: ActionKey): ActionResult | undefined {
    const r = this.sql(`SELECT id, outputs_digest FROM action_results WHERE action_key = ? ORDER BY id ASC LIMIT 1`).get(key) as { id: number; outputs_digest: string } | undefined;
    if (!r) return undefined;
    return { id: r.id, outputsDigest: r.outputs_digest as Digest, outputs: this.outputsOf(r.id) };
  }

  /** The first result for a key whose every output blob is whole. A corrupt or missing blob
   * drops the results naming it (see checkBlob), so the caller reruns the action. */
  async wholeResult(key: ActionKey): Promise<ActionResult | undefined> {
    for (;;) {
      const r = this.lookupResult(key);
      if (!r) return undefined;
      let whole = true;
      for (const o of Object.values(r.outputs)) {
        if ((await this.checkBlob(o.digest)) !== "ok") whole = false;
      }
      if (whole) return r;
    }
  }

  outputsOf(resultId: number): OutputMap {
    const rows = this.sql(`SELECT path, digest, executable FROM action_outputs WHERE result_id = ? ORDER BY path`).all(resultId) as { path: string; digest: string; executable: number }[];
    const out: OutputMap = {};
    for (const row of rows) out[row.path] = { digest: row.digest as Digest, executable: row.executable === 1 };
    return out;
  }

  /** Record a result; its blobs must already be stored. Returns the digests of earlier,
   * different results for the same key (non-empty means the action is not deterministic). */
  recordResult(r: {
    key: ActionKey;
    label: string;
    rule: string;
    keyInputs: string;
    outputs: OutputMap;
    durationMs: number;
  }): { id: number; outputsDigest: Digest; divergentFrom: Digest[] } {
    const outputsDigest = outputsDigestOf(r.outputs);
    return this.db.transaction(() => {
      const earlier = this.sql(`SELECT DISTINCT outputs_digest FROM action_results WHERE action_key = ? AND outputs_digest != ?`).all(r.key, outputsDigest) as { outputs_digest: string }[];
      const now = Date.now();
      this.sql(
        `INSERT INTO action_results (action_key, outputs_digest, label, rule, key_inputs, created_at, duration_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (action_key, outputs_digest) DO NOTHING`,
      ).run(r.key, outputsDigest, r.label, r.rule, r.keyInputs, now, Math.round(r.durationMs));
      const { id } = this.sql(`SELECT id FROM action_results WHERE action_key = ? AND outputs_digest = ?`).get(r.key, outputsDigest) as { id: number };
      const ins = this.sql(`INSERT OR REPLACE INTO action_outputs (result_id, path, digest, executable) VALUES (?, ?, ?, ?)`);
      for (const [path, o] of Object.entries(r.outputs)) ins.run(id, path, o.digest, o.executable ? 1 : 0);
      return { id, outputsDigest, divergentFrom: earlier.map((e) => e.outputs_digest as Digest) };
    }).immediate();
  }

  // ---- builds (history) ----------------------------------------------------------------

  beginBuild(b: { command: string; targets: string[]; workspace: string; toolchain?: string }): number {
    const info = this.sql(`INSERT INTO builds (started_at, command, targets, status, workspace, toolchain) VALUES (?, ?, ?, 'running', ?, ?)`).run(Date.now(), b.command, JSON.stringify(b.targets), b.workspace, b.toolchain ?? null);
    return Number(info.lastInsertRowid);
  }

  private pendingBuildActions: unknown[][] = [];

  /** Buffered and written in batches (one transaction each): a build of thousands of cached
   * actions would otherwise commit once per action. A kill -9 loses at most the last batch of
   * history rows, never a result. */
  recordBuildAction(a: {
    buildId: number;
    label: string;
    key: ActionKey;
    resultId?: number;
    outputs?: OutputMap;
    status: "cached" | "executed" | "failed";
    durationMs: number;
  }): void {
    const outputs = a.outputs
      ? JSON.stringify(Object.fromEntries(Object.entries(a.outputs).map(([p, o]) => [p, o.digest])))
      : null;
    this.pendingBuildActions.push([a.buildId, a.label, a.key, a.resultId ?? null, outputs, a.status, Math.round(a.durationMs)]);
    if (this.pendingBuildActions.length >= 500) this.flushBuildActions();
  }

  flushBuildActions(): void {
    if (this.pendingBuildActions.length === 0 || !this.db.open) return;
    const rows = this.pendingBuildActions;
    this.pendingBuildActions = [];
    const ins = this.sql(
      `INSERT OR REPLACE INTO build_actions (build_id, label, action_key, result_id, outputs, status, duration_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.db.transaction(() => {
      for (const r of rows) ins.run(...r);
    })();
  }

  finishBuild(id: number, status: "ok" | "failed" | "interrupted"): void {
    this.flushBuildActions();
    this.sql(`UPDATE builds SET finished_at = ?, status = ? WHERE id = ?`).run(Date.now(), status, id);
  }

  // ---- stat cache ----------------------------------------------------------------------

  cachedDigest(path: string, statSig: string): Digest | undefined {
    const r = this.sql(`SELECT stat_sig, digest FROM stat_cache WHERE path = ?`).get(path) as
      | { stat_sig: string; digest: string }
      | undefined;
    return r && r.stat_sig === statSig ? (r.digest as Digest) : undefined;
  }

  rememberDigest(path: string, statSig: string, digest: Digest): void {
    this.sql(`INSERT OR REPLACE INTO stat_cache (path, stat_sig, digest) VALUES (?, ?, ?)`).run(path, statSig, digest);
  }

  // ---- roots ---------------------------------------------------------------------------

  addRoot(name: string, digests: Digest[]): void {
    const ins = this.sql(`INSERT OR IGNORE INTO gc_roots (name, digest, created_at) VALUES (?, ?, ?)`);
    this.db.transaction(() => {
      for (const d of digests) ins.run(name, d, Date.now());
    })();
  }
}
