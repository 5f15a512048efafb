// One error type for everything a user can cause. It carries a code (for scripts and
// tests), the label or file it is about, a sentence that says what to do, and the exit
// code the CLI returns. Anything else that escapes is an internal bug and keeps its stack.

export type ErrorCode =
  | "BUILD_FILE" // BUILD.ts missing, syntax/type error, or throws while loading
  | "BAD_LABEL"
  | "UNKNOWN_LABEL"
  | "DUPLICATE_TARGET"
  | "DUPLICATE_OUTPUT"
  | "CYCLE"
  | "MISSING_SOURCE"
  | "ACTION_FAILED"
  | "MISSING_OUTPUT"
  | "STORE"
  | "INTEGRITY" // a digest did not match: exit code 3
  | "USAGE"
  | "SANDBOX" // --sandbox bwrap, and bwrap does not work on this host
  | "REMOTE" // a registry refused a request, failed, or could not be reached
  | "SSH" // an ssh target could not be used: unreachable, auth refused, unknown host key, remote wmb missing or too old, remote store unusable, connection cut: exit 4
  | "INTERRUPTED";

const EXIT_CODES: Partial<Record<ErrorCode, number>> = {
  INTEGRITY: 3,
  SSH: 4,
  USAGE: 2,
  INTERRUPTED: 130,
};

export class WmbError extends Error {
  readonly code: ErrorCode;
  readonly subject?: string;
  readonly detail?: string;

  constructor(code: ErrorCode, message: string, opts: { subject?: string; detail?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "WmbError";
    this.code = code;
    this.subject = opts.subject;
    this.detail = opts.detail;
  }

  get exitCode(): number {
    return EXIT_CODES[this.code] ?? 1;
  }
}

export function isWmbError(e: unknown): e is WmbError {
  return e instanceof WmbError;
}
