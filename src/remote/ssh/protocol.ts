// The messages of the ssh transport (JSON frames, see frames.ts), in the order they flow.
// Bump PROTOCOL on any incompatible change: a client refuses a server that speaks another one.
import type { ErrorCode } from "../../errors.ts";

// 2: the remote command line carries nothing but a ServeRequest word (target.ts).
export const PROTOCOL = 2;

export type BlobRole = "spec" | "kernel" | "rootfs";

/** server -> client, first, right after MAGIC */
export interface Hello {
  t: "hello";
  protocol: number;
  wmb: string;
  node: string;
  /** the remote store's absolute path */
  store: string;
  /** bytes free for an unprivileged user on the store's filesystem, when known */
  free_bytes: number | null;
  /** set when the store cannot be opened or the session cannot be served as asked (the server
   * ends after this hello) */
  store_error?: string;
}

/** client -> server: the machine and its blobs; answered by Lacks or Failure */
export interface Query {
  t: "query";
  identity: string;
  /** empty when the client has no copy: the server must hold the machine already */
  blobs: { role: BlobRole; digest: string; size: number }[];
  /** a run follows: the server may load what running needs while the blobs arrive */
  run?: boolean;
}

/** server -> client: the blobs to send, each from `offset` (bytes of it the server kept from a
 * transfer that was cut off) */
export interface Lacks {
  t: "lacks";
  blobs: { digest: string; offset: number }[];
}

/** client -> server: followed by blob frames holding bytes offset..size of that blob */
export interface BlobStart {
  t: "blob";
  digest: string;
  offset: number;
}

/** client -> server, after the last blob; answered by Committed or Failure */
export interface Commit {
  t: "commit";
}

export interface Committed {
  t: "committed";
  identity: string;
  received_bytes: number;
}

/** client -> server: run the committed machine; stdin frames and StdinEnd may follow, and Signal */
export interface RunRequest {
  t: "run";
  identity: string;
  args: string[];
  mounts: string[];
  db?: string;
}

export interface StdinEnd {
  t: "stdin-end";
}

export interface Signal {
  t: "signal";
  signal: "SIGINT";
}

/** server -> client: the run ended (after the last stdout and stderr frames) */
export interface Exit {
  t: "exit";
  code: number;
  /** remote timings, ms */
  checked_ms: number;
  transpile_ms: number | null;
  ran_ms: number;
}

/** server -> client: the request failed; the server ends the session after sending it */
export interface Failure {
  t: "error";
  code: ErrorCode | "INTERNAL";
  message: string;
  detail?: string;
}

/** client -> server: nothing more (closing stdin says the same) */
export interface Bye {
  t: "bye";
}

export const DIGEST = /^[0-9a-f]{64}$/;
