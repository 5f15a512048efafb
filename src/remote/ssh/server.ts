// The remote end of an ssh target: `wmb remote serve`, started by the client over ssh, speaking
// the framed protocol (frames.ts, protocol.ts) on its stdin and stdout. The design is in
// client.ts's header; this side's duties:
//
// - Admit nothing it has not verified, and nothing before everything is verified (as importBundle
//   does): blobs are received into cas/tmp, then at "commit" every one is hashed against its
//   digest, the spec against its seal and the identity, and the kernel and rootfs against the
//   spec's refs (digest and size); only then do they enter the store (Store.putFile) and is the
//   machine registered.
// - Resume a transfer that was cut off: a blob's bytes are received into cas/tmp/ssh-<digest>.part
//   (under a lock file naming this process), which a cut leaves in place; the next query reports
//   how much of it is there and the client sends the rest. cas/tmp is the store's temp
//   directory: `store fsck --repair` removes what is left there for more than an hour. A
//   blob another live server is receiving goes to a private temp file instead (no resume).
// - A blob the store holds that no longer hashes to its name is dropped (Store.checkBlob) and
//   reported as an integrity failure (exit 3 on the client, as a local run): nothing runs, and
//   the next dispatch sends it again.
// - Run the committed machine with exactly `wmb run`'s checks and grant (the run hook is
//   runResolvedMachine, given by the CLI layer, which also confines mounts: confine.ts), its
//   stdio carried in frames; a "signal" message or the end of the session (the client or its
//   connection went away) stops the guest.
// - Read no more than the client may make it: a spec of more than MAX_SPEC_BYTES is refused
//   before any of it is received or read, frames are capped (frames.ts).
import { randomBytes } from "node:crypto";
import { promises as fsp, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough, Writable, type Readable } from "node:stream";
import { hashBytes, hashFile, type Digest } from "../../digest.ts";
import { isWmbError, WmbError } from "../../errors.ts";
import { checkSealedSpec, MAX_SPEC_BYTES, type SealedSpec } from "../../formats/machine-spec.ts";
import { isIdentity, registerMachine } from "../../machine.ts";
import type { Store } from "../../../store/store.ts";
import { FRAME, FrameReader, FrameWriter, MAGIC, parseJson, ProtocolError, TruncatedError } from "./frames.ts";
import { DIGEST, PROTOCOL, type BlobRole, type Exit, type Failure, type Hello, type Query, type RunRequest } from "./protocol.ts";

export interface RunIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  signal: AbortSignal;
}

/** Runs a machine the store holds, by identity, as `wmb run` does (checks included). */
export type RunHook = (store: Store, req: RunRequest, io: RunIo) => Promise<{ code: number; checkedMs: number; transpileMs: number | undefined; ranMs: number }>;

export interface ServeOptions {
  storeDir: string;
  openStore: (dir: string) => Promise<Store>;
  version: string;
  input: Readable;
  output: Writable;
  run: RunHook;
  /** Called once when a query says a run follows: start loading what running needs. */
  prepareRun?: () => void;
  /** Why this session cannot be served as asked (sent in the hello, which ends it). */
  refusal?: string;
}

/** Guest stdin the client may send ahead of the guest reading it. */
const STDIN_WINDOW = 16 << 20;

interface Incoming {
  role: BlobRole;
  digest: Digest;
  size: number;
  /** bytes kept from an earlier, cut-off transfer */
  offset: number;
  path: string;
  /** held while this server owns `path` (the resumable .part); undefined for a private temp */
  lock?: string;
  received: number;
}

/** Serve one session; resolves when it ends. Never throws: failures are sent to the client. */
export async function serve(opts: ServeOptions): Promise<void> {
  const writer = new FrameWriter(opts.output);
  const reader = new FrameReader(opts.input, { expectMagic: false });
  opts.output.write(MAGIC);

  let store: Store | undefined;
  let storeError = opts.refusal;
  try {
    if (!storeError) store = await opts.openStore(opts.storeDir);
  } catch (e) {
    if (!isWmbError(e)) throw e;
    storeError = e.message;
  }
  const hello: Hello = {
    t: "hello",
    protocol: PROTOCOL,
    wmb: opts.version,
    node: process.version,
    store: store?.dir ?? opts.storeDir,
    free_bytes: freeBytes(store?.dir),
    ...(storeError ? { store_error: storeError } : {}),
  };
  await writer.json(hello).catch(() => {});
  if (!store) return;

  const session = new Session(store, writer, opts.run, opts.prepareRun);
  try {
    for (;;) {
      const f = await reader.next();
      if (!f) break;
      if (!(await session.frame(f))) break;
    }
  } catch (e) {
    if (e instanceof TruncatedError) return; // the connection was cut: nobody to tell (finally still runs)
    const failure: Failure = isWmbError(e)
      ? { t: "error", code: e.code, message: e.message, ...(e.detail ? { detail: e.detail } : {}) }
      : { t: "error", code: "INTERNAL", message: e instanceof ProtocolError ? `protocol error: ${e.message}` : `internal error: ${(e as Error)?.stack ?? String(e)}` };
    await writer.json(failure).catch(() => {});
  } finally {
    await session.end();
    store.close();
  }
}

function freeBytes(dir: string | undefined): number | null {
  if (!dir) return null;
  try {
    const s = statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return null;
  }
}

class Session {
  private query: Query | undefined;
  private lacking = new Map<Digest, Incoming>();
  private receiving: { blob: Incoming; fh: fsp.FileHandle } | undefined;
  private committed = false;
  private run: { stdin: PassThrough; abort: AbortController; done: Promise<void> } | undefined;

  constructor(
    private readonly store: Store,
    private readonly writer: FrameWriter,
    private readonly hook: RunHook,
    private readonly prepareRun?: () => void,
  ) {}

  /** Handle one frame; false when the session is over. */
  async frame(f: { kind: number; payload: Buffer }): Promise<boolean> {
    if (f.kind === FRAME.blob) {
      await this.blobBytes(f.payload);
      return true;
    }
    if (f.kind === FRAME.stdin) {
      const run = this.run;
      if (!run) return true; // the guest ended: its input is dropped, as a pipe's would be
      if (!run.stdin.write(f.payload) && run.stdin.writableLength > STDIN_WINDOW) {
        await Promise.race([new Promise((r) => run.stdin.once("drain", r)), run.done]);
      }
      return true;
    }
    const m = parseJson(f);
    switch (m.t) {
      case "query":
        await this.onQuery(m as unknown as Query);
        return true;
      case "blob":
        await this.onBlob(m.digest, m.offset);
        return true;
      case "commit":
        await this.onCommit();
        return true;
      case "run":
        this.onRun(m as unknown as RunRequest);
        return true;
      case "stdin-end":
        this.run?.stdin.end();
        return true;
      case "signal":
        this.run?.abort.abort();
        return true;
      case "bye":
        return false;
      default:
        throw new ProtocolError(`unknown message "${m.t}"`);
    }
  }

  private async onQuery(q: Query): Promise<void> {
    if (this.query) throw new ProtocolError("a second query in one session");
    if (typeof q.identity !== "string" || !isIdentity(q.identity) || !Array.isArray(q.blobs)) throw new ProtocolError("a malformed query");
    const roles = new Set<string>();
    for (const b of q.blobs) {
      if (!["spec", "kernel", "rootfs"].includes(b?.role) || roles.has(b.role) || !DIGEST.test(b.digest) || !Number.isSafeInteger(b.size) || b.size < 0) {
        throw new ProtocolError("a malformed blob in the query");
      }
      roles.add(b.role);
      if (b.role === "spec" && b.size > MAX_SPEC_BYTES) throw tooLarge(q.identity, b.size);
    }
    if (q.blobs.length !== 0 && roles.size !== 3) throw new ProtocolError("a query must name the spec, kernel and rootfs, or nothing");
    this.query = q;
    if (q.run === true) this.prepareRun?.();
    const lacks: { digest: string; offset: number }[] = [];
    for (const b of q.blobs) {
      const digest = b.digest as Digest;
      if (this.lacking.has(digest)) continue; // the same bytes under two roles
      const health = await this.store.checkBlob(digest);
      if (health === "corrupt") {
        throw new WmbError(
          "INTEGRITY",
          `the ${b.role} of ${q.identity} in the remote store ${this.store.dir} no longer hashes to its digest (${digest}); it was removed and nothing ran: the next dispatch sends it again.`,
        );
      }
      if (health === "ok") {
        if (b.role === "spec") this.checkSpec(await readSpec(this.store.blobPath(digest), q.identity), q);
        continue;
      }
      const blob = await this.storeIo(b.role, async () => this.stage(b.role, digest, b.size));
      this.lacking.set(digest, blob);
      lacks.push({ digest, offset: blob.offset });
    }
    await this.writer.json({ t: "lacks", blobs: lacks });
  }

  /** Where a lacking blob's bytes go: its resumable .part when no live server holds it. */
  private stage(role: BlobRole, digest: Digest, size: number): Incoming {
    const tmp = join(this.store.dir, "cas", "tmp");
    const part = join(tmp, `ssh-${digest}.part`);
    const lock = join(tmp, `ssh-${digest}.lock`);
    if (takeLock(lock)) {
      let offset = 0;
      try {
        offset = statSync(part).size;
      } catch {
        // nothing kept
      }
      if (offset > size) offset = 0; // not a prefix of this blob: start again
      return { role, digest, size, offset, path: part, lock, received: offset };
    }
    return { role, digest, size, offset: 0, path: join(tmp, `ssh-${digest}.${process.pid}-${randomBytes(4).toString("hex")}`), received: 0 };
  }

  private async onBlob(digest: unknown, offset: unknown): Promise<void> {
    if (this.receiving) throw new ProtocolError("a blob started inside another");
    const blob = typeof digest === "string" ? this.lacking.get(digest as Digest) : undefined;
    if (!blob) throw new ProtocolError(`blob ${String(digest)} was not asked for`);
    if (offset !== blob.offset || blob.received !== blob.offset) throw new ProtocolError(`blob ${blob.digest} sent from ${String(offset)}, not ${blob.offset}, or twice`);
    const fh = await this.storeIo(blob.role, () => fsp.open(blob.path, blob.offset > 0 ? "r+" : "w"));
    this.receiving = { blob, fh };
    await this.storeIo(blob.role, () => fh.truncate(blob.offset));
    if (blob.received === blob.size) await this.finishBlob();
  }

  private async blobBytes(bytes: Buffer): Promise<void> {
    const r = this.receiving;
    if (!r) throw new ProtocolError("blob bytes outside a blob");
    if (r.blob.received + bytes.length > r.blob.size) throw new ProtocolError(`more bytes than blob ${r.blob.digest} has`);
    await this.storeIo(r.blob.role, () => r.fh.write(bytes, 0, bytes.length, r.blob.received));
    r.blob.received += bytes.length;
    if (r.blob.received === r.blob.size) await this.finishBlob();
  }

  private async finishBlob(): Promise<void> {
    const r = this.receiving!;
    this.receiving = undefined;
    await this.storeIo(r.blob.role, async () => {
      await r.fh.sync();
      await r.fh.close();
    });
  }

  /** A file-system failure of the remote store (full, read-only, not ours) as one sentence. */
  private async storeIo<T>(role: BlobRole, io: () => Promise<T>): Promise<T> {
    try {
      return await io();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (!code || isWmbError(e)) throw e;
      const why = code === "ENOSPC" ? "its file system is full" : code === "EROFS" ? "its file system is read-only" : code === "EACCES" || code === "EPERM" ? "it is not writable by this user" : `${code}`;
      throw new WmbError("STORE", `The remote store ${this.store.dir} cannot take the ${role}: ${why}; free space there or pass another --remote-store.`);
    }
  }

  private checkSpec(bytes: Buffer, q: Query): SealedSpec {
    const what = `the spec of ${q.identity} (sent to the remote)`;
    let value: unknown;
    try {
      value = JSON.parse(bytes.toString("utf8"));
    } catch {
      throw new WmbError("INTEGRITY", `${what} is not JSON; nothing was admitted.`);
    }
    const spec = checkSealedSpec(value, {}, what);
    if (spec.seal.digest !== q.identity) throw new WmbError("INTEGRITY", `${what} is sealed as ${spec.seal.digest}, not ${q.identity}; nothing was admitted.`);
    for (const [role, ref] of [["kernel", spec.kernel_ref], ["rootfs", spec.rootfs_ref]] as const) {
      const b = q.blobs.find((x) => x.role === role)!;
      if (ref.digest !== `blake3:${b.digest}` || ref.size !== b.size) {
        throw new WmbError("INTEGRITY", `${what} names a ${role} (${ref.digest}, ${ref.size} bytes) other than the one sent (blake3:${b.digest}, ${b.size} bytes); nothing was admitted.`);
      }
    }
    return spec;
  }

  private async onCommit(): Promise<void> {
    const q = this.query;
    if (!q) throw new ProtocolError("commit before query");
    if (this.receiving) throw new ProtocolError(`commit inside blob ${this.receiving.blob.digest}`);
    if (q.blobs.length === 0) {
      if (this.store.machineSpecDigest(q.identity) === undefined) {
        throw new WmbError("USAGE", `No machine ${q.identity} in the remote store ${this.store.dir}, and none in the local store to send; build, pull or import it first.`, { subject: q.identity });
      }
      this.committed = true;
      await this.writer.json({ t: "committed", identity: q.identity, received_bytes: 0 });
      return;
    }
    let received = 0;
    for (const b of this.lacking.values()) {
      if (b.received !== b.size) throw new ProtocolError(`commit before blob ${b.digest} was sent whole`);
      received += b.size - b.offset;
    }
    // Everything is verified before anything is admitted.
    const specRef = q.blobs.find((b) => b.role === "spec")!;
    const stagedSpec = this.lacking.get(specRef.digest as Digest);
    const specBytes = await readSpec(stagedSpec ? stagedSpec.path : this.store.blobPath(specRef.digest as Digest), q.identity);
    const specDigest = hashBytes(specBytes);
    if (specDigest !== specRef.digest) {
      if (stagedSpec) await this.drop(stagedSpec);
      throw new WmbError("INTEGRITY", `the spec received for ${q.identity} hashes to ${specDigest}, not ${specRef.digest}; nothing was admitted.`);
    }
    const spec = this.checkSpec(specBytes, q);
    for (const b of this.lacking.values()) {
      const actual = await hashFile(b.path);
      if (actual.digest !== b.digest || actual.size !== b.size) {
        await this.drop(b);
        throw new WmbError("INTEGRITY", `the ${b.role} received for ${q.identity} hashes to ${actual.digest} (${actual.size} bytes), not ${b.digest} (${b.size} bytes); nothing was admitted, and the next dispatch sends it again.`);
      }
    }
    for (const b of this.lacking.values()) {
      // Staged files are not used again: they move into the store instead of being copied.
      const admitted = await this.storeIo(b.role, () => this.store.moveFile(b.path));
      if (admitted.digest !== b.digest) throw new WmbError("INTEGRITY", `the ${b.role} of ${q.identity} changed on disk while it was admitted; try again.`);
      await this.drop(b);
    }
    this.lacking.clear();
    registerMachine(this.store, spec, specDigest);
    this.committed = true;
    await this.writer.json({ t: "committed", identity: q.identity, received_bytes: received });
  }

  /** Remove a staged file and its lock. */
  private async drop(b: Incoming): Promise<void> {
    await fsp.rm(b.path, { force: true });
    if (b.lock) rmSync(b.lock, { force: true });
    b.lock = undefined;
  }

  private onRun(req: RunRequest): void {
    if (!this.committed || this.run) throw new ProtocolError("run before commit, or twice");
    if (req.identity !== this.query!.identity || !Array.isArray(req.args) || !Array.isArray(req.mounts)) throw new ProtocolError("a malformed run request");
    const stdin = new PassThrough();
    const abort = new AbortController();
    const frames = (kind: typeof FRAME.stdout | typeof FRAME.stderr) =>
      new Writable({
        write: (chunk: Buffer, _enc, cb) => {
          this.writer.bytes(kind, chunk).then(() => cb(), cb);
        },
      });
    const stdout = frames(FRAME.stdout);
    const stderr = frames(FRAME.stderr);
    const flushed = (w: Writable) => new Promise<void>((r) => w.end(r));
    const done = (async () => {
      let message: Exit | Failure;
      try {
        const r = await this.hook(this.store, req, { stdin, stdout, stderr, signal: abort.signal });
        message = { t: "exit", code: r.code, checked_ms: r.checkedMs, transpile_ms: r.transpileMs ?? null, ran_ms: r.ranMs };
      } catch (e) {
        message = isWmbError(e)
          ? { t: "error", code: e.code, message: e.message, ...(e.detail ? { detail: e.detail } : {}) }
          : { t: "error", code: "INTERNAL", message: `internal error: ${(e as Error)?.stack ?? String(e)}` };
      }
      await Promise.all([flushed(stdout), flushed(stderr)]);
      stdin.destroy();
      this.run = undefined;
      await this.writer.json(message).catch(() => {});
    })();
    this.run = { stdin, abort, done };
  }

  /** The session is over (the client said bye, went away, or a failure was sent): stop the
   * guest, close what is open, release the locks (the .part files stay, to be resumed). */
  async end(): Promise<void> {
    const run = this.run;
    if (run) {
      run.abort.abort();
      await run.done;
    }
    if (this.receiving) {
      await this.receiving.fh.close().catch(() => {});
      this.receiving = undefined;
    }
    for (const b of this.lacking.values()) {
      if (b.lock) rmSync(b.lock, { force: true });
      else await fsp.rm(b.path, { force: true }); // a private temp cannot be resumed
    }
  }
}

function tooLarge(identity: string, size: number): WmbError {
  return new WmbError("INTEGRITY", `the spec of ${identity} (sent to the remote) is ${size} bytes, more than the ${MAX_SPEC_BYTES} a sealed spec may have; nothing was admitted.`);
}

/** A spec's bytes, read only when the file is within MAX_SPEC_BYTES. */
async function readSpec(path: string, identity: string): Promise<Buffer> {
  const fh = await fsp.open(path, "r");
  try {
    const { size } = await fh.stat();
    if (size > MAX_SPEC_BYTES) throw tooLarge(identity, size);
    const bytes = Buffer.alloc(size);
    const { bytesRead } = await fh.read(bytes, 0, size, 0);
    return bytes.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Take a lock file for this process; a lock whose process is gone is taken over. */
function takeLock(path: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, String(process.pid), { flag: "wx" });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    let pid = 0;
    try {
      pid = Number(readFileSync(path, "utf8"));
    } catch {
      // removed meanwhile: try again
    }
    if (pid > 0 && alive(pid)) return false;
    rmSync(path, { force: true });
  }
  return false;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
