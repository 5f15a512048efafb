// The store's readers-writer lock. Builds (and whatever admits blobs or serves results) hold it
// shared for as long as they use the store; gc's sweep and `fsck --repair` hold it exclusive, so
// nothing a build serves or has just written can be deleted under it (#23). It is SQLite's own
// file lock on <store>/store.lock, a rollback-journal database holding nothing: an fcntl lock,
// which the kernel drops when its holder dies, so a SIGKILLed build never blocks gc.
// A shared holder is a reader: a read transaction kept open. An exclusive holder waits with
// SQLite's PENDING lock taken, so new readers queue behind it and gc is not starved.
import Database from "better-sqlite3";
import { join } from "node:path";
import { WmbError } from "../src/errors.ts";
import { sqliteAddon } from "./index-db.ts";

const POLL_MS = 50;

export type LockWait = (message: string) => void;

export class StoreLock {
  private db?: Database.Database;
  private held?: "shared" | "exclusive";

  constructor(private readonly storeDir: string) {}

  get mode(): "shared" | "exclusive" | undefined {
    return this.held;
  }

  /** Hold the lock shared (no-op when held); waits, saying so once, while gc sweeps. */
  async shared(onWait?: LockWait, signal?: AbortSignal): Promise<void> {
    if (this.held) return;
    const db = this.open();
    let told = false;
    for (;;) {
      try {
        db.exec("BEGIN");
        db.prepare("SELECT count(*) FROM sqlite_master").get(); // takes SHARED, kept until COMMIT
        this.held = "shared";
        return;
      } catch (e) {
        if (db.inTransaction) db.exec("ROLLBACK");
        if (!isBusy(e)) throw e;
      }
      if (signal?.aborted) throw new WmbError("INTERRUPTED", "Interrupted.");
      if (!told) onWait?.(`waiting for \`wmb store gc\` (or \`store fsck --repair\`) to finish with ${this.storeDir}`);
      told = true;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** Hold the lock exclusive: every shared holder has let go, and none can start until release. */
  exclusive(onWait?: LockWait): void {
    if (this.held === "exclusive") return;
    this.release();
    const db = this.open();
    try {
      db.exec("BEGIN EXCLUSIVE");
    } catch (e) {
      if (!isBusy(e)) throw e;
      onWait?.(`waiting for the builds using ${this.storeDir} to finish`);
      // Blocks with PENDING held: readers already in finish, new ones wait behind us.
      db.pragma("busy_timeout = 2147483647");
      db.exec("BEGIN EXCLUSIVE");
      db.pragma("busy_timeout = 0");
    }
    this.held = "exclusive";
  }

  release(): void {
    if (this.db?.inTransaction) this.db.exec("ROLLBACK");
    this.held = undefined;
  }

  close(): void {
    this.release();
    this.db?.close();
    this.db = undefined;
  }

  private open(): Database.Database {
    if (this.db) return this.db;
    const file = join(this.storeDir, "store.lock");
    const db = new Database(file, { timeout: 0, nativeBinding: sqliteAddon() });
    this.db = db;
    return db;
  }
}

function isBusy(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === "SQLITE_BUSY" || code === "SQLITE_LOCKED";
}
