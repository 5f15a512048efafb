// Removing one file that may be absent, in one call: rmSync looks (lstat) before it removes,
// twice the calls where a build removes one or more files per action (#16).
import { unlinkSync } from "node:fs";

export function unlinkIfThere(file: string): void {
  try {
    unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}
