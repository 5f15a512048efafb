// A real OpenSSH server for the ssh transport's tests: Debian's /usr/sbin/sshd on 127.0.0.1, a
// free port, run by the test as the current user (`-D -e`, its own sshd_config, a generated host
// key, public-key auth only). The "remote" gets its own HOME (SetEnv; also its own .bashrc, which
// prints junk on stdout the way many real ones do) and the client its own key, known_hosts and
// ssh_config, passed with WMB_SSH_COMMAND="ssh -F <dir>/ssh_config" as a user would.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { freePort, track } from "./servers.ts";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";

const SSHD = "/usr/sbin/sshd";

/** true when sshd, ssh and ssh-keygen are installed (tests skip otherwise). */
export const sshdInstalled: boolean = existsSync(SSHD) && ["ssh", "ssh-keygen"].every((c) => {
  try {
    execFileSync("sh", ["-c", `command -v ${c}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
});

export interface TestSshd {
  /** "ssh://user@127.0.0.1:PORT" */
  url: string;
  port: number;
  user: string;
  /** the temp directory holding everything (keys, configs, the remote HOME) */
  dir: string;
  /** the remote user's HOME (sshd sets it with SetEnv) */
  remoteHome: string;
  /** the remote sessions' TMPDIR (SetEnv): a remote guest's files, and so its processes' argv, are under it */
  remoteTmp: string;
  /** an ssh_config whose known_hosts and key are right */
  sshConfig: string;
  /** WMB_SSH_COMMAND for a client configured with `config` (default: sshConfig) */
  sshCommand(config?: string): string;
  /** write another ssh_config (e.g. a wrong key, an empty known_hosts); returns its path */
  writeClientConfig(name: string, opts: { identityFile?: string; knownHosts?: string }): string;
  /** a fresh key pair that the server does not accept; returns the private key's path */
  strangerKey(): string;
  stop(): Promise<void>;
  running(): boolean;
}

function keygen(path: string, comment: string): void {
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path], { stdio: "ignore" });
}

/** true once the port answers with an SSH banner */
function banner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    let data = "";
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.on("data", (b) => {
      data += b.toString("latin1");
      if (data.includes("SSH-2.0-")) done(true);
    });
    s.on("error", () => done(false));
    s.on("close", () => done(data.includes("SSH-2.0-")));
  });
}

export async function startSshd(): Promise<TestSshd> {
  // sshd run as root insists on its privilege-separation directory, which Debian's package
  // creates only at boot (tmpfiles.d) and a fresh container lacks.
  if (process.getuid?.() === 0 && !existsSync("/run/sshd")) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const dir = mkdtempSync(join(tmpdir(), "wmb-sshd-"));
  chmodSync(dir, 0o755);
  const user = userInfo().username;
  const remoteHome = join(dir, "remote-home");
  mkdirSync(remoteHome);
  const remoteTmp = join(dir, "remote-tmp");
  mkdirSync(remoteTmp);
  // Junk on stdout from the remote shell's rc file: the protocol must tolerate it.
  writeFileSync(join(remoteHome, ".bashrc"), 'echo "welcome to the remote host (from .bashrc)"\n');
  const hostKey = join(dir, "host_ed25519");
  keygen(hostKey, "wmb-test-host");
  const clientKey = join(dir, "client_ed25519");
  keygen(clientKey, "wmb-test-client");
  const authorizedKeys = join(dir, "authorized_keys");
  writeFileSync(authorizedKeys, readFileSync(`${clientKey}.pub`));
  const knownHosts = join(dir, "known_hosts");
  const emptyKnownHosts = join(dir, "known_hosts.empty");
  writeFileSync(emptyKnownHosts, "");

  let child: ChildProcess | undefined;
  let port = 0;
  const log = join(dir, "sshd.log");
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    const config = join(dir, "sshd_config");
    writeFileSync(
      config,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKey}`,
        `PidFile ${join(dir, "sshd.pid")}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "PrintMotd no",
        "PrintLastLog no",
        `SetEnv HOME=${remoteHome} TMPDIR=${remoteTmp}`,
        "Subsystem sftp internal-sftp",
        "",
      ].join("\n"),
    );
    writeFileSync(knownHosts, `[127.0.0.1]:${port} ${readFileSync(`${hostKey}.pub`, "utf8").split(" ").slice(0, 2).join(" ")}\n`);
    const proc = spawn(SSHD, ["-D", "-e", "-f", config, "-E", log], { stdio: "ignore" });
    track(proc);
    let exited = false;
    proc.once("exit", () => {
      exited = true;
    });
    proc.once("error", () => (exited = true));
    const deadline = Date.now() + 10_000;
    let ready = false;
    while (!exited && Date.now() < deadline) {
      if (await banner(port)) {
        ready = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (ready) {
      child = proc;
      break;
    }
    proc.kill("SIGKILL");
    const why = existsSync(log) ? readFileSync(log, "utf8") : "";
    if (attempt < 5 && /Address already in use/.test(why)) continue;
    throw new Error(`sshd did not start on port ${port}:\n${why}`);
  }

  const writeClientConfig = (name: string, opts: { identityFile?: string; knownHosts?: string }): string => {
    const path = join(dir, name);
    writeFileSync(
      path,
      [
        "Host *",
        `  IdentityFile ${opts.identityFile ?? clientKey}`,
        "  IdentitiesOnly yes",
        `  UserKnownHostsFile ${opts.knownHosts ?? knownHosts}`,
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "  UpdateHostKeys no",
        "  LogLevel ERROR",
        "",
      ].join("\n"),
    );
    return path;
  };
  const sshConfig = writeClientConfig("ssh_config", {});
  let strangers = 0;
  let stopped = false;

  return {
    url: `ssh://${user}@127.0.0.1:${port}`,
    port,
    user,
    dir,
    remoteHome,
    remoteTmp,
    sshConfig,
    sshCommand: (config = sshConfig) => `ssh -F ${config}`,
    writeClientConfig,
    strangerKey: () => {
      const p = join(dir, `stranger-${++strangers}`);
      keygen(p, "stranger");
      return p;
    },
    running: () => !stopped && child !== undefined && child.exitCode === null,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      if (child && child.exitCode === null) {
        const exited = new Promise((r) => child!.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
    },
    // The temp dir is left for the suite to remove (it holds the remote store the tests inspect).
  } satisfies TestSshd;
}

/** Remove what startSshd made (after stop()). */
export function removeSshdDir(sshd: TestSshd): void {
  rmSync(sshd.dir, { recursive: true, force: true });
}
