// Where sandboxes (and the launcher's files) are made. Every action creates and removes a
// directory and its files; on a disk filesystem each is an inode allocated and freed, and ext4
// without a journal skips recently freed inodes when allocating, so a build that frees thousands
// slows down with every action (#16: half a cold build's CPU went to that scan). A tmpfs has
// none of it: /dev/shm is used when it can serve, as Bazel's --sandbox_base=/dev/shm does.
import { accessSync, constants as fsc, readFileSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";

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
