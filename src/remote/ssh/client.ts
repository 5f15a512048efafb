// Running sealed machines on hosts reached by ssh: `wmb run --target ssh://…`, `wmb store copy
// --to ssh://…`, `wmb remote check ssh://…`. The remote end is server.ts (`wmb remote serve`).
//
// Design (the choices issue 11 leaves open):
// - The user's OpenSSH, not an ssh library: ~/.ssh/config, aliases, agents, ProxyJump,
//   known_hosts and ControlMaster apply as for git and rsync; WMB_SSH_COMMAND replaces `ssh`
//   (run by sh, like GIT_SSH_COMMAND). Always `-o BatchMode=yes` (a script never hangs on a
//   prompt); host keys are always checked (an unknown one is reported, never accepted).
// - One ssh session carries a framed protocol (frames.ts, protocol.ts) on its stdio. The server
//   prints a magic line first and the client skips whatever precedes it, so a chatty rc file on
//   the remote cannot break it; the remote command is one absolute-or-PATH word from
//   --remote-wmb, and its failure to start (exit 127, a usage error from an old wmb) is told apart
//   from ssh's own (exit 255, classified by ssh's message) and from the guest's exit code (sent
//   in a message, never taken from ssh's status).
// - One round trip learns what is missing: the client names the spec, kernel and rootfs with
//   their BLAKE3 digests and sizes; the server answers with those its store lacks (and how much
//   of each it kept from a cut-off transfer), the client streams just those bytes, and the server
//   verifies every digest, the seal, the identity and the refs before admitting anything
//   (server.ts). A second dispatch of the same machine sends no blob bytes.
// - The run: with pipes (the usual case, and every script), the guest's stdin, stdout and stderr
//   travel as frames in the same session and its exit code as a message; Ctrl-C sends a "signal"
//   message (a second one cuts the connection) and the server stops the guest, as it does when
//   the session ends for any reason: without a pty, sshd would leave a remote process running when
//   the connection drops, which is why the run is not a plain `ssh host wmb run`. When both stdin
//   and stdout are a terminal, the guest must get a terminal too: after the same copy session, a
//   second ssh invocation with `-t` runs `wmb remote serve` with the run in its --request word
//   (target.ts), which runs the machine in a remote pty, so prompts, line editing and Ctrl-C
//   behave as locally (ControlMaster in ~/.ssh/config makes it reuse the connection). There
//   ssh's status is the exit code, and 255 is reported as ssh's failure.
// - Nothing the user typed is parsed by a remote shell: the remote command line is the
//   --remote-wmb prefix, fixed words and one base64 word (target.ts); the guest's arguments
//   travel in that word or in a frame, as JSON strings.
// - No shared "remote" interface with the OCI client: a registry is a passive blob store reached
//   by HTTP, an ssh target is an active peer that verifies and runs; what they share (verify
//   before admitting, Store.putFile, checkSealedSpec) is already shared code.
// - Failures are one sentence with exit code 4 (WmbError "SSH"): unreachable, authentication
//   refused, unknown or changed host key, remote wmb or Node.js missing or too old, remote store
//   unusable, connection cut (a later dispatch resumes: server.ts keeps the partial blob). A
//   remote integrity failure is exit 3, as locally; the guest's own exit code passes through.
import { spawn, type ChildProcess } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { hashBytes } from "../../digest.ts";
import { WmbError, type ErrorCode } from "../../errors.ts";
import type { LoadedMachine } from "../../machine.ts";
import { CHUNK, FRAME, FrameReader, FrameWriter, parseJson, ProtocolError } from "./frames.ts";
import { PROTOCOL, type BlobRole, type Exit, type Failure, type Hello, type Lacks, type RunRequest } from "./protocol.ts";
import { remoteCommand, sshArgs, sshSpawn, type SshTarget } from "./target.ts";

export interface SshOptions {
  /** The remote wmb command (default "wmb", found on the remote's non-interactive PATH). */
  remoteWmb?: string;
  /** The remote store directory (default: the remote wmb's own). */
  remoteStore?: string;
  env?: NodeJS.ProcessEnv;
}

/** A machine to ship, or only an identity the remote store must hold already. */
export type Shippable = LoadedMachine | { identity: string };

export interface ShipReport {
  identity: string;
  /** blobs the machine has (0 when only its identity was given) */
  blobs: number;
  /** blobs the remote lacked, and the bytes sent for them */
  sent: number;
  sentBytes: number;
  ms: number;
}

const DEFAULT_REMOTE_WMB = "wmb";
/** How long ssh and the remote wmb together may take to say hello (WMB_SSH_TIMEOUT, seconds). */
const HELLO_TIMEOUT_S = 60;

function helloTimeoutSeconds(env: NodeJS.ProcessEnv): number {
  const v = Number(env.WMB_SSH_TIMEOUT);
  return Number.isFinite(v) && v > 0 ? v : HELLO_TIMEOUT_S;
}

function helloTimeout(t: SshTarget, remoteWmb: string, seconds: number): WmbError {
  return new WmbError("SSH", `No answer from ${remoteWmb} on ${t.display} within ${seconds} s (ssh or the remote command hung); check the host and --remote-wmb, or raise WMB_SSH_TIMEOUT.`);
}
const STDERR_TAIL = 16 << 10;

/** One `ssh host wmb remote serve` session, past its hello. */
export class SshSession {
  readonly connectMs: number;
  private interrupted = false;

  private constructor(
    readonly target: SshTarget,
    readonly hello: Hello,
    private readonly child: ChildProcess,
    private readonly reader: FrameReader,
    private readonly writer: FrameWriter,
    private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
    private readonly stderrTail: () => string,
    readonly remoteWmb: string,
    connectMs: number,
  ) {
    this.connectMs = connectMs;
  }

  static async open(t: SshTarget, opts: SshOptions = {}): Promise<SshSession> {
    const t0 = performance.now();
    const remoteWmb = opts.remoteWmb?.trim() || DEFAULT_REMOTE_WMB;
    const how = sshSpawn([...sshArgs(t, { tty: false }), remoteCommand(remoteWmb, opts.remoteStore !== undefined ? { store: opts.remoteStore } : {})], opts.env);
    const child = spawn(how.file, how.args, { stdio: ["pipe", "pipe", "pipe"], env: opts.env ?? process.env });
    let tail = "";
    child.stderr!.on("data", (b: Buffer) => {
      tail = (tail + b.toString("utf8")).slice(-STDERR_TAIL);
    });
    child.stdin!.on("error", () => {}); // a dead ssh is reported from its exit status and stderr
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError?: NodeJS.ErrnoException }>((resolve) => {
      child.once("error", (e: NodeJS.ErrnoException) => resolve({ code: null, signal: null, spawnError: e }));
      child.once("close", (code, signal) => resolve({ code, signal }));
    });
    const reader = new FrameReader(child.stdout!, { expectMagic: true });
    const writer = new FrameWriter(child.stdin!);
    let interrupted = false;
    const stopOnSigint = () => {
      interrupted = true;
      child.kill("SIGTERM");
    };
    process.once("SIGINT", stopOnSigint);
    // ssh or the remote command may hang (a host that never answers, a --remote-wmb that waits for
    // something): no hello within the limit ends the attempt with one sentence.
    const limitS = helloTimeoutSeconds(opts.env ?? process.env);
    let timedOut = false;
    const helloTimer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGTERM");
    }, limitS * 1000);
    try {
      let started = false;
      let chatty: ProtocolError | undefined;
      try {
        started = await reader.handshake();
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        chatty = e;
        child.kill("SIGTERM");
      }
      if (!started) {
        // The output ended (or overflowed) before the protocol started: why is in ssh's status.
        const timer = setTimeout(() => child.kill("SIGTERM"), 5_000);
        const x = await exited;
        clearTimeout(timer);
        if (x.spawnError) {
          throw new WmbError("SSH", x.spawnError.code === "ENOENT" ? `Cannot run ${how.shown}: it is not installed here (install OpenSSH's client, e.g. apt-get install openssh-client).` : `Cannot run ${how.shown}: ${x.spawnError.message}.`);
        }
        if (interrupted) throw new WmbError("INTERRUPTED", `Interrupted while connecting to ${t.display}.`);
        if (timedOut) throw helloTimeout(t, remoteWmb, limitS);
        if (chatty) throw new WmbError("SSH", `${remoteWmb} on ${t.display} did not start wmb's protocol: ${chatty.message}; check --remote-wmb.`);
        throw startFailure(t, remoteWmb, x.code, tail, reader.junk);
      }
      let hello: Hello;
      try {
        const f = await reader.next();
        if (!f) throw new ProtocolError("no hello");
        hello = parseJson(f) as unknown as Hello;
        if (hello.t !== "hello") throw new ProtocolError("no hello");
        const strings = [hello.wmb, hello.node, hello.store, hello.store_error ?? ""].every((x) => typeof x === "string");
        if (typeof hello.protocol !== "number" || !strings) throw new ProtocolError("a malformed hello");
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        child.kill("SIGTERM");
        if (timedOut) throw helloTimeout(t, remoteWmb, limitS);
        throw new WmbError("SSH", `The wmb on ${t.display} (${remoteWmb}) started but did not say hello (${e.message}); install the same wmb version there as here.`);
      }
      clearTimeout(helloTimer);
      if (hello.protocol !== PROTOCOL) {
        child.kill("SIGTERM");
        throw new WmbError("SSH", `The wmb on ${t.display} (version ${hello.wmb}) speaks ssh protocol ${hello.protocol} and this one ${PROTOCOL}; install the same wmb version on both hosts.`);
      }
      const nodeMajor = Number(/^v(\d+)\./.exec(hello.node)?.[1] ?? 0);
      if (nodeMajor < 20) {
        child.kill("SIGTERM");
        throw new WmbError("SSH", `Node.js on ${t.display} is ${hello.node}; wmb needs Node.js 20 or newer there (or --remote-wmb naming a newer node).`);
      }
      if (hello.store_error) {
        child.kill("SIGTERM");
        throw new WmbError("SSH", `${t.display}: ${hello.store_error.replace(/choose another --store or WMB_STORE\.$/, "pass another --remote-store.")}`);
      }
      return new SshSession(t, hello, child, reader, writer, exited, () => tail, remoteWmb, performance.now() - t0);
    } catch (e) {
      clearTimeout(helloTimer);
      child.kill("SIGTERM");
      throw e;
    } finally {
      process.off("SIGINT", stopOnSigint);
    }
  }

  /** Send the blobs the remote lacks; the remote verifies them all, then admits them and registers
   * the machine. `thenRun` is sent right behind the commit (no round trip between them): the
   * remote starts it only if the commit succeeded; follow with run(…, { sent: true }). */
  async ship(m: Shippable, thenRun?: Omit<RunRequest, "t">): Promise<ShipReport> {
    const t0 = performance.now();
    const blobs: { role: BlobRole; digest: string; data: Uint8Array }[] =
      "specBytes" in m
        ? [
            { role: "spec", digest: hashBytes(m.specBytes), data: m.specBytes },
            { role: "kernel", digest: m.kernelDigest, data: m.kernel },
            { role: "rootfs", digest: m.rootfsDigest, data: m.rootfs },
          ]
        : [];
    const onSigint = () => {
      this.interrupted = true;
      this.child.kill("SIGTERM");
    };
    process.once("SIGINT", onSigint);
    let sent = 0;
    let sentBytes = 0;
    try {
      await this.guard("asking what it lacks", async () => {
        await this.writer.json({ t: "query", identity: m.identity, blobs: blobs.map((b) => ({ role: b.role, digest: b.digest, size: b.data.length })), run: thenRun !== undefined });
      });
      const lacks = (await this.message("lacks", "asking what it lacks")) as unknown as Lacks;
      const wanted = new Map(lacks.blobs.map((b) => [b.digest, b.offset]));
      await this.guard("sending blobs", async () => {
        for (const b of blobs) {
          const offset = wanted.get(b.digest);
          if (offset === undefined) continue;
          wanted.delete(b.digest);
          if (!Number.isSafeInteger(offset) || offset < 0 || offset > b.data.length) throw new ProtocolError(`the remote asked for ${b.digest} from ${offset}`);
          await this.writer.json({ t: "blob", digest: b.digest, offset });
          await this.writer.bytes(FRAME.blob, b.data.subarray(offset));
          if (offset < b.data.length) sent++; // a blob kept whole from a cut-off transfer costs nothing
          sentBytes += b.data.length - offset;
        }
        if (wanted.size) throw new ProtocolError(`the remote asked for blobs this machine does not have`);
        await this.writer.json({ t: "commit" });
        if (thenRun) await this.writer.json({ t: "run", ...thenRun });
      });
      const done = await this.message("committed", "sending blobs");
      if (done.identity !== m.identity) throw new WmbError("INTEGRITY", `${this.target.display} registered ${String(done.identity)}, not ${m.identity}.`);
      return { identity: m.identity, blobs: blobs.length, sent, sentBytes, ms: performance.now() - t0 };
    } finally {
      process.off("SIGINT", onSigint);
    }
  }

  /** Run the shipped machine with its stdio in frames; resolves with the guest's exit code. */
  async run(req: Omit<RunRequest, "t">, io: { stdin: Readable; stdout: Writable; stderr: Writable }, opts: { sent?: boolean } = {}): Promise<{ code: number; exit?: Exit }> {
    let over = false;
    let signals = 0;
    const onSigint = () => {
      this.interrupted = true;
      if (++signals === 1) this.writer.json({ t: "signal", signal: "SIGINT" }).catch(() => {});
      else this.child.kill("SIGTERM");
    };
    process.on("SIGINT", onSigint);
    const pump = async () => {
      try {
        for await (const chunk of io.stdin) {
          if (over) return;
          const b = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
          for (let at = 0; at < b.length && !over; at += CHUNK) await this.writer.send(FRAME.stdin, b.subarray(at, at + CHUNK));
        }
        if (!over) await this.writer.json({ t: "stdin-end" });
      } catch {
        // the session ended: the reader below reports why
      }
    };
    try {
      if (!opts.sent) await this.guard("starting the run", () => this.writer.json({ t: "run", ...req }));
      void pump();
      for (;;) {
        const f = await this.nextFrame();
        if (!f) {
          if (this.interrupted) return { code: 130 };
          throw await this.lost("the run");
        }
        if (f.kind === FRAME.stdout || f.kind === FRAME.stderr) {
          await writeAll(f.kind === FRAME.stdout ? io.stdout : io.stderr, f.payload);
          continue;
        }
        const msg = parseJson(f);
        if (msg.t === "exit") {
          const exit = msg as unknown as Exit;
          return { code: this.interrupted ? 130 : exit.code, exit };
        }
        if (msg.t === "error") throw this.remoteFailure(msg as unknown as Failure);
        throw new WmbError("SSH", `${this.target.display} sent an unexpected "${msg.t}" message during the run; install the same wmb version on both hosts.`);
      }
    } finally {
      over = true;
      process.off("SIGINT", onSigint);
      if (io.stdin === process.stdin) process.stdin.destroy();
    }
  }

  /** End the session: the server stops whatever still runs and exits, and so does ssh. wmb
   * does not wait for that (it would add a round trip to every dispatch): ssh is left to finish
   * on its own, and does not keep this process alive. */
  async close(): Promise<void> {
    await this.writer.json({ t: "bye" }).catch(() => {});
    this.child.stdin!.end();
    this.child.unref();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();
  }

  /** The next frame, or undefined when the session ended or broke the protocol (the caller
   * reports why, from ssh's status and the server's last words). */
  private async nextFrame(): Promise<Awaited<ReturnType<FrameReader["next"]>> | undefined> {
    try {
      return await this.reader.next();
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      return undefined;
    }
  }

  /** The next message, which must be `type` (a Failure is thrown as its WmbError). */
  private async message(type: string, phase: string): Promise<Record<string, unknown>> {
    const f = await this.nextFrame();
    if (!f) throw await this.lost(phase);
    const msg = parseJson(f);
    if (msg.t === "error") throw this.remoteFailure(msg as unknown as Failure);
    if (msg.t !== type) throw new WmbError("SSH", `${this.target.display} answered "${msg.t}" where "${type}" was expected; install the same wmb version on both hosts.`);
    return msg;
  }

  /** Writing failed (the connection or the server went away): report the server's last word if
   * it sent one (e.g. its store is full), else why the connection ended. */
  private async guard(phase: string, write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (e) {
      if (e instanceof WmbError) throw e;
      if (e instanceof ProtocolError) {
        this.child.kill("SIGTERM");
        throw new WmbError("SSH", `${this.target.display}: ${e.message}; install the same wmb version on both hosts.`);
      }
      await this.message("error", phase); // throws the server's failure, or lost()
      throw await this.lost(phase);
    }
  }

  /** Why the session ended early, as one sentence. */
  private async lost(phase: string): Promise<WmbError> {
    const timer = setTimeout(() => this.child.kill("SIGTERM"), 5_000);
    const x = await this.exited;
    clearTimeout(timer);
    if (this.interrupted) return new WmbError("INTERRUPTED", `Interrupted while ${phase} on ${this.target.display}; a later dispatch resumes where this one stopped.`);
    const tail = this.stderrTail();
    if (x.code === 255) return sshFailure(this.target, tail, `during ${phase}`);
    const last = lastLine(tail);
    return new WmbError(
      "SSH",
      `The connection to ${this.target.display} ended during ${phase}${x.signal ? ` (ssh was killed by ${x.signal})` : x.code ? ` (exit ${x.code}${last ? `: ${last}` : ""})` : ""}; nothing partial was admitted there, and a later dispatch resumes.`,
    );
  }

  private remoteFailure(f: Failure): WmbError {
    const at = this.target.display;
    // A peer's failure, shaped as this side expects whatever it sent (printed through terminalText).
    f = { ...f, code: typeof f.code === "string" && /^[A-Z][A-Z_]*$/.test(f.code) ? f.code : "SSH", message: String(f.message), ...(f.detail !== undefined ? { detail: String(f.detail) } : {}) };
    if (f.code === "INTERNAL") return new WmbError("SSH", `The wmb on ${at} failed: ${firstLine(f.message)}.`, { detail: f.message });
    if (f.code === "STORE") return new WmbError("SSH", `${at}: ${f.message}`, { detail: f.detail });
    const code: ErrorCode = f.code;
    return new WmbError(code, `${at}: ${f.message}`, { detail: f.detail });
  }
}

/** Open a session; the promise never rejects unhandled (the failure is reported where it is
 * awaited), so a caller may connect while it resolves the machine locally. */
export function connect(t: SshTarget, opts: SshOptions = {}): Promise<SshSession> {
  const p = SshSession.open(t, opts);
  p.catch(() => {});
  return p;
}

/** Ship a machine to a host and run it there; resolves with the guest's exit code. */
export async function dispatch(
  session: Promise<SshSession>,
  m: Shippable,
  opts: SshOptions & { args: string[]; mounts: string[]; db?: string; stdin: Readable; stdout: Writable; stderr: Writable },
): Promise<{ code: number; summary: string; shipped: ShipReport }> {
  const tty = opts.stdin === process.stdin && process.stdin.isTTY === true && process.stdout.isTTY === true && opts.stdout === process.stdout;
  const s = await session;
  const t = s.target;
  const req = { identity: m.identity, args: opts.args, mounts: opts.mounts, ...(opts.db !== undefined ? { db: opts.db } : {}) };
  let closed = false;
  try {
    const shipped = await s.ship(m, tty ? undefined : req);
    const head = `${t.url}: connected in ${ms(s.connectMs)} (wmb ${s.hello.wmb}, node ${s.hello.node}), shipped ${shipped.sent} of ${shipped.blobs} blobs (${shipped.sentBytes} bytes) in ${ms(shipped.ms)}`;
    if (tty) {
      await s.close();
      closed = true;
      const code = await runInPty(t, s.remoteWmb, s.hello.store, m.identity, opts);
      return { code, summary: `${head}; ran in a remote terminal`, shipped };
    }
    const r = await s.run(req, opts, { sent: true });
    const remote = r.exit ? `; remote: checked in ${ms(r.exit.checked_ms)}, transpile ${r.exit.transpile_ms === null ? "cached" : ms(r.exit.transpile_ms)}, ran in ${ms(r.exit.ran_ms)}` : "";
    return { code: r.code, summary: head + remote, shipped };
  } finally {
    if (!closed) await s.close();
  }
}

/** The machine run in a remote pseudo-terminal (ssh -t), for a local terminal: the run travels
 * in the command line's one --request word, like everything else. */
async function runInPty(t: SshTarget, remoteWmb: string, store: string, identity: string, opts: SshOptions & { args: string[]; mounts: string[]; db?: string }): Promise<number> {
  const tty = { identity, args: opts.args, mounts: opts.mounts, ...(opts.db !== undefined ? { db: opts.db } : {}) };
  const how = sshSpawn([...sshArgs(t, { tty: true }), remoteCommand(remoteWmb, { store, tty })], opts.env);
  const child = spawn(how.file, how.args, { stdio: "inherit", env: opts.env ?? process.env });
  const ignore = () => {}; // the terminal's Ctrl-C reaches ssh, which passes it on to the remote pty
  process.on("SIGINT", ignore);
  try {
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code, signal) => resolve({ code, signal }));
    });
    if (code === 255) throw new WmbError("SSH", `The ssh connection to ${t.display} failed or was cut (ssh exit 255; ssh's own message is above).`);
    if (signal) return 128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1, SIGKILL: 9 } as Record<string, number>)[signal]!;
    return code ?? 1;
  } finally {
    process.off("SIGINT", ignore);
  }
}

/** Ship a machine to a host (`wmb store copy --to`). */
export async function copyTo(session: Promise<SshSession>, m: Shippable): Promise<ShipReport & { hello: Hello; connectMs: number }> {
  const s = await session;
  try {
    return { ...(await s.ship(m)), hello: s.hello, connectMs: s.connectMs };
  } finally {
    await s.close();
  }
}

/** What the remote wmb says about itself (`wmb remote check`). */
export async function checkRemote(t: SshTarget, opts: SshOptions = {}): Promise<{ hello: Hello; connectMs: number; remoteWmb: string }> {
  const s = await SshSession.open(t, opts);
  await s.close();
  return { hello: s.hello, connectMs: s.connectMs, remoteWmb: s.remoteWmb };
}

// ---- failures as sentences ------------------------------------------------------------------

/** ssh exited 255: its own failure (never the remote command's), told by its message. */
export function sshFailure(t: SshTarget, stderr: string, when = ""): WmbError {
  const at = t.display;
  const line = lastLine(stderr);
  const w = when ? ` ${when}` : "";
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(stderr)) {
    return new WmbError("SSH", `The host key of ${at} has changed since it was recorded in known_hosts; wmb never accepts host keys itself: find out why it changed, then fix known_hosts (ssh-keygen -R).`);
  }
  if (/Host key verification failed|host key is known for|No .* host key is known|authenticity of host/i.test(stderr)) {
    return new WmbError("SSH", `The host key of ${at} is not in known_hosts, and wmb never accepts one itself: check its fingerprint, then add it (connect once with ssh, or ssh-keyscan into known_hosts).`);
  }
  if (/Permission denied|Too many authentication failures|no matching host key type|Authentication failed/i.test(stderr)) {
    const user = t.user ? `${t.user}@` : "";
    return new WmbError("SSH", `${at} refused to authenticate ${user || "you"} (${line}); load a key it accepts into ssh-agent or name it with IdentityFile in ~/.ssh/config: BatchMode allows no password prompt.`);
  }
  if (/Could not resolve hostname/i.test(stderr)) return new WmbError("SSH", `Cannot resolve the host name ${t.host}; check it, or its Host entry in ~/.ssh/config.`);
  if (/Connection refused/i.test(stderr)) return new WmbError("SSH", `Cannot reach ${at}: connection refused (is sshd running and listening on that port?).`);
  if (/timed out|No route to host|Network is unreachable|Name or service not known/i.test(stderr)) return new WmbError("SSH", `Cannot reach ${at}: ${line}.`);
  if (/Connection (closed|reset)|Broken pipe|kex_exchange_identification|Connection to .* closed/i.test(stderr)) {
    return new WmbError("SSH", `The connection to ${at} was closed${w} (${line}); nothing partial was admitted there, and a later dispatch resumes.`);
  }
  return new WmbError("SSH", `ssh to ${at} failed${w} (exit 255${line ? `: ${line}` : ""}).`);
}

/** The remote command ended before the protocol started. */
function startFailure(t: SshTarget, remoteWmb: string, code: number | null, stderr: string, stdout: string): WmbError {
  const at = t.display;
  if (code === 255) return sshFailure(t, stderr);
  const line = lastLine(stderr) || lastLine(stdout);
  if (code === 127 && /env: .?node.?: No such file|node: (command )?not found/i.test(stderr)) {
    return new WmbError("SSH", `Node.js is not on the PATH of non-interactive ssh sessions on ${at} (${line}); install Node.js 20+ there, or pass --remote-wmb "/path/to/node /path/to/wmb/bin/wmb.mjs".`);
  }
  if (code === 127) {
    return new WmbError("SSH", `wmb is not installed on ${at}, or not on the PATH of its non-interactive ssh sessions (${line || `${remoteWmb}: command not found`}); install wmb there (Node.js 20+, a wmb checkout, npm install) and pass --remote-wmb /absolute/path/to/wmb/bin/wmb.mjs.`);
  }
  if (code === 126) return new WmbError("SSH", `${remoteWmb} on ${at} cannot be executed (${line}); check its permissions, or pass --remote-wmb "node /path/to/wmb/bin/wmb.mjs".`);
  if (/is not a wmb command|Command not found/i.test(stderr)) {
    return new WmbError("SSH", `The wmb on ${at} (${remoteWmb}) is too old for ssh targets: it has no \`wmb remote serve\`; install this wmb version there.`);
  }
  return new WmbError("SSH", `${remoteWmb} on ${at} exited with ${code ?? "a signal"} before speaking wmb's protocol${line ? ` (${line})` : ""}; is it wmb, and as new as this one?`);
}

function lastLine(text: string): string {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !/^Warning: Permanently added/.test(l));
  return (lines.at(-1) ?? "").replace(/\.$/, "");
}

function firstLine(text: string): string {
  return (text.split("\n")[0] ?? "").replace(/\.$/, "");
}

function ms(x: number): string {
  return x < 1000 ? `${Math.round(x)} ms` : `${(x / 1000).toFixed(2)} s`;
}

function writeAll(w: Writable, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (w.write(data)) return resolve();
    const onDrain = () => {
      w.off("error", onError);
      resolve();
    };
    const onError = (e: Error) => {
      w.off("drain", onDrain);
      reject(e);
    };
    w.once("drain", onDrain);
    w.once("error", onError);
  });
}
