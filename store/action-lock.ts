// One process at a time executes an action key on a store (Nix's and Bazel's behaviour): two
// concurrent builds of the same targets cost about one. The lock is a file per key under
// <store>/locks/, naming its holder by pid, process start time, boot id and host (see
// process-identity.ts): a holder that died (SIGKILL, power loss, a container restart) is noticed
// even when its pid has been reused, and its lock taken over, so a crash never blocks anyone. A
// lock of another host cannot be judged from here: a build waiting for one says so, and
// `wmb store unlock` breaks it. A process waiting for a key polls for the holder's result.
// Each process writes its identity once, to a holder file, and takes a key's lock by
// hard-linking that file to the key's name (link fails when the name exists): a lock then costs
// no inode, where a file created and removed per action made every later file creation slower
// on a filesystem that avoids reusing freed inodes (#16).
import { linkSync, mkdirSync, promises as fsp, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ActionKey } from "../src/digest.ts";
import { WmbError } from "../src/errors.ts";
import { uniqueSuffix } from "../src/unique-name.ts";
import { unlinkIfThere } from "../src/unlink-if-there.ts";
import { formatIdentity, liveness, parseIdentity, selfIdentity, type ProcessIdentity } from "./process-identity.ts";

const POLL_MS = 100;
/** A build waiting this long for a lock says who holds it. */
const TELL_AFTER_MS = 1000;
const HOLDER = "holder-";
/** This process's holder file, by locks directory. */
const holders = new Map<string, string>();
/** Lock files this process holds: a lock naming this process and not among these is a leftover. */
const heldHere = new Set<string>();

export type Acquired<T> = { held: true; release(): Promise<void> } | { held: false; result: T };

export interface LockHolder {
  key: string;
  holder: ProcessIdentity | undefined;
  /** When the holder process wrote its holder file (ms since the epoch). */
  since: number;
  state: "alive" | "dead" | "unknown";
}

export class ActionLocks {
  private readonly dir: string;

  constructor(storeDir: string) {
    this.dir = join(storeDir, "locks");
  }

  /** Hold `key`'s lock, or get the result another process made while we waited (`done` says
   * whether it exists yet; it is asked again once the lock is ours, before running). `onWait`
   * hears once who holds it, when the wait lasts. */
  async acquire<T>(
    key: ActionKey,
    done: () => Promise<T | undefined>,
    signal: AbortSignal,
    wait?: { label: string; onWait: (message: string) => void },
  ): Promise<Acquired<T>> {
    const file = join(this.dir, `${key}.lock`);
    const t0 = Date.now();
    let told = false;
    for (;;) {
      if (signal.aborted) throw new WmbError("INTERRUPTED", "Interrupted.");
      if (this.tryCreate(file)) {
        heldHere.add(file);
        const release = async () => {
          heldHere.delete(file);
          unlinkIfThere(file);
        };
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
      const lock = await this.inspect(file);
      if (lock?.state === "dead") await this.removeIfStale(file, lock);
      else if (lock && wait && !told && Date.now() - t0 >= TELL_AFTER_MS) {
        told = true;
        wait.onWait(waitingMessage(wait.label, lock));
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /** Every lock (not holder files) and what is known of its holder. */
  async list(): Promise<LockHolder[]> {
    const out: LockHolder[] = [];
    for (const name of (await this.names()).filter((n) => n.endsWith(".lock"))) {
      const lock = await this.inspect(join(this.dir, name));
      if (lock) out.push(lock);
    }
    return out;
  }

  /** Remove the locks (and holder files) of holders on this host that died (gc calls this);
   * with `foreign`, also those of other hosts (`wmb store unlock`: the user says they are gone).
   * Returns the locks removed. */
  async sweep(opts: { foreign?: boolean } = {}): Promise<LockHolder[]> {
    const removed: LockHolder[] = [];
    for (const name of (await this.names()).filter((n) => n.endsWith(".lock") || n.startsWith(HOLDER))) {
      const file = join(this.dir, name);
      const lock = await this.inspect(file);
      if (!lock || lock.state === "alive" || (lock.state === "unknown" && !opts.foreign)) continue;
      if ((await this.removeIfStale(file, lock)) && name.endsWith(".lock")) removed.push(lock);
    }
    return removed;
  }

  private async names(): Promise<string[]> {
    return fsp.readdir(this.dir).catch(() => []);
  }

  private tryCreate(file: string, again = true): boolean {
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
      writeFileSync(file, formatIdentity(selfIdentity()), { flag: "wx" });
      process.once("exit", () => rmSync(file, { force: true }));
      holders.set(this.dir, (holder = file));
    }
    return holder;
  }

  /** What a lock (or holder file) says, undefined when it is gone. This process's own identity
   * in a lock it does not hold is a leftover of an earlier process with its pid: dead. */
  private async inspect(file: string, name = file): Promise<LockHolder | undefined> {
    let text: string;
    let since: number;
    try {
      [text, since] = await Promise.all([fsp.readFile(file, "utf8"), fsp.stat(file).then((s) => s.mtimeMs)]);
    } catch {
      return undefined; // released meanwhile
    }
    const key = name.slice(this.dir.length + 1).replace(/\.lock$/, "");
    const holder = parseIdentity(text);
    if (!holder) return { key, holder, since, state: "dead" }; // unreadable (torn by a crash)
    let state = liveness(holder);
    const me = selfIdentity();
    const mine = holder.pid === me.pid && holder.host === me.host;
    if (mine && state === "alive" && name.endsWith(".lock") && !heldHere.has(name)) state = "dead";
    if (mine && holder.start === undefined) state = "dead"; // the old format: never this process
    if (mine && name === holders.get(this.dir)) state = "alive";
    return { key, holder, since, state };
  }

  /** Remove a stale lock only if it is still that holder's (a rename makes the check-and-remove
   * atomic); true when removed. */
  private async removeIfStale(file: string, lock: LockHolder): Promise<boolean> {
    const stale = `${file}.${process.pid}.stale`;
    try {
      await fsp.rename(file, stale);
    } catch {
      return false;
    }
    const now = await this.inspect(stale, file);
    if (now && now.state !== "alive" && sameHolder(now.holder, lock.holder)) {
      await fsp.rm(stale, { force: true });
      return true;
    }
    await fsp.rename(stale, file).catch(() => {}); // a live holder's lock: put it back
    return false;
  }
}

function sameHolder(a: ProcessIdentity | undefined, b: ProcessIdentity | undefined): boolean {
  return (a && formatIdentity(a)) === (b && formatIdentity(b));
}

function waitingMessage(label: string, lock: LockHolder): string {
  const who = lock.holder ? `pid ${lock.holder.pid} on ${lock.holder.host}` : "an unknown process";
  const since = new Date(lock.since).toISOString();
  const hint = lock.state === "unknown" ? `; if no wmb runs there any more, run \`wmb store unlock\`` : "";
  return `waiting for ${label}, held by ${who} since ${since}${hint}`;
}
