// Host commands are started by a few long-lived /bin/sh processes ("lanes"), not by wmb's own
// process. fork() costs in proportion to the forking process's memory (its page tables, then a
// copy-on-write fault for every page it touches afterwards): ~4 ms a command for a build holding
// 100+ MB, against ~0.3 ms for a shell of 1 MB (#16). A lane reads one command per line on
// stdin, runs it in a subshell with exactly the environment it is given, its output in files,
// and answers with the exit status; each lane runs one command at a time, so a build uses as
// many lanes as it runs commands at once. A sandboxed lane (sandbox-lane.ts) is a LanePool of
// another kind: one bwrap each, whose agent gives every command a view of its own.
//
// Whatever a command starts dies with it (#23): a process it left running would go on writing
// its outputs after they were admitted, or into the next command's files. An unsandboxed command
// gets a session (and so a process group) of its own, killed whole with SIGKILL as soon as its
// main process exits; a command under bwrap has a PID namespace of its own, which the kernel
// empties when it exits. A lane dies with wmb (`setpriv --pdeathsig`), and bwrap with its lane.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, fstatSync, ftruncateSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import type { Socket } from "node:net";
import { join } from "node:path";
import { processSandboxDir } from "./sandbox-base.ts";

export interface Launch {
  argv: readonly string[];
  /** The command's working directory on the host. */
  cwd: string;
  /** Its whole environment. */
  env: Readonly<Record<string, string>>;
  umask?: number;
  stdin?: string | Uint8Array;
  signal: AbortSignal;
  /** It runs in a PID namespace of its own (bwrap): what it starts dies when it exits, so it
   * needs no session of its own (which costs an exec of `setsid`, ~0.7 ms here). */
  ownPidNamespace?: boolean;
}

/** How a command ended: its exit status (through a lane, a signal shows as 128 + its number;
 * spawned directly, null when it could not start or was killed), and the end of what it wrote. */
export interface Launched {
  code: number | null;
  /** The last OUTPUT_TAIL_BYTES of its stdout (a line cut there dropped), and of its stderr. */
  stdout: string;
  stderr: string;
  aborted: boolean;
  /** It wrote more than OUTPUT_LIMIT_BYTES to stdout and stderr, and was killed for it. */
  overLimit?: boolean;
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
  if (lanes?.canRun(l) && Object.keys(l.env).every((k) => SHELL_NAME.test(k)) && (await lanes.exact)) return lanes.run(l);
  return spawnDirect(l);
}

/** How much of a command's stdout, and of its stderr, wmb keeps: for messages, and for the
 * rules that read a command's output (none reads more than a line). Reading a whole output
 * once ran a 700 MB stdout into V8's string limit (#23). */
export const OUTPUT_TAIL_BYTES = 64 << 10;

/** The most a command may write to stdout and stderr together. They are files on the sandbox
 * base, a tmpfs (RAM) when there is one: past this the command is killed and fails. A file
 * size limit (RLIMIT_FSIZE) would apply to its outputs too, and a pipe would bring every byte
 * through wmb's process; the sizes are checked every OUTPUT_CHECK_MS instead (nothing at all
 * for a command that ends sooner), so a command writes at most what it can in that time more. */
export const OUTPUT_LIMIT_BYTES = 64 << 20;
const OUTPUT_CHECK_MS = 20;

interface OutputFiles {
  stdout: string;
  stderr: string;
}

function fileSize(file: string): number {
  return statSync(file, { throwIfNoEntry: false })?.size ?? 0;
}

/** Calls `over` once `files` hold more than OUTPUT_LIMIT_BYTES; returns what stops watching. */
function watchOutput(files: OutputFiles, over: () => void): () => void {
  const timer = setInterval(() => {
    if (fileSize(files.stdout) + fileSize(files.stderr) <= OUTPUT_LIMIT_BYTES) return;
    clearInterval(timer);
    over();
  }, OUTPUT_CHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** The last OUTPUT_TAIL_BYTES of a file (a line cut there dropped) and its size. A larger file
 * is emptied once read: its space may be RAM, and a lane's files stay until its next command. */
function readTail(file: string): { text: string; size: number } {
  let fd: number;
  try {
    fd = openSync(file, "r+");
  } catch {
    return { text: "", size: 0 }; // never written (the command could not start), or removed
  }
  try {
    const size = fstatSync(fd).size;
    const n = Math.min(size, OUTPUT_TAIL_BYTES);
    const buf = Buffer.allocUnsafe(n);
    const got = readSync(fd, buf, 0, n, size - n);
    let text = buf.toString("utf8", 0, got);
    if (n < size) {
      text = text.slice(text.indexOf("\n") + 1);
      ftruncateSync(fd, 0);
    }
    return { text, size };
  } finally {
    closeSync(fd);
  }
}

/** What a command that ended wrote (its tails), and whether it wrote more than it may. */
function readOutput(files: OutputFiles, code: number | null, aborted: boolean): Launched {
  const out = readTail(files.stdout);
  const err = readTail(files.stderr);
  const overLimit = out.size + err.size > OUTPUT_LIMIT_BYTES;
  return { code: overLimit ? null : code, stdout: out.text, stderr: err.text, aborted, ...(overLimit ? { overLimit } : {}) };
}

/** SIGKILL to a process group (a session's, or a lane's); nothing when it is gone. */
function killGroup(pgid: number | undefined): void {
  try {
    if (pgid) process.kill(-pgid, "SIGKILL");
  } catch {
    /* already gone */
  }
}

/** The first of a util-linux tool's usual places that exists (wmb's PATH may be anything). */
function systemTool(name: string): string | undefined {
  return [`/usr/bin/${name}`, `/bin/${name}`].find((p) => existsSync(p));
}

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `s` as one word for sh: single-quoted, with each ' closed, escaped and reopened. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The line a lane runs for `l`, its output redirected to `files`. The subshell leaves the lane
 * as it was; `unset PWD OLDPWD` drops the two variables `cd` exports; `exec` replaces the
 * subshell, so the command is the lane's child and the status is its own. With `setsid` (the
 * path of util-linux's), the command gets a session of its own: the subshell writes its pid
 * (which the session's id becomes) to the pid file first, and once the command exits the lane
 * kills that session's process group and empties the file before it answers. dash has no
 * builtin for it (`set -m` wants a terminal), so it costs one exec of `setsid`. */
export function laneLine(l: Launch, files: LaneFiles, stdinFile: string | undefined, setsid?: string): string {
  const pidFile = shellQuote(files.pid);
  // `cd -P /proc/self` sets PWD to /proc/<the subshell's pid>: 4 us, where reading
  // /proc/self/stat costs 100.
  const parts = setsid ? ["cd -P /proc/self", `echo \${PWD#/proc/} >${pidFile}`] : [];
  parts.push(`cd ${shellQuote(l.cwd)}`, "unset PWD OLDPWD");
  if (l.umask !== undefined) parts.push(`umask ${l.umask.toString(8).padStart(3, "0")}`);
  for (const [k, v] of Object.entries(l.env)) parts.push(`export ${k}=${shellQuote(v)}`);
  parts.push(`exec ${setsid ? `${shellQuote(setsid)} -- ` : ""}${l.argv.map(shellQuote).join(" ")}`);
  const input = stdinFile ? shellQuote(stdinFile) : "/dev/null";
  const run = `( ${parts.join(" && ")} ) <${input} >${shellQuote(files.stdout)} 2>${shellQuote(files.stderr)}`;
  if (!setsid) return `${run}; echo $?\n`;
  return `${run}; s=$?; read -r p <${pidFile} && kill -9 -$p 2>/dev/null; : >${pidFile}; echo $s\n`;
}

export interface LaneFiles {
  stdout: string;
  stderr: string;
  stdin: string;
  /** The running command's pid (and session id) while it runs, when it has a session. */
  pid: string;
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
    argv: readonly string[],
    preamble: string | undefined,
  ) {
    // Its own process group, so an abort can kill the lane and whatever runs in that group at
    // once. Its files go with it when it ends; when wmb was killed, the next build's sweep
    // removes them (sandbox-base.ts).
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "ignore"], env: {}, detached: true });
    if (preamble) this.child.stdin!.write(preamble);
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
      // Killed with a command running (by the command itself, or anyone): run() reads what it
      // wrote first. An idle lane's files go now.
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
    killGroup(this.child.pid);
    this.killCommand();
    this.remove();
  }

  /** Kill the running command's session, when it has one. After the lane's own group: a
   * subshell that has not yet left that group died with it, one that has wrote its pid first. */
  killCommand(): void {
    try {
      killGroup(Number(readFileSync(this.files.pid, "utf8")));
    } catch {
      /* no pid file: no command ran with a session */
    }
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

/** What a pool's lanes are: how one starts, and the request that runs a command in it. */
export interface LaneKind {
  /** Who started the command, for the message when it dies with one running. */
  what: string;
  /** The lane's argv; `dir` holds its files. It is killed when wmb's thread that started it
   * (the main one) ends, also by SIGKILL; without setpriv it ends once its stdin does, after
   * the command it runs. */
  argv(dir: string): string[];
  /** Written to a new lane before anything else. */
  preamble?(dir: string): string;
  request(l: Launch, files: LaneFiles, stdinFile: string | undefined): string;
}

const setpriv = systemTool("setpriv");

/** Idle lanes of one kind, each running one command at a time. */
export class LanePool {
  private readonly idleLanes: Lane[] = [];

  constructor(private readonly kind: LaneKind) {}

  async run(l: Launch): Promise<Launched> {
    let lane = this.idleLanes.pop();
    while (lane?.dead) lane = this.idleLanes.pop(); // died idle (killed from outside)
    lane ??= this.newLane();
    const onAbort = () => lane.kill();
    l.signal.addEventListener("abort", onAbort, { once: true });
    let over: Launched | undefined;
    const stopWatching = watchOutput(lane.files, () => {
      over = readOutput(lane.files, null, false);
      lane.kill();
    });
    try {
      let stdinFile: string | undefined;
      if (l.stdin !== undefined) {
        writeFileSync(lane.files.stdin, l.stdin);
        stdinFile = lane.files.stdin;
      }
      const answer = await lane.ask(this.kind.request(l, lane.files, stdinFile));
      if (l.signal.aborted) return { code: null, stdout: "", stderr: "", aborted: true };
      if (over) return { ...over, overLimit: true };
      if (answer === undefined) {
        lane.killCommand();
        const r = readOutput(lane.files, null, false);
        lane.remove();
        return { ...r, stderr: `${r.stderr}wmb: ${this.kind.what} was killed while it ran (did the command kill its parent?)\n` };
      }
      return readOutput(lane.files, Number(answer), false);
    } finally {
      stopWatching();
      l.signal.removeEventListener("abort", onAbort);
      if (!lane.dead) this.idleLanes.push(lane);
    }
  }

  private newLane(): Lane {
    const dir = mkdtempSync(join(processSandboxDir(), "lane-"));
    const argv = this.kind.argv(dir);
    return new Lane(dir, { stdout: join(dir, "stdout"), stderr: join(dir, "stderr"), stdin: join(dir, "stdin"), pid: join(dir, "pid") }, setpriv ? [setpriv, "--pdeathsig", "KILL", ...argv] : argv, this.kind.preamble?.(dir));
  }
}

/** Lanes that are /bin/sh: each command runs in a subshell (laneLine). */
class ShellLanes {
  private readonly pool: LanePool;
  /** Whether this host's /bin/sh passes exactly the environment it is told (dash does; bash
   * adds SHLVL and _), asked once by running `env` through a lane. */
  readonly exact: Promise<boolean>;
  private readonly setsid = systemTool("setsid");

  constructor() {
    this.pool = new LanePool({
      what: "the shell that started the command",
      argv: () => ["/bin/sh"],
      preamble: (dir) => `trap ${shellQuote(`rm -rf ${shellQuote(dir)}`)} EXIT\n`,
      request: (l, files, stdinFile) => laneLine(l, files, stdinFile, l.ownPidNamespace ? undefined : this.setsid),
    });
    const env = { PATH: "/usr/bin:/bin" };
    this.exact = this.run({ argv: ["env"], cwd: "/", env, signal: new AbortController().signal })
      .then((r) => r.code === 0 && r.stdout === "PATH=/usr/bin:/bin\n")
      .catch(() => false);
  }

  /** A command without a PID namespace of its own needs setsid here, else it is spawned directly. */
  canRun(l: Launch): boolean {
    return l.ownPidNamespace === true || this.setsid !== undefined;
  }

  run(l: Launch): Promise<Launched> {
    return this.pool.run(l);
  }
}

let pool: ShellLanes | null | undefined;

/** The process's shell lanes, or null where /bin/sh cannot be used (not POSIX). */
function lanePool(): ShellLanes | null {
  if (pool === undefined) pool = process.platform === "win32" ? null : new ShellLanes();
  return pool;
}

/** Spawn the command from wmb's own process (the fallback): a session of its own (`detached`),
 * killed whole when its main process exits or on abort. Its output goes to files, as a lane's
 * does: a pipe would stay open as long as anything that escaped the session holds it. */
function spawnDirect(l: Launch): Promise<Launched> {
  let [file, ...args] = l.argv;
  if (l.umask !== undefined) {
    [file, ...args] = ["/bin/sh", "-c", `umask ${l.umask.toString(8).padStart(3, "0")}; exec "$@"`, "wmb-umask", ...l.argv];
  }
  const dir = mkdtempSync(join(processSandboxDir(), "direct-"));
  const files = { stdout: join(dir, "stdout"), stderr: join(dir, "stderr") };
  if (l.stdin !== undefined) writeFileSync(join(dir, "stdin"), l.stdin);
  const fds = [openSync(l.stdin !== undefined ? join(dir, "stdin") : "/dev/null", "r"), openSync(files.stdout, "w"), openSync(files.stderr, "w")];
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(file!, args, { cwd: l.cwd, env: l.env, stdio: fds, detached: true });
    } finally {
      for (const fd of fds) closeSync(fd);
    }
    const onAbort = () => killGroup(child.pid);
    l.signal.addEventListener("abort", onAbort, { once: true });
    const stopWatching = watchOutput(files, onAbort);
    let done = false;
    const finish = (code: number | null, error?: string) => {
      if (done) return;
      done = true;
      stopWatching();
      l.signal.removeEventListener("abort", onAbort);
      killGroup(child.pid);
      const r = readOutput(files, code, l.signal.aborted);
      resolve(error ? { code: null, stdout: "", stderr: error, aborted: l.signal.aborted } : r);
      rmSync(dir, { recursive: true, force: true });
    };
    child.on("error", (e) => finish(null, e.message));
    child.on("exit", (code) => finish(code));
  });
}
