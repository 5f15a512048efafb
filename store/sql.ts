// The index's SQL handle, private to store/: statements are prepared once per handle (a no-op
// build runs the same few thousands of times) and write transactions take the lock up front.
import type Database from "better-sqlite3";

/** What must be durable before a gathered commit (the blobs its rows name, cas.ts's Durability). */
export interface BeforeCommit {
  /** How many are pending. */
  readonly pending: number;
  /** Sync what is pending now, off the main thread. */
  sync(): Promise<void>;
  /** Sync everything still pending, before returning. */
  syncNow(): void;
  /** Gathering ends: sync the rest, and make later writes durable at once again. */
  end(): void;
}

/** Writes gathered into one open transaction (see Sql.gatherWrites). */
interface Gathering {
  ms: number;
  durable?: BeforeCommit;
  /** Counts the gathering transactions begun: a commit that waited for `durable` checks it is
   * still the transaction it was due for. */
  begun: number;
  timer?: NodeJS.Timeout;
  afterCommit: (() => void)[];
}

export class Sql {
  private readonly statements = new Map<string, Database.Statement>();
  private gathering?: Gathering;

  constructor(private readonly db: Database.Database) {}

  get open(): boolean {
    return this.db.open;
  }

  statement(text: string): Database.Statement {
    let st = this.statements.get(text);
    if (!st) {
      st = this.db.prepare(text);
      this.statements.set(text, st);
    }
    return st;
  }

  get<T>(text: string, ...params: unknown[]): T | undefined {
    return this.statement(text).get(...params) as T | undefined;
  }

  all<T>(text: string, ...params: unknown[]): T[] {
    return this.statement(text).all(...params) as T[];
  }

  run(text: string, ...params: unknown[]): Database.RunResult {
    this.joinGathering();
    return this.statement(text).run(...params);
  }

  /** `SELECT count(*) AS n …` and friends: the single number, 0 for NULL. */
  count(text: string, ...params: unknown[]): number {
    return this.get<{ n: number | null }>(text, ...params)?.n ?? 0;
  }

  /** BEGIN IMMEDIATE: the write lock first, so concurrent writers queue instead of failing mid-way.
   * While writes are gathered, `fn` is a savepoint inside the gathering transaction. */
  write<T>(fn: () => T): T {
    this.joinGathering();
    return this.db.transaction(fn).immediate();
  }

  /** From now on, gather writes into one transaction committed `ms` after its first write: a
   * build of thousands of actions makes a few writes per action, and a commit each cost more
   * than the writes (#16). Until the commit, other processes do not see them, so what must wait
   * for that (releasing an action's lock) goes through afterCommit. A crash loses at most the
   * last `ms` of results (their blobs stay, orphaned, as after any crash). `durable` is synced
   * before each commit (off the main thread, then what came meanwhile at once). */
  gatherWrites(ms: number, durable?: BeforeCommit): void {
    if (this.gathering) return;
    this.gathering = { ms, durable, begun: 0, afterCommit: [] };
    process.once("exit", this.stopGathering);
  }

  /** Commit what was gathered and write directly again. */
  readonly stopGathering = (): void => {
    this.commitGathered();
    this.gathering?.durable?.end();
    this.gathering = undefined;
    process.removeListener("exit", this.stopGathering);
  };

  /** Run `fn` once what was written so far is committed (at once when nothing is pending). */
  afterCommit(fn: () => void): void {
    if (this.gathering && this.db.inTransaction) this.gathering.afterCommit.push(fn);
    else fn();
  }

  private joinGathering(): void {
    const g = this.gathering;
    if (!g || this.db.inTransaction) return;
    this.db.exec("BEGIN IMMEDIATE");
    const begun = ++g.begun;
    g.timer = setTimeout(() => void this.commitWhenDurable(g, begun), g.ms).unref();
  }

  private async commitWhenDurable(g: Gathering, begun: number): Promise<void> {
    try {
      // What came during a sync goes in another, while it is little enough to catch up.
      for (let round = 0; round < 3 && (g.durable?.pending ?? 0) > 0; round++) await g.durable!.sync();
    } catch {
      return; // the transaction stays open: the next commit syncs at once, and reports what fails
    }
    // Committed meanwhile (commit(), the build's end) unless still the same open transaction.
    if (this.gathering === g && g.begun === begun) this.commitGathered();
  }

  /** Commit what was gathered so far (gathering goes on: the next write opens a new transaction). */
  commitGathered(): void {
    const g = this.gathering;
    if (!g) return;
    clearTimeout(g.timer);
    if (this.db.open && this.db.inTransaction) {
      g.durable?.syncNow();
      this.db.exec("COMMIT");
    }
    for (const fn of g.afterCommit.splice(0)) fn();
  }

  /** How commits reach the disk: NORMAL syncs the WAL only at checkpoints (a power loss may
   * take the last commits back), FULL at every commit. Set between transactions (SQLite refuses
   * it inside one). */
  synchronous(level: "NORMAL" | "FULL"): void {
    if (this.db.inTransaction) throw new Error("internal: synchronous changed inside a transaction");
    this.db.pragma(`synchronous = ${level}`);
  }

  /** Run `fn` with every commit durable (FULL), then go back to NORMAL. */
  async durably<T>(fn: () => Promise<T>): Promise<T> {
    this.synchronous("FULL");
    try {
      return await fn();
    } finally {
      if (this.db.open && !this.db.inTransaction) this.synchronous("NORMAL");
    }
  }

  exec(text: string): void {
    this.db.exec(text);
  }

  close(): void {
    if (this.gathering) this.stopGathering();
    if (this.db.open) this.db.close();
  }
}
