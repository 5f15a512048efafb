// Removing one file that may be absent: rmSync looks (lstat) before it removes and throws
// internally, and catching unlink's ENOENT costs an exception (5-10 µs, against 1 µs for a
// stat that reports nothing); a build removes one or more files per action, most of them absent (#16).
import { lstatSync, unlinkSync } from "node:fs";

export function unlinkIfThere(file: string): void {
  if (!lstatSync(file, { throwIfNoEntry: false })) return;
  try {
    unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e; // removed meanwhile
  }
}
