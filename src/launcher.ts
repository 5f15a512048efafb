// Host commands are started by a few long-lived /bin/sh processes ("lanes"), not by wmb's own
// process. fork() costs in proportion to the forking process's memory (its page tables, then a
// copy-on-write fault for every page it touches afterwards): ~4 ms a command for a build holding
// 100+ MB, against ~0.3 ms for a shell of 1 MB (#16). A lane reads one command per line on
// stdin, runs it in a subshell with exactly the environment it is given, its output in files,
// and answers with the exit status; each lane runs one command at a time, so a build uses as
// many lanes as it runs commands at once.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { join } from "node:path";
import { sandboxBase } from "./sandbox-base.ts";

export interface Launch {
  argv: readonly string[];
  /** The command's working directory on the host. */
  cwd: string;
  /** Its whole environment. */
  env: Readonly<Record<string, string>>;
  umask?: number;
  stdin?: string | Uint8Array;
  signal: AbortSignal;
}

/** How a command ended: its exit status (through a lane, a signal shows as 128 + its number;
 * spawned directly, null when it could not start or was killed), and what it wrote. */
export interface Launched {
  code: number | null;
  stdout: string;
  stderr: string;
  aborted: boolean;
}

/** Run one command: through a lane when its environment can be passed through one, else by
 * spawning it directly. */
export async function launch(l: Launch): Promise<Launched> {
  if (l.signal.aborted) return { code: null, stdout: "", stderr: "", aborted: true };
  // No argument, variable or directory can hold a NUL (execve ends strings there); a lane's
  // line must not either.
  const strings = [...l.argv, l.cwd, ...Object.keys(l.env), ...Object.values(l.env)];
  if (strings.some((x) => x.includes("\0"))) return { code: null, stdout: "", stderr: "an argument, variable or directory holds a NUL byte", aborted: false };
  const lanes = lanePool();
  if (lanes && Object.keys(l.env).every((k) => SHELL_NAME.test(k)) && (await lanes.exact)) return lanes.run(l);
  return spawnDirect(l);
}

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `s` as one word for sh: single-quoted, with each ' closed, escaped and reopened. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The line a lane runs for `l`, its output redirected to `files`. The subshell leaves the lane
 * as it was; `unset PWD OLDPWD` drops the two variables `cd` exports; `exec` replaces the
 * subshell, so the command is the lane's child and the status is its own. */
export function laneLine(l: Launch, files: LaneFiles, stdinFile: string | undefined): string {
  const parts = [`cd ${shellQuote(l.cwd)}`, "unset PWD OLDPWD"];
  if (l.umask !== undefined) parts.push(`umask ${l.umask.toString(8).padStart(3, "0")}`);
  for (const [k, v] of Object.entries(l.env)) parts.push(`export ${k}=${shellQuote(v)}`);
  parts.push(`exec ${l.argv.map(shellQuote).join(" ")}`);
  const input = stdinFile ? shellQuote(stdinFile) : "/dev/null";
  return `( ${parts.join(" && ")} ) <${input} >${shellQuote(files.stdout)} 2>${shellQuote(files.stderr)}; echo $?\n`;
}

interface LaneFiles {
  stdout: string;
  stderr: string;
  stdin: string;
}

/** A lane's stdio are socket pairs (Node's), which no other process can open through /proc:
 * a command cannot write a line that passes for its lane's answer. */
class Lane {
  private readonly child: ChildProcess;
  private answer?: (line: string | undefined) => void;
  private buffered = "";
  dead = false;

  constructor(
    private readonly dir: string,
    readonly files: LaneFiles,
  ) {
    // Its own process group, so an abort can kill the lane and whatever it runs at once. Its
    // files go with it when it ends, also when wmb was killed (its stdin then ends).
    this.child = spawn("/bin/sh", [], { stdio: ["pipe", "pipe", "ignore"], env: {}, detached: true });
    this.child.stdin!.write(`trap ${shellQuote(`rm -rf ${shellQuote(dir)}`)} EXIT\n`);
    this.child.stdout!.setEncoding("utf8");
    this.child.stdout!.on("data", (chunk: string) => {
      this.buffered += chunk;
      const nl = this.buffered.indexOf("\n");
      if (nl < 0) return;
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      this.settle(line);
    });
    const gone = () => {
      this.dead = true;
      // Killed with a command running (it signalled its whole process group, the lane's: `kill
      // 0`): run() reads what it wrote first. An idle lane's files go now.
      if (this.answer) this.settle(undefined);
      else this.remove();
    };
    this.child.on("exit", gone);
    this.child.on("error", gone);
    this.child.stdin!.on("error", gone);
    this.idle(true);
  }

  /** Send one line and wait for the one line of its answer (undefined: the lane died). */
  ask(line: string): Promise<string | undefined> {
    return new Promise((resolve) => {
      this.answer = resolve;
      this.idle(false);
      this.child.stdin!.write(line);
    });
  }

  /** Kill the lane and what it runs (its exit trap then does not run: its files are removed here). */
  kill(): void {
    this.dead = true;
    try {
      process.kill(-this.child.pid!, "SIGKILL");
    } catch {
      /* already gone */
    }
    this.remove();
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private settle(line: string | undefined): void {
    const answer = this.answer;
    this.answer = undefined;
    this.idle(true);
    answer?.(line);
  }

  /** An idle lane does not keep wmb running; a busy one does (its answer is awaited). */
  private idle(yes: boolean): void {
    const handles = [this.child, this.child.stdout as Socket, this.child.stdin as unknown as Socket];
    for (const h of handles) (yes ? h?.unref : h?.ref)?.call(h);
  }
}

class LanePool {
  private readonly idleLanes: Lane[] = [];
  /** Whether this host's /bin/sh passes exactly the environment it is told (dash does; bash
   * adds SHLVL and _), asked once by running `env` through a lane. */
  readonly exact: Promise<boolean>;

  constructor() {
    const env = { PATH: "/usr/bin:/bin" };
    this.exact = this.run({ argv: ["env"], cwd: "/", env, signal: new AbortController().signal })
      .then((r) => r.code === 0 && r.stdout === "PATH=/usr/bin:/bin\n")
      .catch(() => false);
  }

  async run(l: Launch): Promise<Launched> {
    const lane = this.idleLanes.pop() ?? this.newLane();
    const onAbort = () => lane.kill();
    l.signal.addEventListener("abort", onAbort, { once: true });
    try {
      let stdinFile: string | undefined;
      if (l.stdin !== undefined) {
        writeFileSync(lane.files.stdin, l.stdin);
        stdinFile = lane.files.stdin;
      }
      const answer = await lane.ask(laneLine(l, lane.files, stdinFile));
      if (l.signal.aborted) return { code: null, stdout: "", stderr: "", aborted: true };
      const read = (file: string) => readFileSync(file, "utf8");
      if (answer === undefined) {
        const stderr = `${existsSync(lane.files.stderr) ? read(lane.files.stderr) : ""}wmb: the command was killed with the shell that started it (did it signal its whole process group?)\n`;
        const stdout = existsSync(lane.files.stdout) ? read(lane.files.stdout) : "";
        lane.remove();
        return { code: null, stdout, stderr, aborted: false };
      }
      return { code: Number(answer), stdout: read(lane.files.stdout), stderr: read(lane.files.stderr), aborted: false };
    } finally {
      l.signal.removeEventListener("abort", onAbort);
      if (!lane.dead) this.idleLanes.push(lane);
    }
  }

  private newLane(): Lane {
    const dir = mkdtempSync(join(sandboxBase(), "wmb-lane-"));
    return new Lane(dir, { stdout: join(dir, "stdout"), stderr: join(dir, "stderr"), stdin: join(dir, "stdin") });
  }
}

let pool: LanePool | null | undefined;

/** The process's lanes, or null where /bin/sh cannot be used (not POSIX). */
function lanePool(): LanePool | null {
  if (pool === undefined) pool = process.platform === "win32" ? null : new LanePool();
  return pool;
}

/** Spawn the command from wmb's own process (the fallback): its own process group, killed whole
 * on abort. */
function spawnDirect(l: Launch): Promise<Launched> {
  let [file, ...args] = l.argv;
  if (l.umask !== undefined) {
    [file, ...args] = ["/bin/sh", "-c", `umask ${l.umask.toString(8).padStart(3, "0")}; exec "$@"`, "wmb-umask", ...l.argv];
  }
  return new Promise((resolve) => {
    const child = spawn(file!, args, { cwd: l.cwd, env: l.env, stdio: ["pipe", "pipe", "pipe"], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const onAbort = () => {
      try {
        if (child.pid) process.kill(-child.pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    };
    l.signal.addEventListener("abort", onAbort, { once: true });
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e) => {
      l.signal.removeEventListener("abort", onAbort);
      resolve({ code: null, stdout: "", stderr: e.message, aborted: l.signal.aborted });
    });
    child.on("close", (code) => {
      l.signal.removeEventListener("abort", onAbort);
      resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), aborted: l.signal.aborted });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(l.stdin);
  });
}
