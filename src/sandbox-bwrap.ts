// bubblewrap (Debian's `bwrap`, the sandbox Flatpak uses): whether it works on this host, and
// the argv that runs one command of an action inside it. Like Nix's `/build`, the action's
// directory appears at one fixed path, so no host path can reach an output.
import { spawn } from "node:child_process";
import { accessSync, constants as fsc, statSync } from "node:fs";
import { join, posix } from "node:path";

/** Where an action's directory appears inside the sandbox, on every host and every run. */
export const SANDBOX_BUILD_DIR = "/build";

/** The host trees commands may read: Debian's toolchain (clang, lld, wasi-libc, compiler-rt)
 * lives entirely under /usr (`dpkg -L` lists nothing of it elsewhere); /bin, /lib and /lib64 are
 * the usual merged-/usr symlinks. Nothing of /etc is needed: no file of it is bound. */
const READ_ONLY_TREES = ["/usr"];
const USR_SYMLINKS: [string, string][] = [
  ["usr/bin", "/bin"],
  ["usr/lib", "/lib"],
  ["usr/lib64", "/lib64"],
  ["usr/sbin", "/sbin"],
];

export type BwrapProbe = { ok: true; bwrap: string } | { ok: false; reason: string };

/** The flags every sandboxed command gets: new mount, network, PID, IPC, UTS (and user, where
 * allowed) namespaces; killed with wmb; a new session, so it cannot push keystrokes into wmb's
 * terminal (TIOCSTI); a neutral host name; only /usr of the host, read-only. What a command
 * leaves running dies when it exits through both of the PID namespace and --die-with-parent:
 * bwrap returns once the command exits, but its init in the namespace waits for every process
 * there, and only --die-with-parent kills that init (and so the namespace) when bwrap returns,
 * or when its lane dies with wmb (test/sandbox.test.ts breaks without either). */
function baseArgs(): string[] {
  const args = ["--unshare-all", "--die-with-parent", "--new-session", "--hostname", "wmb"];
  for (const tree of READ_ONLY_TREES) args.push("--ro-bind", tree, tree);
  for (const [target, link] of USR_SYMLINKS) args.push("--symlink", target, link);
  args.push("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp");
  return args;
}

/** bwrap's arguments that run `argv` with the host directory `hostDir` read-write at
 * `buildDir`, in `buildDir`/`cwd`. The environment is the one bwrap itself is given. */
export function bwrapArgs(hostDir: string, buildDir: string, cwd: string | undefined, argv: readonly string[]): string[] {
  const inside = cwd ? posix.join(buildDir, cwd) : buildDir;
  return [...baseArgs(), "--bind", hostDir, buildDir, "--chdir", inside, "--", ...argv];
}

/** Inside a sandboxed lane (sandbox-lane.ts): the lane's own files, and the actions root (every
 * action directory of the process), both under one directory each command finds covered. */
export const LANE_HIDDEN_DIR = "/.wmb-lane";
export const LANE_FILES_DIR = `${LANE_HIDDEN_DIR}/lane`;
export const LANE_ACTIONS_DIR = `${LANE_HIDDEN_DIR}/actions`;

/** bwrap's arguments for a sandboxed lane, whose files are in `laneDir` and whose commands' action
 * directories are under `actionsRoot`, each appearing at `buildDir` in turn. Its agent keeps
 * CAP_SYS_ADMIN in the lane's user namespace to make each command's view (its commands lose it);
 * the root and /dev are read-only, so what one command could write there no later one sees. */
export function laneBwrapArgs(laneDir: string, actionsRoot: string, buildDir: string): string[] {
  return [
    ...baseArgs(),
    ...["--cap-add", "CAP_SYS_ADMIN", "--bind", laneDir, LANE_FILES_DIR, "--bind", actionsRoot, LANE_ACTIONS_DIR, "--dir", buildDir],
    ...["--remount-ro", "/", "--remount-ro", "/dev", "--chdir", "/"],
  ];
}

/** The first executable `name` on `path` (a PATH value), as spawn would find it. */
function onPath(name: string, path: string): string | undefined {
  for (const dir of path.split(":")) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, fsc.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

function run(file: string, args: string[]): Promise<{ code: number | null; stderr: string; error?: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"], env: { PATH: "/usr/bin:/bin" } });
    const err: Buffer[] = [];
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e) => resolve({ code: null, stderr: "", error: e.message }));
    child.on("close", (code) => resolve({ code, stderr: Buffer.concat(err).toString("utf8").trim() }));
  });
}

/** Why a failed trial run failed, with what to do, in one sentence. */
function failureReason(stderr: string): string {
  const first = stderr.split("\n")[0] ?? "";
  if (/namespace|uid map|setgroups|Operation not permitted|Permission denied/i.test(stderr)) {
    return `bwrap cannot create namespaces here (${first}): user namespaces are disabled or restricted; check \`sysctl user.max_user_namespaces\` (must be above 0) and, where they exist, \`sysctl kernel.unprivileged_userns_clone\` (must be 1) and \`sysctl kernel.apparmor_restrict_unprivileged_userns\` (must be 0), or run wmb where they are allowed`;
  }
  return `bwrap does not work here (${first || "it failed without a message"}); run \`bwrap --unshare-all --ro-bind /usr /usr /usr/bin/true\` to see why`;
}

const probes = new Map<string, Promise<BwrapProbe>>();

/** Whether bwrap is on `path` and can run a command in the sandbox wmb uses: checked once per
 * process and PATH (a `--version` and one tiny sandboxed `true`, a few milliseconds). */
export function probeBwrap(path: string = process.env.PATH ?? ""): Promise<BwrapProbe> {
  let p = probes.get(path);
  if (!p) {
    p = (async (): Promise<BwrapProbe> => {
      const bwrap = onPath("bwrap", path);
      if (!bwrap) return { ok: false, reason: "bwrap is not on PATH; install it with `apt-get install bubblewrap`" };
      const version = await run(bwrap, ["--version"]);
      if (version.code !== 0) return { ok: false, reason: `${bwrap} --version failed (${version.error ?? version.stderr}); reinstall it with \`apt-get install --reinstall bubblewrap\`` };
      const trial = await run(bwrap, [...baseArgs(), "--chdir", "/", "--", "/usr/bin/true"]);
      if (trial.code !== 0) return { ok: false, reason: failureReason(trial.error ?? trial.stderr) };
      return { ok: true, bwrap };
    })();
    probes.set(path, p);
  }
  return p;
}
