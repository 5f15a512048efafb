// The ssh transport's wire format, on the stdio of one ssh session.
//
// The server first writes MAGIC; the client skips whatever precedes it (a remote shell's rc file
// may print on stdout), then both sides exchange frames: a 4-byte big-endian payload length, a
// 1-byte kind, the payload. JSON frames carry the messages (protocol.ts); the others carry bytes
// (a blob's, or the guest's stdin, stdout and stderr) and need no escaping. Reading is pull-based
// (the input is read only as fast as frames are asked for), writing waits for 'drain': both sides
// keep to bounded memory whatever the other does.
import type { Readable, Writable } from "node:stream";

export const MAGIC = "\n@@wmb-remote-serve@@\n";

export const FRAME = {
  json: 0x4a, // J
  blob: 0x42, // B: bytes of the blob announced by the last "blob" message
  stdin: 0x49, // I
  stdout: 0x4f, // O
  stderr: 0x45, // E
} as const;
export type FrameKind = (typeof FRAME)[keyof typeof FRAME];

/** Largest payload either side accepts; blobs and stdio travel in chunks of at most CHUNK. */
export const MAX_FRAME = 4 << 20;
export const CHUNK = 256 << 10;
/** How much a remote shell may print before MAGIC before the client gives up. */
const MAX_JUNK = 1 << 20;

export interface Frame {
  kind: number;
  payload: Buffer;
}

export class ProtocolError extends Error {}
/** The input ended inside a frame: the connection was cut, not a peer's mistake. */
export class TruncatedError extends ProtocolError {}

export class FrameReader {
  private readonly it: AsyncIterator<Buffer | string>;
  private chunks: Buffer[] = [];
  private length = 0;
  private magicSeen: boolean;
  private ended = false;
  /** What preceded MAGIC (a remote shell's greeting), kept for error messages. */
  junk = "";

  constructor(input: Readable, opts: { expectMagic: boolean }) {
    this.it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
    this.magicSeen = !opts.expectMagic;
  }

  /** Read until MAGIC; false when the input ended first. */
  async handshake(): Promise<boolean> {
    const magic = Buffer.from(MAGIC, "latin1");
    for (;;) {
      const all = this.take(this.length);
      const at = all.indexOf(magic);
      if (at >= 0) {
        this.junk += all.subarray(0, at).toString("utf8");
        this.put(all.subarray(at + magic.length));
        this.magicSeen = true;
        return true;
      }
      // Keep the tail that may be the start of MAGIC.
      const keep = Math.min(all.length, magic.length - 1);
      this.junk += all.subarray(0, all.length - keep).toString("utf8");
      this.put(all.subarray(all.length - keep));
      if (this.junk.length > MAX_JUNK) throw new ProtocolError("the remote printed more than 1 MiB without starting the protocol");
      if (!(await this.fill())) {
        this.junk += this.take(this.length).toString("utf8");
        return false;
      }
    }
  }

  /** The next frame, or undefined at a clean end of input (between frames). */
  async next(): Promise<Frame | undefined> {
    if (!this.magicSeen) throw new Error("internal: frame read before the handshake");
    while (this.length < 5) {
      if (!(await this.fill())) {
        if (this.length === 0) return undefined;
        throw new TruncatedError("the stream ended inside a frame header");
      }
    }
    const header = this.peek(5);
    const size = header.readUInt32BE(0);
    if (size > MAX_FRAME) throw new ProtocolError(`a frame of ${size} bytes is larger than the ${MAX_FRAME} allowed`);
    while (this.length < 5 + size) {
      if (!(await this.fill())) throw new TruncatedError("the stream ended inside a frame");
    }
    const bytes = this.take(5 + size);
    return { kind: bytes[4]!, payload: bytes.subarray(5) };
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const b = typeof r.value === "string" ? Buffer.from(r.value) : r.value;
    this.put(b);
    return true;
  }

  private put(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  private peek(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = all.length ? [all] : [];
    return all.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.length = rest.length;
    return out;
  }
}

export class FrameWriter {
  private failed: Error | undefined;

  constructor(private readonly out: Writable) {
    out.on("error", (e) => (this.failed ??= e));
  }

  /** Write one frame; resolves once the stream has taken it (so a slow reader slows the writer),
   * rejects when the stream failed or was closed (a write after that never calls back otherwise). */
  async send(kind: FrameKind, payload: Uint8Array): Promise<void> {
    if (this.failed) throw this.failed;
    if (this.out.destroyed || this.out.writableEnded) throw (this.failed = new Error("the stream is closed"));
    if (payload.length > MAX_FRAME) throw new Error(`internal: frame of ${payload.length} bytes`);
    const header = Buffer.alloc(5);
    header.writeUInt32BE(payload.length, 0);
    header[4] = kind;
    await new Promise<void>((resolve, reject) => {
      this.out.write(header);
      this.out.write(payload, (e) => (e ? reject((this.failed ??= e)) : resolve()));
    });
  }

  json(message: object): Promise<void> {
    return this.send(FRAME.json, Buffer.from(JSON.stringify(message), "utf8"));
  }

  /** Bytes in chunks of at most CHUNK. */
  async bytes(kind: FrameKind, data: Uint8Array): Promise<void> {
    for (let at = 0; at < data.length; at += CHUNK) await this.send(kind, data.subarray(at, Math.min(data.length, at + CHUNK)));
  }
}

/** A JSON frame's message; a ProtocolError for anything else. */
export function parseJson(f: Frame): { t: string } & Record<string, unknown> {
  if (f.kind !== FRAME.json) throw new ProtocolError(`expected a message, got a frame of kind ${f.kind}`);
  let v: unknown;
  try {
    v = JSON.parse(f.payload.toString("utf8"));
  } catch {
    throw new ProtocolError("a message frame is not JSON");
  }
  if (!v || typeof v !== "object" || typeof (v as { t?: unknown }).t !== "string") throw new ProtocolError("a message has no type");
  return v as { t: string } & Record<string, unknown>;
}
