// Build history: every `wmb build` and verify round, and what changed in it. This is what
// `wmb query history`, `why` and gc read. An action gets a row in a build only when it ran,
// failed, or was served a different key or result than its label's previous row: history
// costs O(what a build changed), so no-op builds do not grow the index.
import { hashBytes, type ActionKey, type Digest } from "../src/digest.ts";
import type { OutputMap } from "./store.ts";
import type { Sql } from "./sql.ts";
import type { SandboxUse } from "../src/sandbox.ts";

export type BuildStatus = "ok" | "failed" | "interrupted";
/** remote: served by a remote cache (its outputs fetched only where needed). */
export type BuildActionStatus = "cached" | "executed" | "failed" | "remote";

/** One set of outputs a target has had, newest first in `targetHistory`. */
export interface HistoryEntry {
  outputs: Record<string, Digest>;
  firstSeen: number;
  lastSeen: number;
  builds: number;
  executions: number;
  /** The most confined way a result with these outputs was made (bwrap > in-process > none);
   * undefined when every such result predates store version 4. */
  sandbox?: SandboxUse;
}

export type BuildCounts = Record<"executed" | "cached" | "remote" | "failed" | "skipped", number>;

/** One build as the history shows it. */
export interface BuildRecord {
  id: number;
  command: string;
  targets: string[];
  status: BuildStatus | "running";
  startedAt: number;
  finishedAt?: number;
  workspace: string;
  toolchain?: string;
  /** Undefined for builds recorded before store version 7 (or still running). */
  counts?: BuildCounts;
  criticalPath?: string[];
}

/** An action a build recorded, with its place on the build's timeline (when known). */
export interface RecordedAction {
  label: string;
  key: ActionKey;
  status: BuildActionStatus;
  durationMs: number;
  startMs?: number;
  lane?: number;
  error?: string;
  rule?: string;
  outputs?: Record<string, Digest>;
}

interface BuildRow {
  id: number;
  command: string;
  targets: string;
  labels: string | null;
  status: BuildRecord["status"];
  started_at: number;
  finished_at: number | null;
  workspace: string;
  toolchain: string | null;
  executed: number | null;
  cached: number | null;
  remote: number | null;
  failed: number | null;
  skipped: number | null;
  critical_path: string | null;
}
const BUILD_COLUMNS = `b.id, b.command, b.targets, ts.labels, b.status, b.started_at, b.finished_at, b.workspace, b.toolchain,
  b.executed, b.cached, b.remote, b.failed, b.skipped, b.critical_path`;

function buildRecord(r: BuildRow): BuildRecord {
  // Before version 3 builds.targets held the JSON list itself.
  const labels = r.labels ?? (r.targets.startsWith("[") ? r.targets : "[]");
  return {
    id: r.id,
    command: r.command,
    targets: JSON.parse(labels) as string[],
    status: r.status,
    startedAt: r.started_at,
    finishedAt: r.finished_at ?? undefined,
    workspace: r.workspace,
    toolchain: r.toolchain ?? undefined,
    counts: r.executed === null ? undefined : { executed: r.executed, cached: r.cached ?? 0, remote: r.remote ?? 0, failed: r.failed ?? 0, skipped: r.skipped ?? 0 },
    criticalPath: r.critical_path === null ? undefined : (JSON.parse(r.critical_path) as string[]),
  };
}

const SANDBOX_RANK: SandboxUse[] = ["none", "in-process", "bwrap"];

/** Rows are buffered and written in batches of this many (one transaction each). */
const BATCH = 500;

export class BuildHistory {
  private pending: unknown[][] = [];
  /** Each label's latest recorded key and result ("key result-id"), loaded on first use. */
  private latest?: Map<string, string>;

  constructor(private readonly sql: Sql) {}

  begin(b: { command: string; targets: string[]; workspace: string; toolchain?: string }): number {
    const labels = JSON.stringify(b.targets);
    const targets = hashBytes(labels);
    return this.sql.write(() => {
      this.sql.run(`INSERT OR IGNORE INTO target_sets (digest, labels) VALUES (?, ?)`, targets, labels);
      const info = this.sql.run(
        `INSERT INTO builds (started_at, command, targets, status, workspace, toolchain) VALUES (?, ?, ?, 'running', ?, ?)`,
        Date.now(),
        b.command,
        targets,
        b.workspace,
        b.toolchain ?? null,
      );
      return Number(info.lastInsertRowid);
    });
  }

  /** Buffered: a build of thousands of cached actions would otherwise commit once per action.
   * A kill -9 loses at most the last batch of history rows, never a result. */
  recordAction(a: {
    buildId: number;
    label: string;
    key: ActionKey;
    resultId?: number;
    outputs?: OutputMap;
    status: BuildActionStatus;
    durationMs: number;
    /** Where it sat on the build's timeline: ms after the build started, and its parallel slot. */
    startMs?: number;
    lane?: number;
    /** A failed action's message. */
    error?: string;
  }): void {
    const state = `${a.key} ${a.resultId ?? ""}`;
    if (a.status === "cached") {
      this.latest ??= this.latestByLabel();
      if (this.latest.get(a.label) === state) return; // nothing changed for this label
    }
    this.latest?.set(a.label, state);
    const outputs = a.outputs ? JSON.stringify(Object.fromEntries(Object.entries(a.outputs).map(([p, o]) => [p, o.digest]))) : null;
    const startMs = a.startMs === undefined ? null : Math.round(a.startMs);
    this.pending.push([a.buildId, a.label, a.key, a.resultId ?? null, outputs, a.status, Math.round(a.durationMs), startMs, a.lane ?? null, a.error ?? null]);
    if (this.pending.length >= BATCH) this.flush();
  }

  private latestByLabel(): Map<string, string> {
    this.flush();
    // SQLite takes the bare columns from the row that holds max(build_id).
    const rows = this.sql.all<{ label: string; action_key: string; result_id: number | null }>(
      `SELECT label, action_key, result_id, max(build_id) FROM build_actions GROUP BY label`,
    );
    return new Map(rows.map((r) => [r.label, `${r.action_key} ${r.result_id ?? ""}`]));
  }

  flush(): void {
    if (this.pending.length === 0 || !this.sql.open) return;
    const rows = this.pending;
    this.pending = [];
    const insert = this.sql.statement(
      `INSERT OR REPLACE INTO build_actions (build_id, label, action_key, result_id, outputs, status, duration_ms, start_ms, lane, error)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.sql.write(() => {
      for (const r of rows) insert.run(...r);
    });
  }

  /** `counts`: how many actions of the closure ended each way (cached ones mostly get no row);
   * `criticalPath`: the chain of actions that decided the build's length, first to last. */
  finish(id: number, status: BuildStatus, outcome?: { counts: BuildCounts; criticalPath: string[] }): void {
    this.flush();
    const c = outcome?.counts;
    this.sql.run(
      `UPDATE builds SET finished_at = ?, status = ?, executed = ?, cached = ?, remote = ?, failed = ?, skipped = ?, critical_path = ? WHERE id = ?`,
      Date.now(),
      status,
      c?.executed ?? null,
      c?.cached ?? null,
      c?.remote ?? null,
      c?.failed ?? null,
      c?.skipped ?? null,
      outcome ? JSON.stringify(outcome.criticalPath) : null,
      id,
    );
  }

  /** Builds, newest first, `limit` at most, older than build `before` when given (the next page
   * starts below the last id of this one). */
  builds(page: { before?: number; limit: number }): BuildRecord[] {
    const rows = this.sql.all<BuildRow>(
      `SELECT ${BUILD_COLUMNS} FROM builds b LEFT JOIN target_sets ts ON ts.digest = b.targets
       WHERE b.id < ? ORDER BY b.id DESC LIMIT ?`,
      page.before ?? Number.MAX_SAFE_INTEGER,
      page.limit,
    );
    return rows.map(buildRecord);
  }

  /** How many builds the history holds. */
  count(): number {
    return this.sql.count(`SELECT count(*) AS n FROM builds`);
  }

  build(id: number): BuildRecord | undefined {
    const row = this.sql.get<BuildRow>(`SELECT ${BUILD_COLUMNS} FROM builds b LEFT JOIN target_sets ts ON ts.digest = b.targets WHERE b.id = ?`, id);
    return row && buildRecord(row);
  }

  /** The actions a build recorded (those that ran, failed, or were served something new), in
   * the order they started; the rule comes from the result they were served or made. */
  buildActions(id: number): RecordedAction[] {
    this.flush();
    const rows = this.sql.all<{ label: string; action_key: string; status: BuildActionStatus; duration_ms: number; start_ms: number | null; lane: number | null; error: string | null; rule: string | null; outputs: string | null }>(
      `SELECT ba.label, ba.action_key, ba.status, ba.duration_ms, ba.start_ms, ba.lane, ba.error, ar.rule, ba.outputs
       FROM build_actions ba LEFT JOIN action_results ar ON ar.id = ba.result_id
       WHERE ba.build_id = ? ORDER BY coalesce(ba.start_ms, 0), ba.label`,
      id,
    );
    return rows.map((r) => ({
      label: r.label,
      key: r.action_key as ActionKey,
      status: r.status,
      durationMs: r.duration_ms,
      startMs: r.start_ms ?? undefined,
      lane: r.lane ?? undefined,
      error: r.error ?? undefined,
      rule: r.rule ?? undefined,
      outputs: r.outputs === null ? undefined : (JSON.parse(r.outputs) as Record<string, Digest>),
    }));
  }

  /** Each label's outcome in the newest build that recorded it (a no-op records nothing, so
   * this is the last time it ran, failed or changed). */
  lastOutcomes(labels: string[]): Map<string, { status: BuildActionStatus; buildId: number }> {
    this.flush();
    const rows = this.sql.all<{ label: string; status: BuildActionStatus; build_id: number }>(
      `SELECT label, status, max(build_id) AS build_id FROM build_actions WHERE label IN (SELECT value FROM json_each(?)) GROUP BY label`,
      JSON.stringify(labels),
    );
    return new Map(rows.map((r) => [r.label, { status: r.status, buildId: r.build_id }]));
  }

  /** Every distinct output set a target has had, the most recent first; `builds` counts the
   * builds that ran it or switched it to that output set (no-ops record nothing). */
  targetHistory(label: string): HistoryEntry[] {
    const rows = this.sql.all<{ outputs: string; first_seen: number; last_seen: number; builds: number; executions: number; sandbox_rank: number | null }>(
      `SELECT ba.outputs AS outputs, min(b.started_at) AS first_seen, max(b.started_at) AS last_seen,
              count(*) AS builds, sum(ba.status = 'executed') AS executions, max(b.id) AS last_build,
              max(CASE ar.sandbox WHEN 'none' THEN 0 WHEN 'in-process' THEN 1 WHEN 'bwrap' THEN 2 END) AS sandbox_rank
       FROM build_actions ba JOIN builds b ON b.id = ba.build_id
       LEFT JOIN action_results ar ON ar.id = ba.result_id
       WHERE ba.label = ? AND ba.outputs IS NOT NULL
       GROUP BY ba.outputs ORDER BY last_build DESC`,
      label,
    );
    return rows.map((r) => ({
      outputs: JSON.parse(r.outputs) as Record<string, Digest>,
      firstSeen: r.first_seen,
      lastSeen: r.last_seen,
      builds: r.builds,
      executions: r.executions,
      sandbox: r.sandbox_rank === null ? undefined : SANDBOX_RANK[r.sandbox_rank],
    }));
  }

  /** The target's last `n` distinct action keys, the most recently built first. */
  recentKeys(label: string, n: number): ActionKey[] {
    return this.sql
      .all<{ key: ActionKey }>(
        `SELECT action_key AS key, max(build_id) AS last FROM build_actions
         WHERE label = ? GROUP BY action_key ORDER BY last DESC LIMIT ?`,
        label,
        n,
      )
      .map((r) => r.key);
  }
}
