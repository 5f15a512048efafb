// The C toolchains behind `usesToolchain` rules.
//
// hermetic: clang/wasm-ld from @yowasp/clang (LLVM compiled to WebAssembly). The LLVM
//   module is compiled once per process on the main thread and shared with a pool of
//   worker threads (one per job), each of which instantiates it per command. The action's
//   sandbox is the root of the tool's virtual file tree, so paths in arguments are relative
//   to the sandbox and no host path can end up in an output.
// system: Debian's clang/lld/wasi-libc, run as host processes in the action's sandbox (under
//   bwrap when it works: the rebuilder hands each action a view from `inSandbox`).
import { execFile, spawn } from "node:child_process";
import { existsSync, promises as fsp, readdirSync, realpathSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, isAbsolute, join, posix, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { CommandError, tailLines, type ExecResult, type Toolchain } from "./rule.ts";
import { wmbFile } from "../src/repo-root.ts";
import type { ActionCommands, HostToolchain } from "../src/sandbox.ts";

export type ToolchainKind = "hermetic" | "system";
export type Tool = "clang" | "wasm-ld";

export interface ToolchainOptions {
  /** Commands that may run at once (the hermetic pool's size). */
  jobs: number;
}

/** Toolchain failures are the engine's CommandError (command + stderr tail). */
export { CommandError as ToolchainError } from "./rule.ts";

function shellQuote(args: readonly string[]): string {
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

export function createToolchain(kind: ToolchainKind, opts: ToolchainOptions): Toolchain {
  if (kind === "hermetic") return new HermeticToolchain(Math.max(1, Math.floor(opts.jobs) || 1));
  if (kind === "system") return new SystemToolchain();
  throw new Error(`unknown toolchain "${String(kind)}": use "hermetic" or "system"`);
}

// ---------------------------------------------------------------- hermetic

interface PoolWorker {
  worker: Worker;
  ready: Promise<void>;
  busy: boolean;
}

interface WorkerReply {
  id: number;
  ok: boolean;
  code: number | null;
  message?: string;
  stdout: string;
  stderr: string;
}

interface Job {
  tool: Tool;
  args: string[];
  cwd: string;
  signal?: AbortSignal;
  resolve(r: ExecResult): void;
  reject(e: unknown): void;
}

/** YoWASP's driver wrapper echoes `clang -###`'s banner with a driver error; it says nothing. */
function withoutDriverBanner(stderr: string): string {
  return stderr
    .split("\n")
    .filter((l) => !/^(clang version |Target: |Thread model: |InstalledDir: |Build config: )/.test(l))
    .join("\n");
}

// lib "ES2023" + @types/node declare WebAssembly's types but not its value.
const Wasm = (globalThis as unknown as { WebAssembly: { compile(bytes: Uint8Array): Promise<WebAssembly.Module> } }).WebAssembly;

function yowaspGenDir(): string {
  return dirname(createRequire(import.meta.url).resolve("@yowasp/clang"));
}

class HermeticToolchain implements Toolchain {
  readonly kind = "hermetic" as const;
  private readonly genDir = yowaspGenDir();
  private modules?: Promise<[number, WebAssembly.Module][]>;
  private readonly workers: PoolWorker[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  /** Workers being spawned (counted against the pool size before they exist). */
  private starting = 0;
  private closed = false;
  /** Milliseconds spent compiling the LLVM modules (once per process), for reports. */
  initMs?: number;

  constructor(private readonly size: number) {}

  async identityFiles(): Promise<string[]> {
    // The driver wrapper (bundle.js) parses `clang -###`, so it is part of the compiler too.
    const names = readdirSync(this.genDir).filter((n) => n.endsWith(".wasm") || n.endsWith(".tar") || n === "bundle.js");
    return [...names.map((n) => join(this.genDir, n)), join(this.genDir, "..", "package.json")].sort();
  }

  /** Compile every LLVM module once; workers receive them instead of compiling their own. */
  private compiledModules(): Promise<[number, WebAssembly.Module][]> {
    this.modules ??= (async () => {
      const started = performance.now();
      const files = readdirSync(this.genDir).filter((n) => n.endsWith(".wasm"));
      const bytes = await Promise.all(files.map((n) => fsp.readFile(join(this.genDir, n))));
      const sizes = bytes.map((b) => b.length);
      const compiled = await Promise.all(bytes.map((b) => Wasm.compile(b)));
      // Workers match modules by byte length; skip any size that is not unique.
      const entries = compiled
        .map((m, i) => [sizes[i]!, m] as [number, WebAssembly.Module])
        .filter(([s]) => sizes.filter((x) => x === s).length === 1);
      this.initMs = performance.now() - started;
      return entries;
    })();
    return this.modules;
  }

  private async spawnWorker(): Promise<PoolWorker> {
    const modules = await this.compiledModules();
    const worker = new Worker(wmbFile("rules/toolchain-worker.mjs"), {
      workerData: { modules, bundleUrl: pathToFileURL(join(this.genDir, "bundle.js")).href },
      // Workers would inherit a TS loader's flags; the worker is plain JS and needs none.
      execArgv: [],
      stdout: true,
      stderr: false,
    });
    const pw: PoolWorker = {
      worker,
      busy: false,
      ready: new Promise<void>((resolve, reject) => {
        const onMessage = (m: { ready?: boolean }) => {
          if (m.ready) {
            worker.off("message", onMessage);
            resolve();
          }
        };
        worker.on("message", onMessage);
        worker.once("error", reject);
        worker.once("exit", (code) => reject(new Error(`hermetic toolchain worker exited with code ${code} while starting`)));
      }),
    };
    pw.ready.catch(() => {}); // observed by dispatch(); never an unhandled rejection
    // A worker that dies while idle leaves the pool; the next job starts a fresh one.
    worker.once("exit", () => {
      const i = this.workers.indexOf(pw);
      if (i >= 0) this.workers.splice(i, 1);
    });
    // YoWASP prints nothing when given callbacks; anything else must not reach our stdout.
    worker.stdout.resume();
    this.workers.push(pw);
    worker.unref();
    return pw;
  }

  private removeWorker(pw: PoolWorker): void {
    const i = this.workers.indexOf(pw);
    if (i >= 0) this.workers.splice(i, 1);
    void pw.worker.terminate();
  }

  run(tool: Tool, args: string[], cwd: string, signal?: AbortSignal): Promise<ExecResult> {
    if (this.closed) return Promise.reject(new Error("the hermetic toolchain is closed"));
    if (tool !== "clang" && tool !== "wasm-ld") return Promise.reject(new Error(`unknown tool "${String(tool)}"`));
    return new Promise<ExecResult>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason ?? new Error("aborted"));
      this.queue.push({ tool, args, cwd, signal, resolve, reject });
      this.pump();
    });
  }

  /** Hand queued jobs to idle workers, starting workers up to the pool size. */
  private pump(): void {
    while (this.queue.length > 0) {
      let pw = this.workers.find((w) => !w.busy);
      if (!pw && this.workers.length + this.starting < this.size) {
        this.starting++;
        this.spawnWorker()
          .then(() => {
            this.starting--;
            this.pump();
          })
          .catch((e) => {
            this.starting--;
            for (const job of this.queue.splice(0)) job.reject(e);
          });
        return;
      }
      if (!pw) return;
      const job = this.queue.shift()!;
      if (job.signal?.aborted) {
        job.reject(job.signal.reason ?? new Error("aborted"));
        continue;
      }
      void this.dispatch(pw, job);
    }
  }

  private async dispatch(pw: PoolWorker, job: Job): Promise<void> {
    pw.busy = true;
    pw.worker.ref();
    const id = this.nextId++;
    const command = `${job.tool} ${shellQuote(job.args)}`;
    const done = () => {
      pw.worker.off("message", onMessage);
      pw.worker.off("error", onError);
      pw.worker.off("exit", onExit);
      job.signal?.removeEventListener("abort", onAbort);
    };
    const onMessage = (m: WorkerReply) => {
      if (m.id !== id) return;
      done();
      pw.busy = false;
      pw.worker.unref();
      if (m.ok) job.resolve({ stdout: m.stdout, stderr: m.stderr });
      else if (m.code !== null) job.reject(new CommandError(command, m.code, tailLines(withoutDriverBanner(m.stderr || m.stdout))));
      else job.reject(new CommandError(command, null, tailLines(`${m.stderr}${m.message ?? ""}`)));
      this.pump();
    };
    const onError = (e: Error) => {
      done();
      this.removeWorker(pw);
      job.reject(new CommandError(command, null, tailLines(String(e.stack ?? e))));
      this.pump();
    };
    const onExit = (code: number) => onError(new Error(`hermetic toolchain worker exited with code ${code}`));
    // A running wasm command cannot be interrupted: drop the worker; the pool starts another.
    const onAbort = () => {
      done();
      this.removeWorker(pw);
      job.reject(job.signal?.reason ?? new Error("aborted"));
      this.pump();
    };
    pw.worker.on("message", onMessage);
    pw.worker.once("error", onError);
    pw.worker.once("exit", onExit);
    job.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await pw.ready;
    } catch (e) {
      return onError(e as Error);
    }
    if (job.signal?.aborted) return onAbort();
    pw.worker.postMessage({ id, tool: job.tool, args: job.args, cwd: job.cwd });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error("the hermetic toolchain was closed"));
    await Promise.all(this.workers.splice(0).map((w) => w.worker.terminate()));
  }
}

// ---------------------------------------------------------------- system

/** Debian 12 packages the system toolchain needs. */
export const SYSTEM_PACKAGES = ["clang", "lld", "wasi-libc", "libclang-rt-dev-wasm32"] as const;

const INSTALL_HINT = `apt-get install -y ${SYSTEM_PACKAGES.join(" ")}`;

function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(":")) {
    const p = join(dir || ".", name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** The wasi-libc sysroot Debian installs, the builtins library clang links for wasm, and the
 * header directories a compile includes from: the sysroot's and clang's own (resource dir). */
function findSystemBits(): { clang: string; wasmLd: string; sysrootLibs: string[]; builtins: string[]; headerDirs: string[]; sysrootInclude?: string } {
  const clang = which("clang");
  const wasmLd = which("wasm-ld");
  const libDir = ["/usr/lib/wasm32-wasi", "/usr/lib/wasm32-wasip1"].find((d) => existsSync(join(d, "libc.a")));
  const missing: string[] = [];
  if (!clang) missing.push("clang");
  if (!wasmLd) missing.push("wasm-ld");
  if (!libDir) missing.push("wasi-libc");
  let builtins: string[] = [];
  const headerDirs: string[] = [];
  // The headers of /usr/lib/wasm32-wasi are in /usr/include/wasm32-wasi.
  const sysrootInclude = libDir && join(dirname(dirname(libDir)), "include", basename(libDir));
  if (sysrootInclude && existsSync(sysrootInclude)) headerDirs.push(sysrootInclude);
  if (clang) {
    // /usr/lib/llvm-N/lib/clang/<ver>/lib/wasi/libclang_rt.builtins-wasm32.a
    const llvmRoot = dirname(dirname(realpathSync(clang)));
    const clangLib = join(llvmRoot, "lib", "clang");
    if (existsSync(clangLib)) {
      for (const v of readdirSync(clangLib)) {
        if (existsSync(join(clangLib, v, "include"))) headerDirs.push(realpathSync(join(clangLib, v, "include")));
        for (const sub of ["lib/wasi", "lib/wasm32-unknown-wasi", "lib/wasm32-unknown-wasip1"]) {
          const d = join(clangLib, v, sub);
          if (existsSync(d)) builtins.push(...readdirSync(d).filter((n) => n.endsWith(".a")).map((n) => join(d, n)));
        }
      }
    }
    if (builtins.length === 0) missing.push("the wasm32 compiler-rt builtins");
  }
  if (missing.length > 0) {
    throw new Error(`The system toolchain needs ${missing.join(", ")}: run \`${INSTALL_HINT}\` (Debian 12), or use the hermetic toolchain.`);
  }
  const sysrootLibs = readdirSync(libDir!)
    .filter((n) => n.endsWith(".a") || n.endsWith(".o"))
    .map((n) => join(libDir!, n));
  builtins = builtins.map((b) => realpathSync(b));
  return { clang: clang!, wasmLd: wasmLd!, sysrootLibs, builtins, headerDirs, sysrootInclude: headerDirs.includes(sysrootInclude!) ? sysrootInclude : undefined };
}

/** The files under `dir`, recursively (symlinks resolved; one to a directory is not followed). */
function filesUnder(dir: string): string[] {
  const files: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) files.push(...filesUnder(p));
    else if (e.isFile()) files.push(p);
    else if (e.isSymbolicLink() && statSync(p, { throwIfNoEntry: false })?.isFile()) files.push(realpathSync(p));
  }
  return files;
}

/** The LLVM and libclang shared libraries Debian's clang and lld load, resolved. They sit in
 * the LLVM install's lib/ (found without running ldd, so a no-op build starts no process). */
function llvmSharedLibs(clang: string): string[] {
  const libDir = join(dirname(dirname(realpathSync(clang))), "lib");
  if (!existsSync(libDir)) return [];
  const libs = readdirSync(libDir)
    .filter((n) => /^lib(LLVM|clang-cpp)[^/]*\.so(\.|$)/.test(n))
    .map((n) => realpathSync(join(libDir, n)));
  return [...new Set(libs)];
}

function clangMajor(clang: string): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(clang, ["--version"], (err, stdout) => {
      if (err) return reject(err);
      resolve(Number(/clang version (\d+)/.exec(stdout)?.[1] ?? 0));
    });
  });
}

class SystemToolchain implements HostToolchain {
  readonly kind = "system" as const;
  private readonly bits = findSystemBits();
  private major?: Promise<number>;

  async identityFiles(): Promise<string[]> {
    const { clang, wasmLd, sysrootLibs, builtins, headerDirs } = this.bits;
    const exes = [realpathSync(clang), realpathSync(wasmLd)];
    // Debian's clang and lld are thin executables over libclang-cpp and libLLVM; a compile reads
    // the headers (a few hundred: one stat each on a no-op, through the stat cache).
    const headers = headerDirs.flatMap((d) => filesUnder(d));
    return [...new Set([...exes, ...llvmSharedLibs(clang), ...sysrootLibs.map((f) => realpathSync(f)), ...builtins, ...headers])].sort();
  }

  /** Clang before 18 knows the target as wasm32-wasi (Debian 12 ships clang 14 and a
   * wasm32-wasi sysroot); rules say wasm32-wasip1, the name current toolchains use. */
  private async adapt(tool: Tool, args: string[], cwd: string): Promise<string[]> {
    if (tool !== "clang") return args;
    this.major ??= clangMajor(this.bits.clang);
    const old = (await this.major) < 18;
    const out = args.map((a) => (old && a === "--target=wasm32-wasip1" ? "--target=wasm32-wasi" : a));
    // Headers only from the identity's directories: clang would also search /usr/local/include
    // and /usr/include, the host's, which no key covers. The sysroot's stay after clang's own.
    const { sysrootInclude } = this.bits;
    const includes = sysrootInclude ? ["-nostdlibinc", `-idirafter${sysrootInclude}`] : [];
    // The sandbox path differs per action: keep it out of debug info, __FILE__ and the like.
    return [`-ffile-prefix-map=${cwd}=.`, ...includes, ...out];
  }

  /** This toolchain with its commands run by one action's sandbox (`cwd` must be inside
   * the action's directory); the prefix map then names the path the command sees. */
  inSandbox(commands: ActionCommands): Toolchain {
    return {
      kind: this.kind,
      identityFiles: () => this.identityFiles(),
      close: async () => {},
      run: async (tool: Tool, args: string[], cwd: string) => {
        const rel = relative(commands.hostDir, cwd);
        if (rel.startsWith("..") || isAbsolute(rel)) throw new Error(`internal: ${tool} asked to run in ${cwd}, outside its action's directory`);
        const exe = tool === "clang" ? this.bits.clang : this.bits.wasmLd;
        const argv = await this.adapt(tool, args, posix.join(await commands.visibleDir(), rel));
        try {
          return await commands.exec([exe, ...argv], { cwd: rel || undefined });
        } catch (e) {
          // Name the tool as the rule called it, not the adapted argv.
          if (e instanceof CommandError) throw new CommandError(`${tool} ${shellQuote(args)}`, e.exitCode, e.stderr);
          throw e;
        }
      },
    };
  }

  /** Unsandboxed, in `cwd` on the host (tests and tools outside a build). */
  async run(tool: Tool, args: string[], cwd: string, signal?: AbortSignal, env?: Readonly<Record<string, string>>): Promise<ExecResult> {
    const exe = tool === "clang" ? this.bits.clang : this.bits.wasmLd;
    const argv = await this.adapt(tool, args, cwd);
    const command = `${tool} ${shellQuote(args)}`;
    return new Promise<ExecResult>((resolve, reject) => {
      const child = spawn(exe, argv, {
        cwd,
        env: { PATH: "/usr/bin:/bin", LC_ALL: "C", TZ: "UTC", SOURCE_DATE_EPOCH: "0", ...env },
        stdio: ["ignore", "pipe", "pipe"],
        signal,
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on("data", (b: Buffer) => out.push(b));
      child.stderr.on("data", (b: Buffer) => err.push(b));
      child.on("error", (e) => reject(signal?.aborted ? (signal.reason ?? e) : new CommandError(command, null, e.message)));
      child.on("close", (code) => {
        const stdout = Buffer.concat(out).toString("utf8");
        const stderr = Buffer.concat(err).toString("utf8");
        if (code === 0) resolve({ stdout, stderr });
        else if (!signal?.aborted) reject(new CommandError(command, code, tailLines(stderr || stdout)));
      });
    });
  }

  async close(): Promise<void> {}
}
