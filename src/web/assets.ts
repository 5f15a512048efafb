// The page's bundled files: dist/web/ as `npm install` wrote it (bin/build-dist.mjs), or, when a
// source of the page is newer than that, bundled again in memory (so an edit shows at once).
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { wmbFile } from "../repo-root.ts";
import { importModule } from "../import-module.ts";
import { ASSETS } from "./routes.ts";

/** The page reads these sources; any of them newer than dist/web/ means bundling again. */
const SOURCES = ["src/web/page", "src/formats", "src/errors.ts", "src/label.ts", "src/remote/oci/reference.ts"];

export async function webAssets(): Promise<Record<string, Uint8Array>> {
  const dist = wmbFile("dist/web");
  if (fresh(dist)) return Object.fromEntries(ASSETS.map((name) => [name, readFileSync(join(dist, name))]));
  const { bundleWebApp } = await importModule<{ bundleWebApp(root: string): Promise<Record<string, Uint8Array>> }>(pathToFileURL(wmbFile("bin/web-bundle.mjs")).href);
  return bundleWebApp(wmbFile(""));
}

function fresh(dist: string): boolean {
  if (!ASSETS.every((a) => existsSync(join(dist, a)))) return false;
  const built = Math.min(...ASSETS.map((a) => statSync(join(dist, a)).mtimeMs));
  return SOURCES.every((s) => newest(wmbFile(s)) <= built);
}

function newest(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let n = 0;
  for (const e of readdirSync(path)) n = Math.max(n, newest(join(path, e)));
  return n;
}
