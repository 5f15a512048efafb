// The page `wmb serve` serves, bundled from src/web/page/ with esbuild: app.js (the pages, with
// preact), run-worker.js (runs a machine in a Web Worker on preview2-shim's browser
// implementation) and app.css. bin/build-dist.mjs writes them to dist/web/ at `npm install`;
// src/web/assets.ts bundles them in memory when the sources are newer. Nothing is fetched from
// anywhere at run time: every byte the page runs is in these files.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** @param {string} root wmb's directory. @returns {Promise<Record<string, Uint8Array>>} */
export async function bundleWebApp(root) {
  const page = join(root, "src/web/page");
  const result = await build({
    entryPoints: { app: join(page, "app.tsx"), "run-worker": join(page, "run-worker.ts") },
    bundle: true,
    write: false,
    outdir: "/web",
    format: "esm",
    platform: "browser",
    target: "chrome120",
    minify: true,
    jsx: "automatic",
    jsxImportSource: "preact",
    charset: "utf8",
    legalComments: "none",
    logLevel: "warning",
    plugins: [browserDigest(page)],
  });
  const files = {};
  for (const f of result.outputFiles) files[f.path.slice("/web/".length)] = f.contents;
  files["app.css"] = readFileSync(join(page, "app.css"));
  return files;
}

/** The spec code (src/formats/machine-spec.ts) hashes through src/digest.ts, whose native
 * hasher is Node's: in the page the same checks hash with @noble/hashes. */
function browserDigest(page) {
  return {
    name: "browser-digest",
    setup(b) {
      b.onResolve({ filter: /[\\/]digest\.ts$/ }, () => ({ path: join(page, "browser-digest.ts") }));
    },
  };
}
