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
  }): void {
    const state = `${a.key} ${a.resultId ?? ""}`;
    if (a.status === "cached") {
      this.latest ??= this.latestByLabel();
      if (this.latest.get(a.label) === state) return; // nothing changed for this label
    }
    this.latest?.set(a.label, state);
    const outputs = a.outputs ? JSON.stringify(Object.fromEntries(Object.entries(a.outputs).map(([p, o]) => [p, o.digest]))) : null;
    this.pending.push([a.buildId, a.label, a.key, a.resultId ?? null, outputs, a.status, Math.round(a.durationMs)]);
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
      `INSERT OR REPLACE INTO build_actions (build_id, label, action_key, result_id, outputs, status, duration_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.sql.write(() => {
      for (const r of rows) insert.run(...r);
    });
  }

  finish(id: number, status: BuildStatus): void {
    this.flush();
    this.sql.run(`UPDATE builds SET finished_at = ?, status = ? WHERE id = ?`, Date.now(), status, id);
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
