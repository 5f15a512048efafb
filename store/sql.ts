// The index's SQL handle, private to store/: statements are prepared once per handle (a no-op
// build runs the same few thousands of times) and write transactions take the lock up front.
import type Database from "better-sqlite3";

export class Sql {
  private readonly statements = new Map<string, Database.Statement>();

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
    return this.statement(text).run(...params);
  }

  /** `SELECT count(*) AS n …` and friends: the single number, 0 for NULL. */
  count(text: string, ...params: unknown[]): number {
    return this.get<{ n: number | null }>(text, ...params)?.n ?? 0;
  }

  /** BEGIN IMMEDIATE: the write lock first, so concurrent writers queue instead of failing mid-way. */
  write<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  exec(text: string): void {
    this.db.exec(text);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
