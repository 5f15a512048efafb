// The child process that runs one guest (spawned by runtime.ts, never imported).
//
// Plain JavaScript on purpose: it starts with bare `node` (no TypeScript loader, ~60 ms), and
// the guest's stdio are this process's fds 0/1/2, so preview2-shim's own stdio, blocking
// stdin reads and `exit` (process.exit) behave exactly as for a native command.
//
// Capabilities are an allowlist twice over: the component gets only the interfaces the config
// grants (derived from the sealed spec by run-grant.ts), and only among those built below.
// Nothing of wasi:sockets or wasi:http is even imported, so the guest cannot reach the network.
//
// fd 3 is a channel with the parent: the parent writes the config, one JSON line
// ({ jsDir, jsFiles, rootfsDir, mounts: [{guest, host}], interfaces, args, timing, codeCache }); the runner writes
// host-side failures (one JSON line), so they are never confused with the guest's own stderr or
// exit code, and the guest's exit status as it exits ({ exit, marks }).
import { readFileSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { isatty } from "node:tty";
import * as cliShim from "@bytecodealliance/preview2-shim/cli";
import * as clocksShim from "@bytecodealliance/preview2-shim/clocks";
import * as fsShim from "@bytecodealliance/preview2-shim/filesystem";
import * as ioShim from "@bytecodealliance/preview2-shim/io";
import * as randomShim from "@bytecodealliance/preview2-shim/random";
import { runCached } from "../../bin/code-cache.cjs";

/** Exit status used when the guest traps (as wasmtime does on Unix: 128 + SIGABRT). */
const TRAP_EXIT = 134;
/** Exit status of a failure of the host side (reported on fd 3; runtime.ts knows it too). */
const HOST_FAILURE_EXIT = 125;

function hostFailure(message) {
  try {
    writeSync(3, JSON.stringify({ error: message }) + "\n");
  } catch {
    process.stderr.write(`wmb run: ${message}\n`);
  }
  process.exit(HOST_FAILURE_EXIT);
}

/** Milestones of this run as epoch milliseconds, sent on fd 3 as the runner exits when the
 * parent asks (config.timing): a trace (WMB_TRACE) shows them next to the parent's own spans. */
const marks = { started: performance.timeOrigin, loaded: epochNow() };
function epochNow() {
  return performance.timeOrigin + performance.now();
}

const config = readConfig();
marks.configured = epochNow();
process.chdir(config.rootfsDir);

/**
 * The config arrives on fd 3 as one JSON line, once the parent has resolved and checked the
 * machine: the runner is started earlier, so that Node, the shims above and their I/O thread
 * start meanwhile. The parent gone before it sent one: nothing to run.
 */
function readConfig() {
  const chunks = [];
  const buf = Buffer.alloc(64 << 10);
  for (;;) {
    let n;
    try {
      n = readSync(3, buf, 0, buf.length, null);
    } catch (e) {
      if (e?.code !== "EAGAIN") throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2); // a non-blocking fd
      continue;
    }
    if (n === 0) process.exit(HOST_FAILURE_EXIT);
    chunks.push(Buffer.from(buf.subarray(0, n)));
    const text = Buffer.concat(chunks).toString("utf8");
    const end = text.indexOf("\n");
    if (end >= 0) return JSON.parse(text.slice(0, end));
  }
}

// --- wasi:filesystem ---------------------------------------------------------------------
// preview2-shim resolves every path inside its preopen (".." and symlinks included, absolute
// symlink targets refused), but has no notion of a read-only mount. This wrapper adds it:
// every descriptor reached from a read-only preopen refuses anything that could change the
// host, with the WASI error `read-only`. It is also the only Descriptor class the component
// sees, so a guest can never hand the shim a descriptor it did not get from us.
const ShimDescriptor = fsShim.types.Descriptor;
const READ_ONLY = "read-only";

/**
 * Refuse a path that names the descriptor's own directory ("", ".", "a/.."): removing or
 * renaming it would remove a mount point (rmdir("/db") would delete the host's db directory).
 */
function notSelf(path) {
  let depth = 0;
  for (const segment of path.replace(/\\/g, "/").split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") depth--;
    else depth++;
    // Below zero the shim refuses the path itself (not-permitted).
    if (depth < 0) return path;
  }
  if (depth === 0) throw "invalid";
  return path;
}

class Descriptor {
  #inner;
  #readOnly = false;
  #isPreopen = false;

  static _wrap(inner, readOnly, isPreopen) {
    if (!(inner instanceof ShimDescriptor)) throw new TypeError("not a preview2-shim descriptor");
    const d = new Descriptor();
    d.#inner = inner;
    d.#readOnly = readOnly;
    d.#isPreopen = isPreopen;
    return d;
  }

  static _unwrap(d) {
    if (!(d instanceof Descriptor)) throw "bad-descriptor";
    return d.#inner;
  }

  static _isReadOnly(d) {
    return d instanceof Descriptor && d.#readOnly;
  }

  #writable() {
    if (this.#readOnly) throw READ_ONLY;
  }

  readViaStream(offset) {
    return this.#inner.readViaStream(offset);
  }
  writeViaStream(offset) {
    this.#writable();
    return this.#inner.writeViaStream(offset);
  }
  appendViaStream() {
    this.#writable();
    return this.#inner.appendViaStream();
  }
  advise(offset, length, advice) {
    return this.#inner.advise(offset, length, advice);
  }
  syncData() {
    return this.#inner.syncData();
  }
  getFlags() {
    // The shim has no flags for a preopen; report what the mount really allows.
    if (this.#isPreopen) return { read: true, mutateDirectory: !this.#readOnly };
    return this.#inner.getFlags();
  }
  getType() {
    return this.#inner.getType();
  }
  setSize(size) {
    this.#writable();
    return this.#inner.setSize(size);
  }
  setTimes(atime, mtime) {
    this.#writable();
    return this.#inner.setTimes(atime, mtime);
  }
  read(length, offset) {
    return this.#inner.read(length, offset);
  }
  write(buffer, offset) {
    this.#writable();
    return this.#inner.write(buffer, offset);
  }
  readDirectory() {
    return this.#inner.readDirectory();
  }
  sync() {
    return this.#inner.sync();
  }
  createDirectoryAt(path) {
    this.#writable();
    return this.#inner.createDirectoryAt(path);
  }
  stat() {
    return this.#inner.stat();
  }
  statAt(pathFlags, path) {
    return this.#inner.statAt(pathFlags, path);
  }
  setTimesAt(pathFlags, path, atime, mtime) {
    this.#writable();
    return this.#inner.setTimesAt(pathFlags, path, atime, mtime);
  }
  linkAt(oldPathFlags, oldPath, newDescriptor, newPath) {
    // Both ends: a hard link from a read-only mount into a writable one would make the
    // read-only file writable through its new name.
    this.#writable();
    if (Descriptor._isReadOnly(newDescriptor)) throw READ_ONLY;
    return this.#inner.linkAt(oldPathFlags, oldPath, Descriptor._unwrap(newDescriptor), notSelf(newPath));
  }
  openAt(pathFlags, path, openFlags, descriptorFlags) {
    if (
      this.#readOnly &&
      (openFlags.create || openFlags.truncate || descriptorFlags.write || descriptorFlags.mutateDirectory)
    ) {
      throw READ_ONLY;
    }
    const inner = this.#inner.openAt(pathFlags, path, openFlags, descriptorFlags);
    return Descriptor._wrap(inner, this.#readOnly, false);
  }
  readlinkAt(path) {
    return this.#inner.readlinkAt(path);
  }
  removeDirectoryAt(path) {
    this.#writable();
    return this.#inner.removeDirectoryAt(notSelf(path));
  }
  renameAt(oldPath, newDescriptor, newPath) {
    this.#writable();
    if (Descriptor._isReadOnly(newDescriptor)) throw READ_ONLY;
    return this.#inner.renameAt(notSelf(oldPath), Descriptor._unwrap(newDescriptor), notSelf(newPath));
  }
  symlinkAt(oldPath, newPath) {
    this.#writable();
    // A link the guest cannot follow out (the shim refuses that) could still trap a host tool
    // that later walks the db directory: refuse absolute and upward targets outright.
    if (oldPath.startsWith("/") || oldPath.includes("\\") || oldPath.split("/").includes("..")) {
      throw "not-permitted";
    }
    return this.#inner.symlinkAt(oldPath, notSelf(newPath));
  }
  unlinkFileAt(path) {
    this.#writable();
    return this.#inner.unlinkFileAt(notSelf(path));
  }
  isSameObject(other) {
    return other instanceof Descriptor && this.#inner.isSameObject(Descriptor._unwrap(other));
  }
  metadataHash() {
    return this.#inner.metadataHash();
  }
  metadataHashAt(pathFlags, path) {
    return this.#inner.metadataHashAt(pathFlags, path);
  }
  [Symbol.dispose]() {
    this.#inner[Symbol.dispose]?.();
  }
}

const preopenList = [
  [Descriptor._wrap(fsShim._createPreopenDescriptor(config.rootfsDir), true, true), "/"],
  ...config.mounts.map((m) => [Descriptor._wrap(fsShim._createPreopenDescriptor(m.host), false, true), m.guest]),
];

const filesystemTypes = {
  Descriptor,
  DirectoryEntryStream: fsShim.types.DirectoryEntryStream,
  filesystemErrorCode: fsShim.types.filesystemErrorCode,
};
const filesystemPreopens = { getDirectories: () => [...preopenList] };

// --- wasi:cli ----------------------------------------------------------------------------
const guestArgs = [...config.args];
const environment = {
  getEnvironment: () => [["HOME", "/"]],
  getArguments: () => [...guestArgs],
  initialCwd: () => "/",
};
const exit = {
  exit(status) {
    process.exit(status.tag === "err" ? 1 : 0);
  },
  exitWithCode(code) {
    process.exit(code & 0xff);
  },
};
// A terminal only when the fd really is one: the SQLite shell prompts iff stdin is a tty,
// and `echo "select 1;" | wmb run …` must not print prompts.
const terminalStdin = {
  getTerminalStdin: () => (isatty(0) ? cliShim.terminalStdin.getTerminalStdin() : undefined),
};
const terminalStdout = {
  getTerminalStdout: () => (isatty(1) ? cliShim.terminalStdout.getTerminalStdout() : undefined),
};
const terminalStderr = {
  getTerminalStderr: () => (isatty(2) ? cliShim.terminalStderr.getTerminalStderr() : undefined),
};

/** Every interface this runner implements, unversioned (runtime.ts's RUNNER_INTERFACES lists the
 * same names for the host-side check). A machine gets those its spec grants. */
const IMPLEMENTED = {
  "wasi:cli/environment": environment,
  "wasi:cli/exit": exit,
  "wasi:cli/stdin": cliShim.stdin,
  "wasi:cli/stdout": cliShim.stdout,
  "wasi:cli/stderr": cliShim.stderr,
  "wasi:cli/terminal-input": cliShim.terminalInput,
  "wasi:cli/terminal-output": cliShim.terminalOutput,
  "wasi:cli/terminal-stdin": terminalStdin,
  "wasi:cli/terminal-stdout": terminalStdout,
  "wasi:cli/terminal-stderr": terminalStderr,
  "wasi:clocks/monotonic-clock": clocksShim.monotonicClock,
  "wasi:clocks/wall-clock": clocksShim.wallClock,
  "wasi:filesystem/types": filesystemTypes,
  "wasi:filesystem/preopens": filesystemPreopens,
  "wasi:io/error": ioShim.error,
  "wasi:io/poll": ioShim.poll,
  "wasi:io/streams": ioShim.streams,
  "wasi:random/random": randomShim.random,
  "wasi:random/insecure": randomShim.insecure,
  "wasi:random/insecure-seed": randomShim.insecureSeed,
};

function unversioned(name) {
  const at = name.indexOf("@");
  return at < 0 ? name : name.slice(0, at);
}

async function main() {
  const manifest = JSON.parse(readFileSync(transpiledFile("wmb-transpile.json"), "utf8"));
  const imports = {};
  const refused = [];
  const granted = new Set(config.interfaces);
  const unknown = [...granted].filter((name) => !Object.hasOwn(IMPLEMENTED, name));
  if (unknown.length > 0) hostFailure(`this runner implements no ${unknown.join(", ")}, which the machine is granted`);
  for (const name of manifest.imports) {
    const implementation = granted.has(unversioned(name)) ? IMPLEMENTED[unversioned(name)] : undefined;
    if (implementation === undefined) refused.push(name);
    else imports[name] = implementation;
  }
  if (refused.length > 0) {
    hostFailure(`the component imports ${refused.join(", ")}, which this machine's capabilities do not grant`);
  }
  // Compile every core module off-thread meanwhile. The shim's I/O worker is booting too (the
  // loader started it): instantiation and the guest's first steps need it not, its first I/O waits.
  const compiled = new Map();
  for (const file of manifest.coreModules ?? []) compiled.set(file, compileCore(file));
  const entry = loadEntry(manifest.entry);
  const { instantiate } = entry.exports;
  marks.imported = epochNow();
  const getCoreModule = (file) => compiled.get(file) ?? compileCore(file);
  let instance;
  try {
    instance = await instantiate(getCoreModule, imports);
  } catch (e) {
    hostFailure(`instantiating the component failed: ${e?.message ?? e}`);
  }
  const run = instance["wasi:cli/run@0.2.0"] ?? instance.run ?? findRunExport(instance);
  if (!run) hostFailure("the component exports no wasi:cli/run interface");
  marks.instantiated = epochNow();
  process.on("exit", (code) => {
    // Once the guest ran: the cache then holds the functions its run compiled too.
    entry.saveCache();
    // The guest's status, said before this process has wound down (its I/O worker, its heap):
    // whoever waits for the guest can go on meanwhile.
    writeSync(3, JSON.stringify({ exit: code, marks: config.timing ? { ...marks, exited: epochNow() } : undefined }) + "\n");
  });
  try {
    run.run();
  } catch (e) {
    // A result `err` from wasi:cli/run surfaces as a ComponentError; anything else is a trap.
    if (e?.name === "ComponentError" || e?.constructor?.name === "ComponentError") process.exit(1);
    process.stderr.write(`wmb run: the guest trapped: ${e?.message ?? e}\n`);
    process.exit(TRAP_EXIT);
  }
  process.exit(0);
}

/** Where a transpiled file is: named in config.jsFiles (a blob of the store), else in jsDir. */
function transpiledFile(name) {
  return Object.hasOwn(config.jsFiles ?? {}, name) ? config.jsFiles[name] : join(config.jsDir, name);
}

/**
 * The component's module (CommonJS: what wmb transpiles to), compiled with the V8 code cache
 * config.codeCache.read names (the parent checked it like any blob); one is written to
 * config.codeCache.write when there was none or V8 rejected it, for the parent to keep.
 */
function loadEntry(name) {
  const refuse = (id) => {
    throw new Error(`the component's module may not require ${id}`);
  };
  return runCached(transpiledFile(name), config.codeCache?.read, refuse, { writeTo: config.codeCache?.write });
}

/** Read synchronously, so that V8 compiles on its own threads at once, even while this thread
 * then blocks on the shim's first call to its I/O worker (an asynchronous read would hand the
 * bytes over only after it). */
function compileCore(file) {
  return WebAssembly.compile(readFileSync(transpiledFile(file)));
}

function findRunExport(instance) {
  for (const [name, value] of Object.entries(instance)) {
    if (name.startsWith("wasi:cli/run@") && typeof value?.run === "function") return value;
  }
  return undefined;
}

main().catch((e) => hostFailure(`the guest runner failed: ${e?.stack ?? e}`));
