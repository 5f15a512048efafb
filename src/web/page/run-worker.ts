// Runs one checked machine in a Web Worker on preview2-shim's browser implementation of WASI 0.2.
// The page (run-checks.ts) has proven every byte it posts here; this compiles and instantiates,
// and nothing else does. The guest gets exactly what the spec grants: the rootfs read-only as /,
// each writable path from the origin-private file system (kept across reloads), the bound
// interfaces, argv[0] its name, HOME=/. Its stdout and stderr are posted as they come.
import { createCli } from "@bytecodealliance/preview2-shim/cli";
import * as clocks from "@bytecodealliance/preview2-shim/clocks";
import { createFilesystem, InMemoryFilesystemAdapter, OpfsFilesystemAdapter, loadOpfsCapability, types, type FileData } from "@bytecodealliance/preview2-shim/filesystem";
import { UNWRAP_DESCRIPTOR } from "@bytecodealliance/preview2-shim/in-memory-filesystem";
import * as io from "@bytecodealliance/preview2-shim/io";
import * as random from "@bytecodealliance/preview2-shim/random";
import type { RootfsEntry } from "../../formats/rootfs-entries.ts";
import { opfsDirName } from "./run-shared.ts";

export interface RunRequest {
  identity: string;
  name: string;
  args: string[];
  stdin: string;
  interfaces: string[];
  writable: string[];
  rootfs: RootfsEntry[];
  transpiled: Record<string, Uint8Array>;
}

export type RunMessage = { out: "stdout" | "stderr"; text: string } | { exit: number; trapped?: string } | { error: string };

const post = (m: RunMessage) => (self as unknown as Worker).postMessage(m);

self.onmessage = (e: MessageEvent<RunRequest>) => {
  run(e.data).catch((err: unknown) => post({ error: String((err as Error)?.message ?? err) }));
};

async function run(req: RunRequest): Promise<void> {
  const rootAdapter = confined(new InMemoryFilesystemAdapter(), true);
  const root = createFilesystem({ adapter: rootAdapter, preopens: { "/": rootfsTree(req.rootfs) } });
  const opfs = new OpfsFilesystemAdapter();
  const writableAdapter = confined(opfs, false);
  const storage = await navigator.storage.getDirectory();
  const mounts: Record<string, Awaited<ReturnType<typeof loadOpfsCapability>>> = {};
  for (const guest of req.writable) mounts[guest] = await loadOpfsCapability(await storage.getDirectoryHandle(opfsDirName(req.identity, guest), { create: true }));
  const writable = createFilesystem({ adapter: writableAdapter, preopens: mounts });
  const preopens = { getDirectories: () => [...root.preopens.getDirectories(), ...writable.preopens.getDirectories()] };

  const stdinBytes = new TextEncoder().encode(req.stdin);
  let stdinAt = 0;
  const stream = (out: "stdout" | "stderr") => {
    const decoder = new TextDecoder();
    return {
      write(bytes: Uint8Array) {
        post({ out, text: decoder.decode(bytes, { stream: true }) });
      },
      flush() {},
      blockingFlush() {},
    };
  };
  const cli = createCli({
    arguments: [req.name, ...req.args],
    environment: { HOME: "/" },
    initialCwd: "/",
    stdout: stream("stdout"),
    stderr: stream("stderr"),
    stdin: {
      blockingRead(len: bigint) {
        if (stdinAt >= stdinBytes.length) throw { tag: "closed" };
        const chunk = stdinBytes.slice(stdinAt, stdinAt + Number(len));
        stdinAt += chunk.length;
        return chunk;
      },
      subscribe: () => (io as unknown as { pollableCreate(): unknown }).pollableCreate(),
    } as never,
  });
  const implemented: Record<string, unknown> = {
    "wasi:cli/environment": cli.environment,
    "wasi:cli/exit": cli.exit,
    "wasi:cli/stdin": cli.stdin,
    "wasi:cli/stdout": cli.stdout,
    "wasi:cli/stderr": cli.stderr,
    "wasi:cli/terminal-input": cli.terminalInput,
    "wasi:cli/terminal-output": cli.terminalOutput,
    "wasi:cli/terminal-stdin": cli.terminalStdin,
    "wasi:cli/terminal-stdout": cli.terminalStdout,
    "wasi:cli/terminal-stderr": cli.terminalStderr,
    "wasi:clocks/monotonic-clock": clocks.monotonicClock,
    "wasi:clocks/wall-clock": clocks.wallClock,
    "wasi:filesystem/types": types,
    "wasi:filesystem/preopens": preopens,
    "wasi:io/error": io.error,
    "wasi:io/poll": io.poll,
    "wasi:io/streams": io.streams,
    "wasi:random/random": random.random,
    "wasi:random/insecure": random.insecure,
    "wasi:random/insecure-seed": random.insecureSeed,
  };
  const manifest = JSON.parse(new TextDecoder().decode(req.transpiled["wmb-transpile.json"])) as { entry: string; imports: string[] };
  const granted = new Set(req.interfaces);
  const imports: Record<string, unknown> = {};
  for (const name of manifest.imports) {
    const bare = name.replace(/@.*$/, "");
    if (!granted.has(bare) || !implemented[bare]) throw new Error(`the component imports ${name}, which this machine is not granted`);
    imports[name] = implemented[bare];
  }
  // The component's module (CommonJS, what wmb transpiles to: it requires nothing).
  const module = { exports: {} as { instantiate?: (get: (f: string) => Promise<WebAssembly.Module>, imports: unknown) => Promise<Record<string, { run?: () => void }>> } };
  new Function("module", "exports", new TextDecoder().decode(req.transpiled[manifest.entry]))(module, module.exports);
  const getCoreModule = (file: string) => {
    const bytes = req.transpiled[file];
    if (!bytes) throw new Error(`the component asks for ${file}, which was not checked`);
    return WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  };
  let code = 0;
  let trapped: string | undefined;
  try {
    const instance = await module.exports.instantiate!(getCoreModule, imports);
    const run = Object.entries(instance).find(([n, v]) => n.startsWith("wasi:cli/run@") && typeof v?.run === "function")?.[1];
    if (!run?.run) throw new Error("the component exports no wasi:cli/run interface");
    run.run();
  } catch (e) {
    const x = e as { exitError?: boolean; code?: number; name?: string; message?: string };
    if (x?.exitError) code = x.code ?? 1;
    else if (x?.name === "ComponentError") code = 1;
    else (trapped = String(x?.message ?? e)), (code = 134);
  }
  await opfs.flush();
  post({ exit: code, trapped });
}

/** The rootfs entries as the in-memory filesystem's tree. */
function rootfsTree(entries: RootfsEntry[]): FileData {
  const root: FileData = { dir: {} };
  for (const e of entries) {
    const parts = e.name.split("/");
    let dir = root;
    for (const p of parts.slice(0, -1)) dir = dir.dir![p] ??= { dir: {} };
    const last = parts[parts.length - 1]!;
    if (e.kind === "directory") dir.dir![last] ??= { dir: {} };
    else dir.dir![last] = { source: e.data };
  }
  return root;
}

const MUTATING = new Set(["writeViaStream", "appendViaStream", "setSize", "setTimes", "write", "createDirectoryAt", "setTimesAt", "linkAt", "removeDirectoryAt", "renameAt", "symlinkAt", "unlinkFileAt"]);
/** Descriptors handed out by a read-only adapter (a link or rename into one is refused too). */
const readOnly = new WeakSet<object>();

/** An adapter whose descriptors refuse every change when `ro` (WASI's `read-only`), and never
 * let a rename or link from a writable mount land in a read-only one. */
function confined<C>(adapter: { getRoot(c: C): object }, ro: boolean): { getRoot(c: C): never } {
  const wrap = (d: object): object => {
    const p: object = new Proxy(d, {
      get(target, prop, receiver) {
        if (prop === UNWRAP_DESCRIPTOR) return ro ? undefined : target;
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== "function") return v;
        if (ro && typeof prop === "string" && MUTATING.has(prop)) return () => { throw "read-only"; };
        if (prop === "openAt") {
          return (pathFlags: unknown, path: string, openFlags: { create?: boolean; truncate?: boolean }, flags: { write?: boolean; mutateDirectory?: boolean }) => {
            if (ro && (openFlags.create || openFlags.truncate || flags.write || flags.mutateDirectory)) throw "read-only";
            return wrap(v.call(target, pathFlags, path, openFlags, flags) as object);
          };
        }
        if (prop === "renameAt" || prop === "linkAt") {
          return (...args: unknown[]) => {
            const other = args[prop === "renameAt" ? 1 : 2] as object;
            if (readOnly.has(other)) throw "read-only";
            return v.apply(target, args);
          };
        }
        return v.bind(target);
      },
    });
    if (ro) readOnly.add(p);
    return p;
  };
  return { getRoot: (c: C) => wrap(adapter.getRoot(c)) as never };
}
