// ssh://[user@]host[:port] targets, the ssh command line that reaches them, and the remote
// command line (POSIX-shell quoted: sshd hands it to the remote user's login shell).
import { WmbError } from "../../errors.ts";

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

/** A word quoted for a POSIX shell (also read right by bash, zsh and fish). */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The remote command line: `remoteWmb` is a command prefix given by the user (e.g. "wmb",
 * "/opt/wmb/bin/wmb.mjs" or "node /srv/wmb/bin/wmb.mjs") and is used as written; every other
 * word is quoted. */
export function remoteCommand(remoteWmb: string, words: string[]): string {
  return [remoteWmb.trim(), ...words.map(shellQuote)].join(" ");
}
