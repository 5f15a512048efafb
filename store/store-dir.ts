// The store's directory: created when missing, refused at once when it cannot hold a store.
// Node 20's mkdirSync(…, {recursive: true}) spins forever on some paths (under /proc it retries
// ENOENT millions of times), so missing components are created one at a time, after the nearest
// existing ancestor has been checked to be a writable directory on a real filesystem.
import { accessSync, constants, mkdirSync, statfsSync, statSync, type Stats } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { WmbError } from "../src/errors.ts";

/** statfs magic numbers of kernel pseudo-filesystems, where no file can be stored. */
const PSEUDO_FILESYSTEMS: Record<number, string> = {
  0x9fa0: "procfs",
  0x62656572: "sysfs",
  0x1cd1: "devpts",
  0x64626720: "debugfs",
  0x27e0eb: "cgroupfs",
  0x63677270: "cgroup2fs",
  0x73636673: "securityfs",
};

/** $WMB_STORE, else <workspace>/.wmb (the workspace is found only when needed). */
export function defaultStoreDir(workspace: () => string): string {
  return process.env.WMB_STORE ? resolve(process.env.WMB_STORE) : join(workspace(), ".wmb");
}

export function ensureStoreDir(abs: string): void {
  const missing: string[] = [];
  let existing = abs;
  let st = statOrMissing(existing);
  while (st === undefined) {
    missing.unshift(existing);
    const parent = dirname(existing);
    if (parent === existing) break;
    existing = parent;
    st = statOrMissing(existing);
  }
  if (st && !st.isDirectory()) refuse(abs, `${existing} is ${existing === abs ? "a file, not a directory" : "a file, so nothing can be created under it"}`);
  const pseudo = PSEUDO_FILESYSTEMS[Number(statfsSync(existing).type)];
  if (pseudo) refuse(abs, `${existing} is on ${pseudo}, a kernel pseudo-filesystem that cannot hold files`);
  try {
    accessSync(existing, constants.W_OK | constants.X_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    refuse(abs, code === "EROFS" ? `${existing} is on a read-only filesystem` : `${existing} is not writable by this user (${code})`);
  }
  for (const dir of missing) {
    try {
      mkdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") refuse(abs, `creating ${dir} failed (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
}

/** undefined when nothing is at `p` (or a file sits where a directory of the path should be). */
function statOrMissing(p: string): Stats | undefined {
  try {
    return statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw new WmbError("STORE", `Cannot use ${p} for the store: ${code ?? (e as Error).message}; choose another --store or WMB_STORE.`, { subject: p });
  }
}

function refuse(abs: string, why: string): never {
  throw new WmbError("STORE", `Cannot use ${abs} as the store: ${why}; choose another --store or WMB_STORE.`, { subject: abs });
}
