// The contract between the engine and the rule library.
// A rule is data plus one function: it declares how a target's attributes map to
// outputs, and `run` turns materialized inputs into those outputs inside a sandbox.
// A rule never touches the store, the scheduler or the terminal.
// How to add one: docs/ARCHITECTURE.md, "Where to add things".

/** Attributes every target has. `srcs` holds labels (":x", "//pkg:x") and/or
 * source files relative to the package directory. */
export interface CommonAttrs {
  name: string;
  srcs?: string[];
}

export interface ExecOptions {
  stdin?: string | Uint8Array;
  /** Extra variables on top of the action's scrubbed environment. */
  env?: Record<string, string>;
  /** Working directory relative to the sandbox (default: the sandbox root). */
  cwd?: string;
}

/** The end of what a command wrote: the last 64 KiB of its stdout, and of its stderr (the
 * engine keeps no more; a rule that needs a command's whole output has it write a file). */
export interface ExecResult {
  stdout: string;
  stderr: string;
}

/** A compiler the engine owns for the whole build (hermetic: one LLVM module per
 * process, reused by every action; system: Debian's clang). */
export interface Toolchain {
  readonly kind: "hermetic" | "system";
  /** Files whose bytes define this toolchain; their digests enter every key of a rule
   * that sets `usesToolchain`. */
  identityFiles(): Promise<string[]>;
  /** Run `clang` or `wasm-ld` with argv in `cwd` (an absolute sandbox path). `env` is the
   * action's environment, for a toolchain that runs host processes (the hermetic one has no
   * host environment). Rejects with a CommandError on non-zero exit. */
  run(tool: "clang" | "wasm-ld", args: string[], cwd: string, signal?: AbortSignal, env?: Readonly<Record<string, string>>): Promise<ExecResult>;
  close(): Promise<void>;
}

/** One input as it sits in the sandbox. */
export interface MaterializedInput {
  /** Path relative to the sandbox root. */
  path: string;
  /** blake3 hex digest of its bytes. */
  digest: string;
  /** The label that produced it, or undefined for a source file. */
  from?: string;
}

export interface ActionContext<A> {
  readonly label: string;
  readonly attrs: A;
  /** Absolute path of the sandbox: inputs are there, outputs are to be written there. */
  readonly dir: string;
  readonly inputs: readonly MaterializedInput[];
  /** Declared outputs, relative to `dir` (their directories exist); each must exist when `run` resolves. */
  readonly outputs: readonly string[];
  /** Scrubbed environment: TZ, LC_ALL, SOURCE_DATE_EPOCH, PATH, and the rule's declared vars. */
  readonly env: Readonly<Record<string, string>>;
  readonly signal: AbortSignal;
  /** Present when the rule sets `usesToolchain`. */
  readonly toolchain?: Toolchain;
  /** Run a host command in the sandbox with the scrubbed environment. */
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** A line of progress for the user (shown on non-terminals, and in verbose mode). */
  log(line: string): void;
}

export interface RuleDef<A extends CommonAttrs = CommonAttrs> {
  /** Stable rule name; enters every key. */
  readonly name: string;
  /** Bump when the rule's behaviour changes; enters every key. */
  readonly version: number;
  /** Attribute types checked when BUILD.ts declares a target ("string", "string[]",
   * "number", "boolean", "object"; a trailing "?" makes it optional). `name` and `srcs`
   * are always checked. Gives BUILD.ts type errors a line number at load time. */
  readonly attrTypes?: Readonly<Record<string, AttrType>>;
  /** Output paths (relative) this target produces, from its attributes. */
  outputs(attrs: A): string[];
  /** Names of host environment variables the action may see; their values enter the key. */
  env?(attrs: A): string[];
  /** Versions of npm-pinned tools the rule runs in-process (e.g. "jco-transpile@0.15.0");
   * they enter the key next to the rule's own version. */
  readonly tools?: string;
  /** True when the rule runs the C toolchain: its identity enters the key. */
  readonly usesToolchain?: boolean;
  /** The output that is a sealed machine spec, for a rule that seals machines: `build`
   * registers it by identity (so `wmb run blake3:…` finds it). Machines are known by the rule
   * that made them, never by sniffing output contents. */
  machineOutput?(attrs: A): string;
  /** The `name` that sealed spec has (the rule refuses a spec with another): a result for the
   * target from a remote cache whose spec names another machine is not used. */
  machineName?(attrs: A): string;
  /** True when the rule may use the network (fetch): the engine never verifies it by re-running offline. */
  readonly network?: boolean;
  run(ctx: ActionContext<A>): Promise<void>;
}

/** How many stderr lines a failed command keeps for the user, and how many characters at most
 * (a line can be megabytes long). */
const TAIL_LINES = 30;
const TAIL_CHARS = 4096;

/** The last lines of a command's output. */
export function tailLines(text: string, lines = TAIL_LINES): string {
  const tail = text.trimEnd().split("\n").slice(-lines).join("\n");
  return tail.length > TAIL_CHARS ? `…${tail.slice(-TAIL_CHARS)}` : tail;
}

/** A command (a sandboxed host command or a toolchain tool) that exited non-zero or could not
 * start. The engine shows its command and stderr tail under the failing action. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    /** null when it could not start or was killed by a signal. */
    readonly exitCode: number | null,
    /** The tail of its stderr (or stdout when stderr was empty). */
    readonly stderr: string,
    /** How it failed, when its exit status does not say ("wrote more than …"). */
    failure?: string,
  ) {
    super(`command ${failure ?? (exitCode === null ? "could not run" : `exited with code ${exitCode}`)}: ${command}`);
    this.name = "CommandError";
  }
}

/** What enters a key as the rule's identity: name, version, and in-process tool versions. */
export function ruleId(rule: Pick<RuleDef<any>, "name" | "version" | "tools">): string {
  return `${rule.name}@${rule.version}${rule.tools ? `+${rule.tools}` : ""}`;
}

export type AttrType =
  | "string" | "string[]" | "number" | "boolean" | "object"
  | "string?" | "string[]?" | "number?" | "boolean?" | "object?";

export function defineRule<A extends CommonAttrs>(def: RuleDef<A>): RuleDef<A> {
  return def;
}
