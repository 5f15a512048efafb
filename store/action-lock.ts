// One process at a time executes an action key on a store (Nix's and Bazel's behaviour): two
// concurrent builds of the same targets cost about one. The lock is a file per key under
// <store>/locks/, holding the holder's pid and host; a holder that died (SIGKILL, power loss) is
// noticed by its pid being gone and its lock taken over, so a crash never blocks anyone. A
// process waiting for a key polls for the holder's result.
// Each process writes its pid and host once, to a holder file, and takes a key's lock by
// hard-linking that file to the key's name (link fails when the name exists): a lock then costs
// no inode, where a file created and removed per action made every later file creation slower
// on a filesystem that avoids reusing freed inodes (#16).
import { linkSync, mkdirSync, promises as fsp, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { ActionKey } from "../src/digest.ts";
import { WmbError } from "../src/errors.ts";
import { uniqueSuffix } from "../src/unique-name.ts";
import { unlinkIfThere } from "../src/unlink-if-there.ts";

const POLL_MS = 100;
const HOLDER = "holder-";
/** This process's holder file, by locks directory. */
const holders = new Map<string, string>();

export type Acquired<T> = { held: true; release(): Promise<void> } | { held: false; result: T };

export class ActionLocks {
  private readonly dir: string;
  private readonly me = `${process.pid} ${hostname()}`;

  constructor(storeDir: string) {
    this.dir = join(storeDir, "locks");
  }

  /** Hold `key`'s lock, or get the result another process made while we waited (`done` says
   * whether it exists yet; it is asked again once the lock is ours, before running). */
  async acquire<T>(key: ActionKey, done: () => Promise<T | undefined>, signal: AbortSignal): Promise<Acquired<T>> {
    const file = join(this.dir, `${key}.lock`);
    for (;;) {
      if (signal.aborted) throw new WmbError("INTERRUPTED", "Interrupted.");
      if (await this.tryCreate(file)) {
        const release = async () => unlinkIfThere(file);
        // The previous holder may have finished between our lookup and our lock.
        const result = await done().catch(async (e: unknown) => {
          await release();
          throw e;
        });
        if (result !== undefined) {
          await release();
          return { held: false, result };
        }
        return { held: true, release };
      }
      const result = await done();
      if (result !== undefined) return { held: false, result };
      await this.removeIfDead(file);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** Remove the locks of holders on this host that died (gc calls this); returns how many. */
  async sweep(): Promise<number> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch {
      return 0;
    }
    let removed = 0;
    for (const name of names.filter((n) => n.endsWith(".lock") || n.startsWith(HOLDER))) {
      const file = join(this.dir, name);
      await this.removeIfDead(file);
      if (name.endsWith(".lock") && !(await fsp.stat(file).catch(() => undefined))) removed++;
    }
    return removed;
  }

  private async tryCreate(file: string, again = true): Promise<boolean> {
    try {
      linkSync(this.holderFile(), file);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EEXIST") return false;
      // The holder file (or locks/) was removed from under us: write it again, once.
      if (code === "ENOENT" && again) {
        holders.delete(this.dir);
        return this.tryCreate(file, false);
      }
      throw e;
    }
  }

  /** This process's holder file in this store, written once (every build of a `verify` shares
   * it) and removed when the process exits. */
  private holderFile(): string {
    let holder = holders.get(this.dir);
    if (!holder) {
      mkdirSync(this.dir, { recursive: true });
      const file = join(this.dir, `${HOLDER}${uniqueSuffix()}`);
      writeFileSync(file, this.me, { flag: "wx" });
      process.once("exit", () => rmSync(file, { force: true }));
      holders.set(this.dir, (holder = file));
    }
    return holder;
  }

  /** Take over a lock (or a holder file) whose holder on this host is gone. A lock of another host is left alone. */
  private async removeIfDead(file: string): Promise<void> {
    let holder: string;
    try {
      holder = await fsp.readFile(file, "utf8");
    } catch {
      return; // released meanwhile
    }
    const [pid, host] = holder.split(" ");
    if (host !== hostname() || !pid) return;
    try {
      process.kill(Number(pid), 0);
      return; // alive
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EPERM") return; // alive, another user's
    }
    // Dead: remove it only if it is still that holder's (a rename makes the check-and-remove atomic).
    const stale = `${file}.${process.pid}.stale`;
    try {
      await fsp.rename(file, stale);
    } catch {
      return;
    }
    const now = await fsp.readFile(stale, "utf8").catch(() => "");
    if (now === holder) await fsp.rm(stale, { force: true });
    else await fsp.rename(stale, file).catch(() => {}); // a live holder's lock: put it back
  }
}
