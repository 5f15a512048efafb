// An action's sandbox: a fresh directory holding only its declared inputs, a scrubbed
// environment, and the collection of its declared outputs afterwards. Host commands run in it
// under bwrap (sandbox-bwrap.ts) when it works: then they see nothing else of the host.
import { chmodSync, constants as fsc, copyFileSync, mkdirSync, mkdtempSync, rmdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { WmbError } from "./errors.ts";
import { CommandError, tailLines, type ExecOptions, type ExecResult, type Toolchain } from "../rules/rule.ts";
import { bwrapArgs, probeBwrap, SANDBOX_BUILD_DIR } from "./sandbox-bwrap.ts";
import { launch, OUTPUT_LIMIT_BYTES, type Launched } from "./launcher.ts";
import { sandboxLanes } from "./sandbox-lane.ts";
import { processSandboxDir, sandboxBase } from "./sandbox-base.ts";
import { unlinkIfThere } from "./unlink-if-there.ts";

/** The fixed part of every action's environment. SOURCE_DATE_EPOCH is part of the key. */
export const SANDBOX_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/local/bin:/usr/bin:/bin",
  TZ: "UTC",
  LC_ALL: "C",
  LANG: "C",
  SOURCE_DATE_EPOCH: "0",
  HOME: "/nonexistent",
};

/** How a sandbox may differ from the default (wmb verify varies these). */
export interface SandboxVariation {
  /** Where sandboxes are created (another path, another filesystem). */
  tmpRoot?: string;
  /** Overrides of the action's environment that do not enter the key (TZ, locale, clock). */
  env?: Record<string, string>;
  umask?: number;
  /** Materialize inputs in reverse order (changes directory listing order on some filesystems). */
  reverseInputs?: boolean;
  /** Where the action's directory appears inside bwrap (default SANDBOX_BUILD_DIR): verify
   * varies it, since the host path (tmpRoot) no longer reaches a sandboxed command. */
  buildDir?: string;
}

/** --sandbox: bwrap when it works (auto), always (bwrap: a build fails when it cannot), never. */
export type SandboxMode = "auto" | "bwrap" | "none";
export const SANDBOX_MODES: readonly SandboxMode[] = ["auto", "bwrap", "none"];

/** How an action's result was made, recorded with it: its host commands ran under bwrap, or
 * unsandboxed, or it ran none (rule code in wmb, or clang inside WebAssembly under WASI preopens). */
export type SandboxUse = "bwrap" | "none" | "in-process";

/** The mode a build uses: the flag, else WMB_SANDBOX, else the workspace's wmb.json, else auto. */
export function sandboxMode(flag: SandboxMode | undefined, configured: SandboxMode | undefined, env: string | undefined = process.env.WMB_SANDBOX): SandboxMode {
  if (flag) return flag;
  if (env === undefined || env === "") return configured ?? "auto";
  if ((SANDBOX_MODES as readonly string[]).includes(env)) return env as SandboxMode;
  throw new WmbError("USAGE", `WMB_SANDBOX is "${env}"; set it to one of ${SANDBOX_MODES.join(", ")}, or unset it.`);
}

/** How host commands run, decided once per build (or per verify, across its rounds). */
export type CommandRunner = { kind: "bwrap"; bwrap: string } | { kind: "none" };

/** The host commands of one action: `exec` runs one in the action's sandbox, which shows the
 * action's directory `hostDir` at `visibleDir()` (SANDBOX_BUILD_DIR under bwrap). */
export interface ActionCommands {
  readonly hostDir: string;
  visibleDir(): Promise<string>;
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
}

/** A toolchain that runs host processes (the system one): each action gets a view of it whose
 * commands run in that action's sandbox. The hermetic toolchain runs in WebAssembly instead. */
export interface HostToolchain extends Toolchain {
  inSandbox(commands: ActionCommands): Toolchain;
}

export function runsHostCommands(tc: Toolchain): tc is HostToolchain {
  return typeof (tc as Partial<HostToolchain>).inSandbox === "function";
}

/** Resolves a mode to a runner on first use (a no-op build probes nothing); `auto` without a
 * working bwrap warns once, through `warn`, and runs commands unsandboxed. */
export class SandboxChoice {
  private runner?: Promise<CommandRunner>;

  constructor(
    readonly mode: SandboxMode,
    private readonly warn: (message: string) => void,
  ) {}

  resolve(): Promise<CommandRunner> {
    this.runner ??= (async (): Promise<CommandRunner> => {
      if (this.mode === "none") return { kind: "none" };
      const probe = await probeBwrap();
      if (probe.ok) return { kind: "bwrap", bwrap: probe.bwrap };
      if (this.mode === "bwrap") throw new WmbError("SANDBOX", `--sandbox bwrap: ${probe.reason}.`);
      this.warn(`command actions run unsandboxed (they can read the whole host): ${probe.reason}, or pass --sandbox none to silence this.`);
      return { kind: "none" };
    })();
    return this.runner;
  }
}

// Synchronous on purpose: each call is microseconds, an asynchronous one a thread-pool round trip.
const madeRoots = new Set<string>();

/** In this process's directory under the sandbox base (swept once its owner is dead), or under
 * a variation's own root. */
export async function createSandboxDir(label: string, variation: SandboxVariation = {}): Promise<string> {
  const root = variation.tmpRoot ?? processSandboxDir();
  if (!madeRoots.has(root)) {
    mkdirSync(root, { recursive: true });
    madeRoots.add(root);
  }
  const safe = label.replace(/[^A-Za-z0-9_.-]+/g, "_").slice(0, 60);
  return mkdtempSync(join(root, `${safe}-`));
}

/** Remove an action's sandbox: the files wmb put there or expected back (`files`, relative),
 * then their directories, deepest first. One the command left more in is removed recursively.
 * Synchronous: each call is microseconds, where a recursive removal walks the tree at a
 * thread-pool round trip per entry, on the thread that runs the build (#16). */
export function removeSandboxDir(dir: string, files: readonly string[]): void {
  try {
    const dirs = new Set<string>();
    for (const rel of files) {
      unlinkIfThere(join(dir, rel));
      for (let d = dirname(rel); d !== "." && d !== "/"; d = dirname(d)) dirs.add(d);
    }
    for (const d of [...dirs].sort((a, b) => b.length - a.length)) rmdirSync(join(dir, d));
    rmdirSync(dir);
  } catch {
    rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
  }
}

/** `dir`/`rel`, with its parent directory made when it is not `dir` itself. */
export function sandboxPath(dir: string, rel: string): string {
  const dest = join(dir, rel);
  const parent = dirname(dest);
  if (parent !== dir) mkdirSync(parent, { recursive: true });
  return dest;
}

/** Copy a source file into the sandbox at `rel`, read-only. */
export async function placeFile(src: string, dir: string, rel: string): Promise<string> {
  const dest = sandboxPath(dir, rel);
  copyFileSync(src, dest, fsc.COPYFILE_FICLONE);
  chmodSync(dest, 0o444);
  return dest;
}

/** Run a host command in the sandbox with exactly `env`. Killed (whole process group) on abort.
 * With a bwrap runner it sees `dir` at `buildDir` (default SANDBOX_BUILD_DIR), /usr read-only,
 * and nothing else of the host; without one, it runs in `dir` on the host. */
export async function execInSandbox(
  argv: string[],
  dir: string,
  env: Readonly<Record<string, string>>,
  signal: AbortSignal,
  opts: ExecOptions & { umask?: number; runner?: CommandRunner; buildDir?: string } = {},
): Promise<ExecResult> {
  if (argv.length === 0) throw new Error("empty command");
  const buildDir = opts.buildDir ?? SANDBOX_BUILD_DIR;
  const bwrap = opts.runner?.kind === "bwrap" ? opts.runner.bwrap : undefined;
  const fullEnv = { ...env, ...(opts.env ?? {}) };
  const lanes = bwrap ? await sandboxLanes(bwrap, dir, buildDir) : undefined;
  let r: Launched;
  if (lanes) {
    r = await lanes.run({ argv, cwd: dir, inside: opts.cwd, env: fullEnv, umask: opts.umask, stdin: opts.stdin, signal });
  } else {
    // A bwrap of its own: the command's working directory is set inside the sandbox (bwrapArgs).
    const command = bwrap ? [bwrap, ...bwrapArgs(dir, buildDir, opts.cwd, argv)] : argv;
    const cwd = opts.cwd && !bwrap ? join(dir, opts.cwd) : dir;
    r = await launch({ argv: command, cwd, env: fullEnv, umask: opts.umask, stdin: opts.stdin, signal, ownPidNamespace: bwrap !== undefined });
  }
  if (r.aborted) throw new WmbError("INTERRUPTED", "Interrupted.");
  if (r.code === 0) return { stdout: r.stdout, stderr: r.stderr };
  const tail = tailLines(r.stderr || r.stdout);
  if (r.overLimit) throw new CommandError(argv.join(" "), null, tail, `was killed after writing more than ${OUTPUT_LIMIT_BYTES >> 20} MiB to stdout and stderr, the most a command may (write large output to a file, or to /dev/null)`);
  throw new CommandError(argv.join(" "), r.code, withHints(tail, bwrap ? buildDir : undefined, dir));
}

/** What most often explains a failed command's output, said after it. */
function withHints(output: string, buildDir: string | undefined, dir: string): string {
  return withNoSpaceHint(withUndeclaredHint(output, buildDir), dir);
}

/** Sandboxes live on a tmpfs when one has room at start (sandbox-base.ts); a large action can
 * still fill it. */
function withNoSpaceHint(output: string, dir: string): string {
  if (!/No space left on device/i.test(output)) return output;
  const where = dir.startsWith(sandboxBase() + "/") ? sandboxBase() : dirname(dir);
  return `${output}\nhint: actions run in ${where} (a tmpfs when one had room); if it filled up, set WMB_SANDBOX_BASE to a directory on a larger filesystem.`;
}

/** A sandboxed command that misses a file most often reads one it never declared. */
function withUndeclaredHint(output: string, buildDir: string | undefined): string {
  if (!buildDir || !/No such file or directory|can't open|cannot open/i.test(output)) return output;
  return `${output}\nhint: the sandbox holds only the action's declared inputs (at ${buildDir}) and /usr; a file it reads may need to be declared in \`srcs\`.`;
}
