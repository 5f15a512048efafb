// An action's sandbox: a fresh directory holding only its declared inputs, a scrubbed
// environment, and the collection of its declared outputs afterwards.
import { spawn } from "node:child_process";
import { constants as fsc, promises as fsp } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { WmbError } from "./errors.ts";
import { CommandError, tailLines, type ExecOptions, type ExecResult } from "../rules/rule.ts";

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
}

export async function createSandboxDir(label: string, variation: SandboxVariation = {}): Promise<string> {
  const root = variation.tmpRoot ?? tmpdir();
  await fsp.mkdir(root, { recursive: true });
  const safe = label.replace(/[^A-Za-z0-9_.-]+/g, "_").slice(0, 60);
  return fsp.mkdtemp(join(root, `wmb-${safe}-`));
}

export async function removeSandboxDir(dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true, maxRetries: 2 });
}

/** Copy a source file into the sandbox at `rel`, read-only. */
export async function placeFile(src: string, dir: string, rel: string): Promise<string> {
  const dest = join(dir, rel);
  await fsp.mkdir(dirname(dest), { recursive: true });
  await fsp.copyFile(src, dest, fsc.COPYFILE_FICLONE);
  await fsp.chmod(dest, 0o444);
  return dest;
}

/** Run a host command in the sandbox with exactly `env`. Killed (whole process group) on abort. */
export function execInSandbox(
  argv: string[],
  dir: string,
  env: Readonly<Record<string, string>>,
  signal: AbortSignal,
  opts: ExecOptions & { umask?: number } = {},
): Promise<ExecResult> {
  if (argv.length === 0) return Promise.reject(new Error("empty command"));
  const cwd = opts.cwd ? join(dir, opts.cwd) : dir;
  const fullEnv = { ...env, ...(opts.env ?? {}) };
  let file = argv[0]!;
  let args = argv.slice(1);
  if (opts.umask !== undefined) {
    args = ["-c", `umask ${opts.umask.toString(8).padStart(3, "0")}; exec "$@"`, "wmb-umask", ...argv];
    file = "/bin/sh";
  }
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd, env: fullEnv, stdio: ["pipe", "pipe", "pipe"], detached: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const onAbort = () => {
      try {
        if (child.pid) process.kill(-child.pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    };
    signal.addEventListener("abort", onAbort, { once: true });
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e) => {
      signal.removeEventListener("abort", onAbort);
      reject(new CommandError(argv.join(" "), null, e.message));
    });
    child.on("close", (code) => {
      signal.removeEventListener("abort", onAbort);
      const stdout = Buffer.concat(out).toString("utf8");
      const stderr = Buffer.concat(err).toString("utf8");
      if (signal.aborted) reject(new WmbError("INTERRUPTED", "Interrupted."));
      else if (code === 0) resolve({ stdout, stderr });
      else reject(new CommandError(argv.join(" "), code, tailLines(stderr || stdout)));
    });
    child.stdin.on("error", () => {});
    if (opts.stdin !== undefined) child.stdin.end(opts.stdin);
    else child.stdin.end();
  });
}
