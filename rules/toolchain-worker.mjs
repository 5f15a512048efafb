// One worker of the hermetic toolchain pool (plain JS so it starts under node, tsx and
// vitest alike). It loads @yowasp/clang once and then runs clang/wasm-ld requests: the
// action's sandbox directory becomes the root of the tool's virtual file tree, and the
// files the tool created or changed are written back to the sandbox.
import { parentPort, workerData } from "node:worker_threads";
import { promises as fsp } from "node:fs";
import { dirname, join } from "node:path";

// The main thread compiled the LLVM modules once; hand those to YoWASP instead of letting
// every worker compile 75 MB of wasm again (and share its lazily compiled, tiered-up code).
// YoWASP reads each module from disk and compiles it with compileStreaming; we recognise
// the response by its byte length, which the main thread checked to be unique.
const shared = new Map(workerData.modules.map(([size, module]) => [size, module]));
const compileStreaming = WebAssembly.compileStreaming;
WebAssembly.compileStreaming = async (source) => {
  const response = await source;
  const module = shared.get(Number(response.headers.get("content-length")));
  if (module) {
    await response.body?.cancel();
    return module;
  }
  return compileStreaming(response);
};

const yowasp = await import(workerData.bundleUrl);
// args === null only loads the resources (modules + sysroot tree), silently.
await yowasp.runLLVM(null, {}, { fetchProgress: () => {} });

/** Names the tool's virtual root already uses: the sysroot and the driver's temp dir. */
const RESERVED = new Set(["usr", "tmp"]);

/** The tool's output file ("-o FILE" / "-oFILE"), relative to the sandbox. */
function outputOf(args) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "-o") return args[i + 1];
    if (args[i].startsWith("-o") && args[i].length > 2) return args[i].slice(2);
  }
  return undefined;
}

async function readTree(dir, top, skip) {
  const tree = {};
  for (const entry of await fsp.readdir(dir, { withFileTypes: true })) {
    if (skip === join(dir, entry.name)) continue;
    if (top && RESERVED.has(entry.name)) {
      throw new Error(`the hermetic toolchain cannot see a sandbox entry named "/${entry.name}" (reserved for its sysroot); rename it`);
    }
    const p = join(dir, entry.name);
    if (entry.isDirectory()) tree[entry.name] = await readTree(p, false, skip);
    else if (entry.isFile() || entry.isSymbolicLink()) tree[entry.name] = new Uint8Array(await fsp.readFile(p));
  }
  return tree;
}

/** Write back every file that is new or whose bytes are a different array than the input's. */
async function writeBack(dir, before, after) {
  for (const [name, value] of Object.entries(after)) {
    const p = join(dir, name);
    const old = before?.[name];
    if (value instanceof Uint8Array || typeof value === "string") {
      if (old === value) continue;
      await fsp.mkdir(dirname(p), { recursive: true });
      await fsp.writeFile(p, value, { mode: 0o644 });
    } else {
      await fsp.mkdir(p, { recursive: true });
      await writeBack(p, old instanceof Uint8Array || typeof old === "string" ? undefined : old, value);
    }
  }
}

parentPort.on("message", async ({ id, tool, args, cwd }) => {
  const out = [];
  const err = [];
  const options = {
    stdin: () => null,
    stdout: (b) => b && out.push(Buffer.from(b)),
    stderr: (b) => b && err.push(Buffer.from(b)),
    decodeASCII: false,
  };
  const text = (chunks) => Buffer.concat(chunks).toString("utf8");
  try {
    // YoWASP's virtual rename() does not replace an existing file, and clang writes its
    // output to a temp file renamed over -o: a stale output would silently survive.
    const output = outputOf(args);
    const before = await readTree(cwd, true, output === undefined ? undefined : join(cwd, output));
    const after = await yowasp.commands[tool](args, before, options);
    await writeBack(cwd, before, after ?? {});
    parentPort.postMessage({ id, ok: true, stdout: text(out), stderr: text(err) });
  } catch (e) {
    const code = e instanceof yowasp.Exit ? e.code : null;
    const message = code === null ? String(e?.stack ?? e) : "";
    parentPort.postMessage({ id, ok: false, code, message, stdout: text(out), stderr: text(err) });
  }
});
parentPort.postMessage({ ready: true });
