// The installed version of an npm package, for keys that depend on a tool's bits.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const versions = new Map<string, string>();

/** Works for packages that do not export their package.json. */
export function packageVersion(name: string): string {
  let version = versions.get(name);
  if (version === undefined) versions.set(name, (version = findVersion(name)));
  return version;
}

function findVersion(name: string): string {
  const require = createRequire(import.meta.url);
  // Where Node would look, without resolving the package's entry point (exports maps and all:
  // milliseconds on a short command's path, #12).
  for (const modules of require.resolve.paths(name) ?? []) {
    const pj = join(modules, name, "package.json");
    if (existsSync(pj)) return (JSON.parse(readFileSync(pj, "utf8")) as { version: string }).version;
  }
  // Walk up from the entry point.
  let dir = dirname(require.resolve(name));
  for (;;) {
    const pj = join(dir, "package.json");
    if (existsSync(pj)) {
      const json = JSON.parse(readFileSync(pj, "utf8")) as { name?: string; version: string };
      if (json.name === name) return json.version;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the package.json of ${name}`);
    dir = parent;
  }
}
