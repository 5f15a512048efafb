#!/usr/bin/env node
// `npm install` runs this (prepare): bundles the engine and CLI into one CommonJS file,
// dist/wmb.cjs, so the CLI starts without a TypeScript loader. bin/wmb.mjs uses the bundle only
// while it is newer than every source file (otherwise it runs the sources through tsx), and
// compiles it with a V8 code cache (docs/ARCHITECTURE.md, "Start-up").
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
rmSync(join(root, "dist"), { recursive: true, force: true });
// One file each, not ES chunks: Node 20 keeps no code cache for ES modules, and resolving, reading
// and linking a dozen chunks costs more than one file. A module reached only through a dynamic
// import() stays lazy: esbuild runs its top level on first import. Whitespace is minified only:
// names stay, so a stack trace still reads.
const oneCommonJsFile = {
  outdir: join(root, "dist"),
  outExtension: { ".js": ".cjs" },
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  minifyWhitespace: true,
  // Non-ASCII characters escaped: bin/code-cache.cjs reads the bundle as latin1.
  charset: "ascii",
  logLevel: "warning",
};
/** An esbuild plugin that replaces `from` by `to` in the bundled file matching `filter`, and fails
 * the build when `from` is not there any more (the package changed: look again). */
function patch(filter, from, to) {
  return {
    name: `patch ${filter}`,
    setup(b) {
      b.onLoad({ filter }, (args) => {
        const text = readFileSync(args.path, "utf8");
        if (!text.includes(from)) throw new Error(`${args.path} no longer contains ${JSON.stringify(from.slice(0, 60))}: update bin/build-dist.mjs`);
        return { contents: text.replace(from, to), loader: "js" };
      });
    },
  };
}

await build({
  ...oneCommonJsFile,
  entryPoints: { wmb: join(root, "src/cli/main.ts") },
  plugins: [
    // clipanion's default context reads process.stdin (which builds a stream and loads stream
    // modules) and the terminal's colour depth as it loads: ~2 ms of every command, which reads
    // neither (#12). Both become lazy and non-enumerable: the contexts clipanion spreads from
    // it go without them (wmb sets colours itself; src/cli/main.ts gives commands stdin).
    patch(
      /clipanion[\\/]lib[\\/]advanced[\\/]Cli\.js$/,
      "Cli.defaultContext = {\n    env: process.env,\n    stdin: process.stdin,\n    stdout: process.stdout,\n    stderr: process.stderr,\n    colorDepth: platform.getDefaultColorDepth(),\n};",
      "Cli.defaultContext = Object.defineProperties({ env: process.env, stdout: process.stdout, stderr: process.stderr }, {\n" +
        "    stdin: { get: () => process.stdin },\n    colorDepth: { get: () => platform.getDefaultColorDepth() },\n});",
    ),
  ],
  // Pure-JS packages on the start-up path (clipanion, typanion, @noble/hashes, better-sqlite3's
  // JavaScript) are bundled: Node would load an external package file by file. Native addons
  // and the big, lazily used packages stay external (loaded through src/import-module.ts or require).
  external: ["@napi-rs/*", "@yowasp/*", "@bytecodealliance/*", "esbuild", "tsx", "tsx/*", "typescript", "tar"],
  define: { "import.meta.url": "__wmbBundleUrl" },
  banner: { js: 'const __wmbBundleUrl = require("node:url").pathToFileURL(__filename).href;' },
});

// The guest's runner with preview2-shim, one file for src/run/guest-runner-loader.cjs to compile
// with a code cache. The shim starts its I/O worker from a path relative to its own module: that
// path is rewritten to the same file, relative to the bundle.
const shimWorker = join(dirname(createRequire(import.meta.url).resolve("@bytecodealliance/preview2-shim/io")), "..", "io", "worker-thread.bundle.js");
await build({
  ...oneCommonJsFile,
  entryPoints: { "guest-runner": join(root, "src/run/guest-runner.mjs") },
  plugins: [
    patch(/preview2-shim[\\/]dist[\\/]io[\\/]worker-io\.js$/, 'new URL("./worker-thread.bundle.js", import.meta.url)', `require("node:path").join(__dirname, ${JSON.stringify(relative(join(root, "dist"), shimWorker))})`),
    // The loader starts the I/O worker before this bundle even compiles (a worker takes ~30 ms
    // to boot, the critical path of a warm run): the shim's first worker is that one.
    patch(
      /preview2-shim[\\/]dist[\\/]synckit[\\/]index\.js$/,
      "const { port1: mainPort, port2: workerPort } = new MessageChannel();\n    const worker = createWorker(",
      "const early = globalThis.__wmbIoWorker;\n    delete globalThis.__wmbIoWorker;\n" +
        "    const { port1: mainPort, port2: workerPort } = early ? early.channel : new MessageChannel();\n    const worker = early ? early.worker : createWorker(",
    ),
  ],
});
if (!existsSync(shimWorker)) throw new Error(`preview2-shim's worker is not at ${shimWorker}: update bin/build-dist.mjs`);
// That worker's bundle (an ES module) as CommonJS, for src/run/io-worker-loader.cjs to compile
// with a code cache.
await build({
  ...oneCommonJsFile,
  entryPoints: { "io-worker": shimWorker },
  define: { "import.meta.url": "__wmbBundleUrl" },
  banner: { js: 'const __wmbBundleUrl = require("node:url").pathToFileURL(__filename).href;' },
});

// The page `wmb serve` serves (bin/web-bundle.mjs), written to dist/web/.
const { bundleWebApp } = await import("./web-bundle.mjs");
mkdirSync(join(root, "dist", "web"), { recursive: true });
for (const [name, bytes] of Object.entries(await bundleWebApp(root))) writeFileSync(join(root, "dist", "web", name), bytes);

// `wmb --help`, rendered once here (plain and coloured), so bin/wmb.mjs prints it without
// loading the command parser.
for (const [file, color] of [["help.txt", { NO_COLOR: "1" }], ["help.color.txt", { FORCE_COLOR: "1" }]]) {
  const env = { ...process.env, ...color, WMB_FROM_SOURCE: "" };
  delete env[color.NO_COLOR ? "FORCE_COLOR" : "NO_COLOR"];
  writeFileSync(join(root, "dist", file), execFileSync(process.execPath, [join(root, "bin/wmb.mjs"), "--help"], { env }));
}
