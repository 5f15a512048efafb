// Sandboxed lanes (#27): bwrap's set-up (user, mount, PID, network, IPC and UTS namespaces, the
// root it builds) paid once per lane instead of once per command. A lane is one long-lived bwrap
// running a small perl agent (src/sandbox-lane-agent.pl, 5 MB resident; a node one would be 40),
// which gives each command a view of its own: new mount, PID and IPC namespaces, its action
// directory at the build path, fresh /tmp and /dev/shm, a /proc of its own processes, everything
// else read-only, and none of the capabilities that could change what the lane's next command
// sees. The command is pid 1 of its PID namespace: when it exits, the kernel kills what it left
// running. Where a lane cannot be used (no perl under /usr, an architecture whose syscall numbers
// are not listed, a bwrap that refuses --cap-add), each command gets a bwrap of its own, as before.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { basename, dirname, join, posix } from "node:path";
import { LanePool, type Launch, type Launched, type LaneFiles } from "./launcher.ts";
import { laneBwrapArgs, LANE_ACTIONS_DIR, LANE_FILES_DIR, LANE_HIDDEN_DIR } from "./sandbox-bwrap.ts";
import { wmbFile } from "./repo-root.ts";

const PERL = "/usr/bin/perl";

/** The agent's system calls: clone, mount, prctl, capget, capset, exit_group. */
const SYSCALLS: Partial<Record<NodeJS.Architecture, readonly number[]>> = {
  x64: [56, 165, 157, 125, 126, 231],
  arm64: [220, 40, 167, 90, 91, 94],
};

/** A command to run in a sandboxed lane: `cwd` is its action directory on the host, which it
 * sees at `buildDir`, working in `buildDir`/`inside`. */
export interface SandboxedLaunch extends Launch {
  inside?: string;
}

/** The lanes of one bwrap, actions root and build path, once a first command ran in one. */
class SandboxLanes {
  private readonly pool: LanePool;
  /** Whether a lane runs a command here at all (a `true`, on the first lane). */
  readonly works: Promise<boolean>;

  constructor(
    bwrap: string,
    root: string,
    private readonly buildDir: string,
  ) {
    const agent = readFileSync(wmbFile("src/sandbox-lane-agent.pl"), "utf8");
    const syscalls = SYSCALLS[process.arch]!.map(String);
    this.pool = new LanePool({
      what: "the sandbox that ran the command",
      argv: (dir) => [bwrap, ...laneBwrapArgs(dir, root, buildDir), "--", PERL, "-e", agent, ...syscalls, LANE_HIDDEN_DIR],
      request: (l, files, stdinFile) => this.request(l as SandboxedLaunch, files, stdinFile),
    });
    const probe = mkdtempSync(join(root, "lane-probe-"));
    this.works = this.pool
      .run({ argv: ["/usr/bin/true"], cwd: probe, env: {}, signal: new AbortController().signal })
      .then((r) => r.code === 0)
      .catch(() => false)
      .finally(() => rmSync(probe, { recursive: true, force: true }));
  }

  run(l: SandboxedLaunch): Promise<Launched> {
    return this.pool.run(l);
  }

  /** One request for the agent: NUL-terminated fields, each tagged by its first character. */
  private request(l: SandboxedLaunch, files: LaneFiles, stdinFile: string | undefined): string {
    const inLane = (hostFile: string) => posix.join(LANE_FILES_DIR, basename(hostFile));
    const fields = [
      `d${posix.join(LANE_ACTIONS_DIR, basename(l.cwd))}`,
      `b${this.buildDir}`,
      `c${l.inside ? posix.join(this.buildDir, l.inside) : this.buildDir}`,
      `o${inLane(files.stdout)}`,
      `r${inLane(files.stderr)}`,
    ];
    if (stdinFile) fields.push(`i${inLane(stdinFile)}`);
    if (l.umask !== undefined) fields.push(`u${l.umask.toString(8).padStart(3, "0")}`);
    for (const [k, v] of Object.entries(l.env)) fields.push(`e${k}=${v}`);
    for (const a of l.argv) fields.push(`a${a}`);
    fields.push(".");
    return fields.map((f) => `${f}\0`).join("");
  }
}

const lanes = new Map<string, SandboxLanes>();

/** The sandboxed lanes that can run a command in `actionDir` (a directory of its own right under
 * the actions root), or undefined when this host cannot run them. */
export async function sandboxLanes(bwrap: string, actionDir: string, buildDir: string): Promise<SandboxLanes | undefined> {
  if (!SYSCALLS[process.arch] || !existsSync(PERL)) return undefined;
  const root = dirname(actionDir);
  const id = `${bwrap}\0${root}\0${buildDir}`;
  let l = lanes.get(id);
  if (!l) lanes.set(id, (l = new SandboxLanes(bwrap, root, buildDir)));
  return (await l.works) ? l : undefined;
}
