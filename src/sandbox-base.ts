// Where sandboxes (and the launcher's files) are made. Every action creates and removes a
// directory and its files; on a disk filesystem each is an inode allocated and freed, and ext4
// without a journal skips recently freed inodes when allocating, so a build that frees thousands
// slows down with every action (#16: half a cold build's CPU went to that scan). A tmpfs has
// none of it: /dev/shm is used when it can serve, as Bazel's --sandbox_base=/dev/shm does.
//
// Each process makes its sandboxes and lanes inside one directory of its own there, with an
// `owner` file naming the process (pid, start time, boot: store/process-identity.ts). A build
// killed with SIGKILL removes nothing, so the next process to make one sweeps the base once:
// a directory whose owner is dead goes, one whose owner lives (or of another host) stays.
import { accessSync, constants as fsc, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatIdentity, liveness, parseIdentity, selfIdentity } from "../store/process-identity.ts";

/** Below this much free space (a container's 64 MB /dev/shm), sandboxes stay on disk. */
const MIN_FREE_BYTES = 1 << 30;

let base: string | undefined;

/** WMB_SANDBOX_BASE when set; else /dev/shm when it is writable, allows executing files (an
 * action may run a tool an earlier one built) and has 1 GiB free; else the temporary directory.
 * Decided once per process. */
export function sandboxBase(): string {
  return (base ??= process.env.WMB_SANDBOX_BASE || (usable("/dev/shm") ? "/dev/shm" : tmpdir()));
}

function usable(dir: string): boolean {
  try {
    accessSync(dir, fsc.W_OK);
    const s = statfsSync(dir);
    return s.bavail * s.bsize >= MIN_FREE_BYTES && !mountOptions(dir).includes("noexec");
  } catch {
    return false;
  }
}

/** The options of the filesystem mounted at `dir` (the last mount there wins), from /proc. */
export function mountOptions(dir: string, mounts = readFileSync("/proc/self/mounts", "utf8")): string[] {
  let options: string[] = [];
  for (const line of mounts.split("\n")) {
    const [, mountPoint, , opts] = line.split(" ");
    if (mountPoint === dir && opts) options = opts.split(",");
  }
  return options;
}

const OWNER_FILE = "owner";
let own: string | undefined;

/** This process's directory under the sandbox base, made (after a sweep) on first use and
 * removed when the process exits. */
export function processSandboxDir(): string {
  if (own) return own;
  const root = sandboxBase();
  mkdirSync(root, { recursive: true });
  sweepDeadSandboxes(root);
  return (own = ownedDir(root, "wmb-run-"));
}

/** A directory under `root` named `prefix` + a random suffix (prefix starting "wmb-run-": the
 * sweep's), with this process as its owner, removed when the process exits. */
export function ownedDir(root: string, prefix: string): string {
  const dir = mkdtempSync(join(root, prefix));
  writeFileSync(join(dir, OWNER_FILE), formatIdentity(selfIdentity()) + "\n");
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Remove the directories under `root` (the sandbox base) whose owning process is dead: pid,
 * start time and boot id, so a reused pid keeps none alive. Returns how many went. Cheap: one
 * directory listing and one small read per directory of another process. */
export function sweepDeadSandboxes(root: string = sandboxBase()): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!name.startsWith("wmb-run-")) continue;
    const dir = join(root, name);
    let owner;
    try {
      owner = parseIdentity(readFileSync(join(dir, OWNER_FILE), "utf8"));
    } catch {
      continue; // being made (its owner file comes next), or not wmb's
    }
    if (!owner || liveness(owner) !== "dead") continue;
    try {
      rmSync(dir, { recursive: true, force: true });
      removed++;
    } catch {
      /* another sweep got there first */
    }
  }
  return removed;
}
