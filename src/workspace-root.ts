// Where the workspace is (the nearest directory with BUILD.ts) and where a store keeps compiled
// BUILD.ts files: small, so every command can ask without loading the rules.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { WmbError } from "./errors.ts";

export function findWorkspaceRoot(start: string): string {
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, "BUILD.ts"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) {
      throw new WmbError("BUILD_FILE", `No BUILD.ts in ${resolve(start)} or any parent directory; run wmb inside a workspace or pass --workspace DIR.`);
    }
    dir = parent;
  }
}

/** Where a store keeps compiled BUILD.ts files. */
export function buildFileCache(storeDir: string): string {
  return join(storeDir, "buildfile");
}
