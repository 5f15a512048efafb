// Where sandboxes (and the launcher's files) are made. Every action creates and removes a
// directory and its files; on a disk filesystem each is an inode allocated and freed, and ext4
// without a journal skips recently freed inodes when allocating, so a build that frees thousands
// slows down with every action (#16: half a cold build's CPU went to that scan). A tmpfs has
// none of it: /dev/shm is used when it has room, as Bazel's --sandbox_base=/dev/shm does.
import { accessSync, constants as fsc, statfsSync } from "node:fs";
import { tmpdir } from "node:os";

/** Below this much free space (a container's 64 MB /dev/shm), sandboxes stay on disk. */
const MIN_FREE_BYTES = 1 << 30;

let base: string | undefined;

/** WMB_SANDBOX_BASE when set; else /dev/shm when it is writable with 1 GiB free; else the
 * temporary directory. Decided once per process. */
export function sandboxBase(): string {
  return (base ??= process.env.WMB_SANDBOX_BASE || (roomyTmpfs("/dev/shm") ? "/dev/shm" : tmpdir()));
}

function roomyTmpfs(dir: string): boolean {
  try {
    accessSync(dir, fsc.W_OK);
    const s = statfsSync(dir);
    return s.bavail * s.bsize >= MIN_FREE_BYTES;
  } catch {
    return false;
  }
}
