// The content-addressed store: blobs on disk (cas.ts) + the SQLite index (index-db.ts, schema
// in schema.sql). Its SQL stays in store/: commands use this API, never the database.
// Every method keeps the invariant that no row names a blob that is not whole on disk.
// See docs/ARCHITECTURE.md for the schema's invariants.
import { chmodSync, readFileSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { hashFile, type ActionKey, type Digest } from "../src/digest.ts";
import { copyToNewFile } from "../src/copy-to-new-file.ts";
import { unlinkIfThere } from "../src/unlink-if-there.ts";
import { Cas } from "./cas.ts";
import { openIndex } from "./index-db.ts";
import { BuildHistory } from "./history.ts";
import { Sql } from "./sql.ts";
import { ensureStoreDir } from "./store-dir.ts";
import { fsck, type FsckReport } from "./fsck.ts";
import { gc, type GcOptions, type GcReport } from "./gc.ts";
import type { SandboxUse } from "../src/sandbox.ts";
import { StoreLock, type LockWait } from "./store-lock.ts";
import { WmbError } from "../src/errors.ts";

/** Path prefix of the per-host files kept beside a transpiled component (transpiledExtra). */
const TRANSPILED_EXTRA = "host/";
const INSERT_TRANSPILED = `INSERT OR REPLACE INTO transpiled (kernel_digest, transpiler, path, digest, created_at) VALUES (?, ?, ?, ?, ?)`;

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
  /** How it was made (see migration-4-sandboxed.sql); undefined when recorded before that. */
  sandbox?: SandboxUse;
}

export type BlobHealth = "ok" | "missing" | "corrupt";

/** A key whose signature of a machine verified (store version 8). */
export interface MachineSigner {
  keyName: string;
  /** "NAME:BASE64". */
  publicKey: string;
  /** The OCI index ("sha256:<hex>") the signature is over. */
  index: string;
  /** "pull": checked against the trusted keys at a pull; "push": signed with the pusher's key. */
  how: "pull" | "push";
  verifiedAt: number;
}

/** Who recorded a result: a build (served) or a verify round (kept as evidence, never served). */
export type ProducedBy = "build" | "verify";

/** The order in which a key's results are served: builds' before verify's, newest first. */
const servedFirst = (table = "") => `${table}produced_by = 'build' DESC, ${table}created_at DESC, ${table}id DESC`;
const SERVED_FIRST = `ORDER BY ${servedFirst()}`;

/** A result with one of its outputs (path null when it has none) and that blob's verified stat. */
interface ResultRow {
  id: number;
  outputs_digest: Digest;
  sandbox: SandboxUse | null;
  path: string | null;
  digest: Digest | null;
  executable: number | null;
  stat_sig: string | null;
}
const RESULT_COLUMNS = `r.id, r.outputs_digest, r.sandbox, o.path, o.digest, o.executable, b.stat_sig`;
const RESULT_TABLES = `action_results r
  LEFT JOIN action_outputs o ON o.result_id = r.id
  LEFT JOIN blobs b ON b.digest = o.digest`;

export { outputsDigestOf } from "./outputs-digest.ts";
import { outputsDigestOf } from "./outputs-digest.ts";


export interface StoreStats {
  store: string;
  blobs: number;
  blob_bytes: number;
  action_results: number;
  distinct_keys: number;
  builds: number;
  /** Rows of build history: grows with what builds changed, not with their number. */
  history_rows: number;
  machines: number;
  transpiled_components: number;
  stat_cache_entries: number;
  gc_roots: number;
  index_bytes: number;
}

export interface NondeterministicAction {
  label: string;
  key: ActionKey;
  /** Output-set digests of every result recorded for the key, newest first. */
  results: Digest[];
}

/** How long a build's writes wait to be committed together: long enough to gather a few dozen
 * quick actions, short enough that another build waiting on one of them hardly notices. */
const GATHER_MS = 20;

export class Store {
  readonly dir: string;
  readonly cas: Cas;
  /** Every build and what each action did in it. */
  readonly history: BuildHistory;
  private readonly sql: Sql;
  /** Held shared while this process admits or serves blobs, exclusive while gc sweeps (store-lock.ts). */
  private readonly lock: StoreLock;
  /** prefetchResults' rows by key, each key's in serving order. */
  private prefetched?: Map<ActionKey, ResultRow[]>;
  /** prefetchStatCache's entries under `prefix`. */
  private statCache?: { prefix: string; entries: Map<string, { stat_sig: string; digest: Digest }> };

  private constructor(dir: string, cas: Cas, sql: Sql) {
    this.dir = dir;
    this.cas = cas;
    this.sql = sql;
    this.history = new BuildHistory(sql);
    this.lock = new StoreLock(dir);
  }

  static async open(dir: string): Promise<Store> {
    const abs = resolve(dir);
    ensureStoreDir(abs);
    const cas = new Cas(abs);
    await cas.init();
    return new Store(abs, cas, new Sql(openIndex(join(abs, "index.sqlite"))));
  }

  close(): void {
    this.history.flush();
    this.sql.close();
    this.lock.close();
  }

  /** A build's writes, gathered into a commit every few milliseconds (see Sql.gatherWrites)
   * until `stop` is called. */
  gatherWrites(): { stop(): void } {
    this.sql.synchronous("NORMAL");
    this.sql.gatherWrites(GATHER_MS, this.cas.deferDurability());
    return {
      stop: () => {
        this.sql.stopGathering();
        // What follows (the build's end, its history) commits with the WAL synced, and so makes
        // every earlier commit durable: a power loss after a build has ended loses none of it.
        this.sql.synchronous("FULL");
      },
    };
  }

  /** Hold the store lock shared, as every build does from its start to its end: gc's sweep
   * waits for it (and a build starting during a sweep waits, told through `onWait`). Admitting
   * a blob or serving a result takes it too, so no caller can forget it. */
  async lease(onWait?: LockWait, signal?: AbortSignal): Promise<void> {
    await this.lock.shared(onWait, signal);
  }

  /** Commit the writes gathered so far now (gathering goes on). */
  commit(): void {
    this.sql.commitGathered();
  }

  /** Run `fn` once this process's writes so far are visible to other processes. */
  afterCommit(fn: () => void): void {
    this.sql.afterCommit(fn);
  }

  // ---- blobs ---------------------------------------------------------------------------

  /** The stat signature the blob had when it was last verified, if it has a row. */
  private verifiedSig(digest: Digest): string | undefined {
    return this.sql.get<{ stat_sig: string }>(`SELECT stat_sig FROM blobs WHERE digest = ?`, digest)?.stat_sig;
  }

  /** The stat signatures blobs had when last verified, of those with a row, in one query. */
  verifiedSigs(digests: Digest[]): Map<Digest, string> {
    const rows = this.sql.all<{ digest: Digest; stat_sig: string }>(`SELECT digest, stat_sig FROM blobs WHERE digest IN (SELECT value FROM json_each(?))`, JSON.stringify(digests));
    return new Map(rows.map((r) => [r.digest, r.stat_sig]));
  }

  private recordBlob(b: { digest: Digest; size: number; statSig: string }): void {
    this.sql.run(
      `INSERT INTO blobs (digest, size, stat_sig, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (digest) DO UPDATE SET stat_sig = excluded.stat_sig, created_at = excluded.created_at`,
      b.digest,
      b.size,
      b.statSig,
      Date.now(),
    );
  }

  /** Admit a file's bytes. An existing blob of the same name is kept only when its stat is the
   * one recorded when it was verified; anything else is replaced by these (verified) bytes. */
  async putFile(path: string): Promise<{ digest: Digest; size: number }> {
    return this.admit(() => this.cas.putFile(path, (d) => this.verifiedSig(d)));
  }

  /** Admit a file that nothing else will use again (it is moved, not copied). */
  async moveFile(path: string): Promise<{ digest: Digest; size: number }> {
    return this.admit(() => this.cas.moveFile(path, (d) => this.verifiedSig(d)));
  }

  async putBytes(data: Uint8Array): Promise<{ digest: Digest; size: number }> {
    return this.admit(() => this.cas.putBytes(data, (d) => this.verifiedSig(d)));
  }

  /** Under the lease, so gc never sweeps a blob between its file and its row; a full disk is
   * one sentence naming the store. Re-admission refreshes the blob's age (gc's grace). */
  private async admit(put: () => Promise<{ digest: Digest; size: number; statSig: string }>): Promise<{ digest: Digest; size: number }> {
    if (!this.lock.mode) await this.lease();
    let b;
    try {
      b = await put();
    } catch (e) {
      throw outOfSpace(e, this.dir) ?? e;
    }
    this.recordBlob(b);
    return b;
  }

  /** Where no-op memos live (src/noop-memo.ts): shortcuts only, emptied by gc. */
  get noopMemoDir(): string {
    return join(this.dir, "noop");
  }

  blobPath(digest: Digest): string {
    return this.cas.path(digest);
  }

  /** Cheap when the blob's stat is unchanged since it was verified; re-hashes otherwise.
   * A corrupt blob is removed with every result that names it, so it is never served. */
  async checkBlob(digest: Digest): Promise<BlobHealth> {
    const verified = this.verifiedSig(digest);
    const sig = this.cas.statSig(digest);
    if (verified === undefined || sig === undefined) {
      if (verified !== undefined) this.forgetBlob(digest);
      return "missing";
    }
    if (sig === verified) return "ok";
    const actual = await hashFile(this.cas.path(digest)).catch(() => undefined);
    if (actual?.digest === digest) {
      this.sql.run(`UPDATE blobs SET stat_sig = ? WHERE digest = ?`, sig, digest);
      return "ok";
    }
    await this.cas.remove(digest);
    this.forgetBlob(digest);
    return "corrupt";
  }

  /** Drop a blob's row and every row that names it (the actions that made it will rerun). */
  forgetBlob(digest: Digest): void {
    this.sql.write(() => {
      this.sql.run(`DELETE FROM action_results WHERE id IN (SELECT result_id FROM action_outputs WHERE digest = ?)`, digest);
      this.sql.run(`DELETE FROM gc_roots WHERE digest = ?`, digest);
      this.sql.run(`DELETE FROM machines WHERE spec_digest = ?`, digest);
      this.sql.run(`DELETE FROM transpiled WHERE digest = ? OR kernel_digest = ?`, digest, digest);
      this.sql.run(`DELETE FROM blobs WHERE digest = ?`, digest);
    });
  }

  /** Copy a blob out of the store (never a link: the store's copy must stay untouched). */
  async materialize(digest: Digest, dest: string, executable: boolean): Promise<void> {
    // Synchronous: microseconds each, where an asynchronous call is a thread-pool round trip.
    unlinkIfThere(dest);
    copyToNewFile(this.cas.path(digest), dest);
    chmodSync(dest, executable ? 0o555 : 0o444);
  }

  /** Read at once (specs, kernels: a few MB at most): a read through the thread pool costs a
   * round trip per 512 KiB, and `wmb run` waits for its kernel's (#12). */
  async readBlob(digest: Digest): Promise<Buffer> {
    return readFileSync(this.cas.path(digest));
  }

  // ---- action results ------------------------------------------------------------------

  /** A number that changes whenever what a build would be served can change (results, their
   * outputs, blobs, the history of actions: migration-9-generation.sql's triggers). */
  generation(): number {
    return this.sql.get<{ n: number }>(`SELECT n FROM generation`)!.n;
  }

  /** The result served for a key: the newest a build produced (a --no-cache rerun that made
   * other bytes replaces the earlier one; history keeps both). Verify's results are not served. */
  lookupResult(key: ActionKey): ActionResult | undefined {
    const r = this.sql.get<{ id: number; outputs_digest: Digest; sandbox: SandboxUse | null }>(
      `SELECT id, outputs_digest, sandbox FROM action_results WHERE action_key = ? ${SERVED_FIRST} LIMIT 1`,
      key,
    );
    return r && { id: r.id, outputsDigest: r.outputs_digest, outputs: this.outputsOf(r.id), sandbox: r.sandbox ?? undefined };
  }

  /** The newest result for a key whose every output blob is whole. A corrupt or missing blob
   * drops the results naming it (see checkBlob); each result is tried once, so this ends.
   * One query brings every result with its outputs and their verified stat signatures: on a
   * no-op each output then costs one stat, not three queries. A result `takes` refuses (by how
   * it was made) is passed over for the next. */
  async wholeResult(key: ActionKey, takes?: (sandbox: SandboxUse | undefined) => boolean | Promise<boolean>): Promise<ActionResult | undefined> {
    if (!this.lock.mode) await this.lease();
    // Taken once from the prefetched rows: after that (a rerun, a dropped result) ask the index.
    const prefetched = this.prefetched?.get(key);
    if (prefetched) this.prefetched!.delete(key);
    const rows = prefetched ?? this.sql.all<ResultRow>(`SELECT ${RESULT_COLUMNS} FROM ${RESULT_TABLES} WHERE r.action_key = ? ORDER BY ${servedFirst("r.")}, o.path`, key);
    for (let i = 0; i < rows.length; ) {
      const first = rows[i]!;
      const taken = takes?.(first.sandbox ?? undefined) ?? true;
      if (taken !== true && !(await taken)) {
        while (i < rows.length && rows[i]!.id === first.id) i++;
        continue;
      }
      const outputs: OutputMap = {};
      let whole = true;
      for (; i < rows.length && rows[i]!.id === first.id; i++) {
        const o = rows[i]!;
        if (o.path === null || o.digest === null) continue;
        outputs[o.path] = { digest: o.digest, executable: o.executable === 1 };
        // Unchanged since verified: whole. Otherwise checkBlob re-hashes (and drops a corrupt one).
        const fresh = o.stat_sig !== null && this.cas.statSig(o.digest) === o.stat_sig;
        if (!fresh && (await this.checkBlob(o.digest)) !== "ok") whole = false;
      }
      if (whole) return { id: first.id, outputsDigest: first.outputs_digest, outputs, sandbox: first.sandbox ?? undefined };
    }
    return undefined;
  }

  /** Every recorded result of these labels, read in one query and then served by wholeResult
   * from memory: a no-op build of thousands of actions asks the index once, not once per action
   * (#16). A key not among them is still looked up; rows another process records meanwhile are
   * seen by the next build (what is served is still checked blob by blob). */
  prefetchResults(labels: string[]): void {
    type Row = ResultRow & { action_key: ActionKey; served: number; created_at: number };
    const rows = this.sql.all<Row>(
      `SELECT r.action_key, r.produced_by = 'build' AS served, r.created_at, ${RESULT_COLUMNS} FROM ${RESULT_TABLES}
       WHERE r.label IN (SELECT value FROM json_each(?))`,
      JSON.stringify(labels),
    );
    const byKey = new Map<ActionKey, Row[]>();
    for (const r of rows) {
      const list = byKey.get(r.action_key);
      if (list) list.push(r);
      else byKey.set(r.action_key, [r]);
    }
    // The order wholeResult's own query has (servedFirst, then path), sorted here where it
    // matters: most keys have one result with one output.
    for (const list of byKey.values()) {
      if (list.length > 1) list.sort((a, b) => b.served - a.served || b.created_at - a.created_at || b.id - a.id || ((a.path ?? "") < (b.path ?? "") ? -1 : 1));
    }
    this.prefetched = byKey;
  }

  outputsOf(resultId: number): OutputMap {
    const rows = this.sql.all<{ path: string; digest: Digest; executable: number }>(
      `SELECT path, digest, executable FROM action_outputs WHERE result_id = ? ORDER BY path`,
      resultId,
    );
    const out: OutputMap = {};
    for (const row of rows) out[row.path] = { digest: row.digest, executable: row.executable === 1 };
    return out;
  }

  /** Record a result; its blobs must already be stored. A build's result becomes the one served
   * for its key (also when it repeats an earlier one); a verify round's is kept as evidence only.
   * Returns the digests of earlier, different results for the same key (non-empty means the
   * action is not deterministic). */
  recordResult(r: {
    key: ActionKey;
    label: string;
    rule: string;
    keyInputs: string;
    outputs: OutputMap;
    durationMs: number;
    producedBy?: ProducedBy;
    /** How it was made; a result once made under bwrap stays marked so when repeated unsandboxed. */
    sandbox?: SandboxUse;
  }): { id: number; outputsDigest: Digest; divergentFrom: Digest[] } {
    const producedBy = r.producedBy ?? "build";
    const outputsDigest = outputsDigestOf(r.outputs);
    return this.sql.write(() => {
      const earlier = this.sql.all<{ outputs_digest: Digest; created_at: number }>(
        `SELECT outputs_digest, created_at FROM action_results WHERE action_key = ?`,
        r.key,
      );
      // Strictly after every earlier result, even within one millisecond: the order is what is served.
      const producedAt = Math.max(Date.now(), ...earlier.map((e) => e.created_at + 1));
      this.sql.run(
        `INSERT INTO action_results (action_key, outputs_digest, label, rule, key_inputs, created_at, duration_ms, produced_by, sandbox)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (action_key, outputs_digest) DO ${
           producedBy === "build"
             ? `UPDATE SET created_at = excluded.created_at, duration_ms = excluded.duration_ms, produced_by = 'build',
                sandbox = CASE WHEN action_results.sandbox = 'bwrap' THEN 'bwrap' ELSE coalesce(excluded.sandbox, action_results.sandbox) END`
             : "NOTHING"
         }`,
        r.key,
        outputsDigest,
        r.label,
        r.rule,
        r.keyInputs,
        producedAt,
        Math.round(r.durationMs),
        producedBy,
        r.sandbox ?? null,
      );
      const { id } = this.sql.get<{ id: number }>(`SELECT id FROM action_results WHERE action_key = ? AND outputs_digest = ?`, r.key, outputsDigest)!;
      const ins = this.sql.statement(`INSERT OR REPLACE INTO action_outputs (result_id, path, digest, executable) VALUES (?, ?, ?, ?)`);
      for (const [path, o] of Object.entries(r.outputs)) ins.run(id, path, o.digest, o.executable ? 1 : 0);
      const divergentFrom = [...new Set(earlier.map((e) => e.outputs_digest).filter((d) => d !== outputsDigest))];
      return { id, outputsDigest, divergentFrom };
    });
  }

  /** The key inputs recorded with a key's results (identical for all of them), for `wmb why`. */
  keyInputsOf(key: ActionKey): string | undefined {
    return (
      this.sql.get<{ key_inputs: string }>(`SELECT key_inputs FROM action_results WHERE action_key = ? LIMIT 1`, key)?.key_inputs ??
      this.sql.get<{ key_inputs: string }>(`SELECT key_inputs FROM remote_results WHERE action_key = ? LIMIT 1`, key)?.key_inputs
    );
  }

  // ---- remote cache hits -----------------------------------------------------------------

  /** A result a remote cache (`source`: "<registry>/<repository>") was found to hold for `key`. */
  remoteResult(key: ActionKey, source: string): string | undefined {
    return this.sql.get<{ result: string }>(`SELECT result FROM remote_results WHERE action_key = ? AND source = ?`, key, source)?.result;
  }

  recordRemoteResult(r: { key: ActionKey; source: string; label: string; rule: string; keyInputs: string; result: string }): void {
    this.sql.write(() =>
      this.sql.run(
        `INSERT OR REPLACE INTO remote_results (action_key, source, label, rule, key_inputs, result, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
        r.key,
        r.source,
        r.label,
        r.rule,
        r.keyInputs,
        r.result,
        Date.now(),
      ),
    );
  }

  forgetRemoteResult(key: ActionKey, source: string): void {
    this.sql.write(() => this.sql.run(`DELETE FROM remote_results WHERE action_key = ? AND source = ?`, key, source));
  }

  /** Keys with more than one recorded result. */
  nondeterministic(): NondeterministicAction[] {
    const rows = this.sql.all<{ label: string; action_key: ActionKey; digests: string }>(
      `SELECT label, action_key, group_concat(outputs_digest) AS digests
       FROM (SELECT * FROM action_results ${SERVED_FIRST})
       GROUP BY action_key HAVING count(*) > 1 ORDER BY label`,
    );
    return rows.map((r) => ({ label: r.label, key: r.action_key, results: r.digests.split(",") as Digest[] }));
  }

  /** Up to `limit` recorded action keys (the benchmark's lookup sample). */
  actionKeys(limit: number): ActionKey[] {
    return this.sql.all<{ action_key: ActionKey }>(`SELECT action_key FROM action_results LIMIT ?`, limit).map((r) => r.action_key);
  }

  // ---- stat cache ----------------------------------------------------------------------

  cachedDigest(path: string, statSig: string): Digest | undefined {
    const r = this.statCache && path.startsWith(this.statCache.prefix)
      ? this.statCache.entries.get(path)
      : this.sql.get<{ stat_sig: string; digest: Digest }>(`SELECT stat_sig, digest FROM stat_cache WHERE path = ?`, path);
    return r && r.stat_sig === statSig ? r.digest : undefined;
  }

  rememberDigest(path: string, statSig: string, digest: Digest): void {
    this.sql.run(`INSERT OR REPLACE INTO stat_cache (path, stat_sig, digest) VALUES (?, ?, ?)`, path, statSig, digest);
    if (this.statCache && path.startsWith(this.statCache.prefix)) this.statCache.entries.set(path, { stat_sig: statSig, digest });
  }

  /** Read the stat cache's entries under a directory (`prefix` ends with a separator) in one
   * query, for a build that checks thousands of files there (wmb-out/). */
  prefetchStatCache(prefix: string): void {
    // Paths under the prefix sort between it and the prefix with its last character incremented.
    const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
    const rows = this.sql.all<{ path: string; stat_sig: string; digest: Digest }>(`SELECT path, stat_sig, digest FROM stat_cache WHERE path >= ? AND path < ?`, prefix, end);
    this.statCache = { prefix, entries: new Map(rows.map((r) => [r.path, { stat_sig: r.stat_sig, digest: r.digest }])) };
  }

  // ---- roots and machines --------------------------------------------------------------

  addRoot(name: string, digests: Digest[]): void {
    const ins = this.sql.statement(`INSERT OR IGNORE INTO gc_roots (name, digest, created_at) VALUES (?, ?, ?)`);
    this.sql.write(() => {
      for (const d of digests) ins.run(name, d, Date.now());
    });
  }

  /** Remember a sealed machine by identity and root its blobs (spec, kernel, rootfs) for gc. */
  registerMachine(m: { identity: string; specDigest: Digest; kernelDigest: Digest; rootfsDigest: Digest; label?: string }): void {
    this.sql.write(() => {
      this.sql.run(
        // A pull of a machine built here keeps the label that built it.
        `INSERT INTO machines (identity, spec_digest, label, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (identity) DO UPDATE SET spec_digest = excluded.spec_digest,
           label = coalesce(excluded.label, machines.label), created_at = excluded.created_at`,
        m.identity,
        m.specDigest,
        m.label ?? null,
        Date.now(),
      );
      this.addRoot(`machine:${m.identity}`, [m.specDigest, m.kernelDigest, m.rootfsDigest]);
    });
  }

  // ---- OCI digests -----------------------------------------------------------------------

  /** The sha256 ("sha256:<hex>") recorded for a blob, when it was pushed or pulled before. */
  sha256Of(digest: Digest): string | undefined {
    return this.sql.get<{ sha256: string }>(`SELECT sha256 FROM sha256_digests WHERE digest = ?`, digest)?.sha256;
  }

  recordSha256(digest: Digest, sha256: string): void {
    this.sql.write(() => this.sql.run(`INSERT OR REPLACE INTO sha256_digests (digest, sha256) VALUES (?, ?)`, digest, sha256));
  }

  /** The identity of the machine an OCI index (by its sha256) was pulled or pushed as. */
  ociIndexIdentity(sha256: string): string | undefined {
    return this.sql.get<{ identity: string }>(`SELECT identity FROM oci_indexes WHERE sha256 = ?`, sha256)?.identity;
  }

  recordOciIndex(sha256: string, identity: string): void {
    this.sql.write(() => this.sql.run(`INSERT OR REPLACE INTO oci_indexes (sha256, identity) VALUES (?, ?)`, sha256, identity));
  }

  /** Every machine the store knows by identity, the most recently registered first. */
  machines(): { identity: string; specDigest: Digest; label?: string; createdAt: number }[] {
    return this.sql
      .all<{ identity: string; spec_digest: Digest; label: string | null; created_at: number }>(`SELECT identity, spec_digest, label, created_at FROM machines ORDER BY created_at DESC, identity`)
      .map((r) => ({ identity: r.identity, specDigest: r.spec_digest, label: r.label ?? undefined, createdAt: r.created_at }));
  }

  /** Remember keys whose signature of a machine (this identity at this OCI index) verified:
   * at a pull against the trusted keys, or at a push with the pusher's own key. */
  recordMachineSigners(identity: string, index: string, how: MachineSigner["how"], keys: readonly { name: string; toString(): string }[]): void {
    if (keys.length === 0) return;
    const ins = this.sql.statement(
      `INSERT INTO machine_signers (identity, key_name, public_key, index_sha256, how, verified_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (identity, public_key, index_sha256, how) DO UPDATE SET verified_at = excluded.verified_at`,
    );
    const now = Date.now();
    this.sql.write(() => {
      for (const k of keys) ins.run(identity, k.name, k.toString(), index, how, now);
    });
  }

  /** The verified signers of a machine by identity, latest first. */
  machineSigners(identity: string): MachineSigner[] {
    return this.sql
      .all<{ key_name: string; public_key: string; index_sha256: string; how: MachineSigner["how"]; verified_at: number }>(
        `SELECT key_name, public_key, index_sha256, how, verified_at FROM machine_signers WHERE identity = ? ORDER BY verified_at DESC, key_name, how`,
        identity,
      )
      .map((r) => ({ keyName: r.key_name, publicKey: r.public_key, index: r.index_sha256, how: r.how, verifiedAt: r.verified_at }));
  }

  /** The blob holding the sealed spec of a machine known by identity. */
  machineSpecDigest(identity: string): Digest | undefined {
    return this.sql.get<{ spec_digest: Digest }>(`SELECT spec_digest FROM machines WHERE identity = ?`, identity)?.spec_digest;
  }

  // ---- transpiled components -----------------------------------------------------------

  /** The files of a component transpiled before, when every one of them is whole (not the
   * per-host files kept beside them, see transpiledExtra). */
  async transpiled(kernelDigest: Digest, transpiler: string): Promise<OutputMap | undefined> {
    const rows = this.sql.all<{ path: string; digest: Digest }>(
      `SELECT path, digest FROM transpiled WHERE kernel_digest = ? AND transpiler = ? AND path NOT LIKE '${TRANSPILED_EXTRA}%' ORDER BY path`,
      kernelDigest,
      transpiler,
    );
    if (rows.length === 0) return undefined;
    const files: OutputMap = {};
    for (const r of rows) {
      if ((await this.checkBlob(r.digest)) !== "ok") return undefined; // checkBlob dropped the entry
      files[r.path] = { digest: r.digest, executable: false };
    }
    return files;
  }

  /** Record a transpiled component (its blobs already stored); kept as long as its kernel is. */
  recordTranspiled(kernelDigest: Digest, transpiler: string, files: OutputMap): void {
    const ins = this.sql.statement(INSERT_TRANSPILED);
    this.sql.write(() => {
      this.sql.run(`DELETE FROM transpiled WHERE kernel_digest = ? AND transpiler = ?`, kernelDigest, transpiler);
      for (const [path, f] of Object.entries(files)) ins.run(kernelDigest, transpiler, path, f.digest, Date.now());
    });
  }

  /** A file kept beside a transpiled component for one host only (`name`, e.g. a V8 code cache
   * for one Node), when it is whole. Not part of the component: never shipped or compared. */
  async transpiledExtra(kernelDigest: Digest, transpiler: string, name: string): Promise<Digest | undefined> {
    const row = this.sql.get<{ digest: Digest }>(
      `SELECT digest FROM transpiled WHERE kernel_digest = ? AND transpiler = ? AND path = ?`,
      kernelDigest,
      transpiler,
      TRANSPILED_EXTRA + name,
    );
    return row && (await this.checkBlob(row.digest)) === "ok" ? row.digest : undefined;
  }

  /** Keep (or replace) such a file; it goes with the transpiled component. */
  recordTranspiledExtra(kernelDigest: Digest, transpiler: string, name: string, digest: Digest): void {
    this.sql.run(INSERT_TRANSPILED, kernelDigest, transpiler, TRANSPILED_EXTRA + name, digest, Date.now());
  }

  // ---- maintenance ---------------------------------------------------------------------

  stats(): StoreStats {
    const n = (text: string) => this.sql.count(text);
    return {
      store: this.dir,
      blobs: n(`SELECT count(*) AS n FROM blobs`),
      blob_bytes: n(`SELECT sum(size) AS n FROM blobs`),
      action_results: n(`SELECT count(*) AS n FROM action_results`),
      distinct_keys: n(`SELECT count(DISTINCT action_key) AS n FROM action_results`),
      builds: n(`SELECT count(*) AS n FROM builds`),
      history_rows: n(`SELECT count(*) AS n FROM build_actions`),
      machines: n(`SELECT count(*) AS n FROM machines`),
      transpiled_components: n(`SELECT count(*) AS n FROM (SELECT DISTINCT kernel_digest, transpiler FROM transpiled)`),
      stat_cache_entries: n(`SELECT count(*) AS n FROM stat_cache`),
      gc_roots: n(`SELECT count(DISTINCT name) AS n FROM gc_roots`),
      index_bytes: statSync(join(this.dir, "index.sqlite")).size,
    };
  }

  /** Re-hash every blob and check every row (see fsck.ts). */
  async fsck(opts: { repair: boolean; onWait?: LockWait }): Promise<FsckReport> {
    // Repairs drop orphans and stale temp files, which a build in flight may be about to name.
    return opts.repair ? this.exclusively(opts.onWait, () => fsck(this, this.sql, opts)) : fsck(this, this.sql, opts);
  }

  /** Drop what neither the roots nor the last N builds reach (see gc.ts), with no build running. */
  async gc(opts: GcOptions & { onWait?: LockWait }): Promise<GcReport> {
    if (opts.dryRun) return gc(this, this.sql, opts);
    return this.exclusively(opts.onWait, async () => {
      const report = await gc(this, this.sql, opts);
      rmSync(this.noopMemoDir, { recursive: true, force: true });
      return report;
    });
  }

  /** `fn` with the store lock exclusive (no build runs) and its commits durable. */
  private async exclusively<T>(onWait: LockWait | undefined, fn: () => Promise<T>): Promise<T> {
    this.lock.exclusive(onWait);
    try {
      return await this.sql.durably(fn);
    } finally {
      this.lock.release();
    }
  }
}

/** ENOSPC (or a quota) while writing into the store, as one sentence that says what to do. */
function outOfSpace(e: unknown, dir: string): WmbError | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code !== "ENOSPC" && code !== "EDQUOT") return undefined;
  return new WmbError(
    "STORE",
    `The store ${dir} is out of disk space; free space on its disk (\`wmb store gc\` deletes what recent builds do not use) or move the store with --store or WMB_STORE.`,
    { subject: dir, cause: e },
  );
}
