// Where wmb's own files are, whether it runs from its TypeScript sources or from the
// prebuilt bundle in dist/: the directory of wmb's package.json. Non-TS assets (the store
// schema, worker scripts) are found from here.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const pj = join(dir, "package.json");
    if (existsSync(pj) && (JSON.parse(readFileSync(pj, "utf8")) as { name?: string }).name === "wmb") return dir;
    if (dirname(dir) === dir) throw new Error("cannot find wmb's package.json above " + fileURLToPath(import.meta.url));
  }
}

export const WMB_ROOT = findRoot();

export function wmbFile(rel: string): string {
  return join(WMB_ROOT, rel);
}
