// ssh://[user@]host[:port] targets, the ssh command line that reaches them, and the remote
// command line. sshd hands that line to the remote user's login shell, whatever it is (sh, bash,
// zsh, fish, csh...), and no quoting is right for all of them (fish reads \' inside single
// quotes as a quote): so the line is the --remote-wmb prefix, fixed words, and at most one word
// of base64 carrying everything else (the remote store, a terminal run's arguments and mounts).
import { WmbError } from "../../errors.ts";
import { isIdentity } from "../../machine.ts";
import type { RunRequest } from "./protocol.ts";

export interface SshTarget {
  /** As given, for messages. */
  url: string;
  user?: string;
  /** A host name, an address or an alias from ~/.ssh/config (IPv6 without brackets). */
  host: string;
  port?: number;
  /** "host" or "host:port" ("[::1]:2222"), for messages. */
  display: string;
}

export function isSshTarget(s: string): boolean {
  return s.startsWith("ssh://");
}

export function parseSshTarget(url: string): SshTarget {
  const bad = (why: string) => new WmbError("USAGE", `${url} is not an ssh target (${why}); write ssh://[user@]host[:port].`, { subject: url });
  if (!isSshTarget(url)) throw bad("it does not start with ssh://");
  let rest = url.slice("ssh://".length).replace(/\/$/, "");
  if (rest.includes("/")) throw bad("a path after the host is not supported");
  let user: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    user = decodeURIComponent(rest.slice(0, at));
    rest = rest.slice(at + 1);
    if (!user || /[\s:]/.test(user) || user.startsWith("-")) throw bad("the user name is empty or not valid");
  }
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([0-9a-fA-F:.%a-zA-Z]+)\](?::(\d+))?$/.exec(rest);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
  } else {
    const m = /^([^:\s]+)(?::(\d*))?$/.exec(rest);
    if (!m) throw bad("the host is empty or not valid");
    host = m[1]!;
    portText = m[2];
    if (portText === "") throw bad("the port is empty");
  }
  if (!host || host.startsWith("-") || /[\s'"`$;&|<>\\]/.test(host)) throw bad("the host is empty or not valid");
  let port: number | undefined;
  if (portText !== undefined) {
    port = Number(portText);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad(`port ${portText} is out of range`);
  }
  const hostPart = host.includes(":") ? `[${host}]` : host;
  return { url, user, host, port, display: port ? `${hostPart}:${port}` : hostPart };
}

/** The options and destination every ssh invocation gets: BatchMode (never prompt; a missing
 * key or an unknown host key fails at once instead of hanging a script), the port and user. Host
 * keys are always checked: nothing here or elsewhere in wmb weakens StrictHostKeyChecking. */
export function sshArgs(t: SshTarget, opts: { tty: boolean }): string[] {
  const args = ["-o", "BatchMode=yes", opts.tty ? "-t" : "-T"];
  if (t.port !== undefined) args.push("-p", String(t.port));
  if (t.user !== undefined) args.push("-l", t.user);
  args.push("--", t.host);
  return args;
}

/** How to start ssh: WMB_SSH_COMMAND (run by sh, as git runs GIT_SSH_COMMAND) or `ssh`. */
export function sshSpawn(args: string[], env: NodeJS.ProcessEnv = process.env): { file: string; args: string[]; shown: string } {
  const custom = env.WMB_SSH_COMMAND?.trim();
  // exec: the process wmb signals (a timeout, Ctrl-C) is ssh itself, not a shell above it.
  if (custom) return { file: "/bin/sh", args: ["-c", `exec ${custom} "$@"`, custom, ...args], shown: custom };
  return { file: "ssh", args, shown: "ssh" };
}

/** What the remote command line asks of `wmb remote serve`, as its one --request word. */
export interface ServeRequest {
  /** the remote store (--remote-store) */
  store?: string;
  /** run this machine in the session's terminal (ssh -t) instead of speaking the protocol */
  tty?: Omit<RunRequest, "t">;
}

/** base64 only: no shell gives any of its characters a meaning. */
const REQUEST_WORD = /^[A-Za-z0-9+/]+={0,2}$/;

/** The remote command line: `remoteWmb` is a command prefix given by the user (e.g. "wmb",
 * "/opt/wmb/bin/wmb.mjs" or "node /srv/wmb/bin/wmb.mjs") and is used as written. */
export function remoteCommand(remoteWmb: string, request: ServeRequest = {}): string {
  const words = [remoteWmb.trim(), "remote", "serve"];
  if (Object.keys(request).length) words.push("--request", Buffer.from(JSON.stringify(request), "utf8").toString("base64"));
  return words.join(" ");
}

/** A --request word, checked; a USAGE error for anything a wmb client would not send. */
export function decodeRequest(word: string): ServeRequest {
  const bad = () => new WmbError("USAGE", "The --request of wmb remote serve is not one a wmb client sends; install the same wmb version on both hosts.");
  if (!REQUEST_WORD.test(word)) throw bad();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(word, "base64").toString("utf8"));
  } catch {
    throw bad();
  }
  const strings = (x: unknown) => Array.isArray(x) && x.every((s) => typeof s === "string");
  const r = v as ServeRequest;
  if (!v || typeof v !== "object" || (r.store !== undefined && typeof r.store !== "string")) throw bad();
  const t = r.tty;
  if (t !== undefined && (!t || typeof t !== "object" || typeof t.identity !== "string" || !isIdentity(t.identity) || !strings(t.args) || !strings(t.mounts) || (t.db !== undefined && typeof t.db !== "string"))) throw bad();
  return { ...(r.store !== undefined ? { store: r.store } : {}), ...(t ? { tty: { identity: t.identity, args: t.args, mounts: t.mounts, ...(t.db !== undefined ? { db: t.db } : {}) } } : {}) };
}

/** The --request word of the command line a client asked for, when a forced command (sshd's
 * `command=` in authorized_keys) ran instead of it: sshd keeps that line in SSH_ORIGINAL_COMMAND. */
export function requestOfOriginalCommand(line: string): ServeRequest {
  const words = line.trim().split(/\s+/);
  const at = words.lastIndexOf("--request");
  return at >= 0 && at === words.length - 2 ? decodeRequest(words[at + 1]!) : {};
}
