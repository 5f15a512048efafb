// ssh target figures on a loopback OpenSSH server (test/helpers/sshd.ts): `run --target` of
// //sqlite-cli:sealed -version, first (transfer + remote transpile) and warm, next to the local
// warm run and a bare `ssh host true` measured in the same run.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeSshdDir, sshdInstalled, startSshd } from "../test/helpers/sshd.ts";
import { cli, fmt, median, REPO, row, section } from "./harness.ts";

export async function sshBench(): Promise<void> {
  section("ssh target (loopback sshd)");
  if (!sshdInstalled) {
    row("skipped", "-", "sshd is not installed (apt-get install openssh-server openssh-client)");
    return;
  }
  const sshd = await startSshd();
  const store = mkdtempSync(join(tmpdir(), "wmb-bench-ssh-"));
  try {
    const remoteWmb = join(sshd.remoteHome, "bin", "wmb");
    mkdirSync(join(sshd.remoteHome, "bin"));
    writeFileSync(remoteWmb, `#!/bin/sh\nexec ${process.execPath} ${join(REPO, "bin/wmb.mjs")} "$@"\n`, { mode: 0o755 });
    const env = { WMB_STORE: store, WMB_SSH_COMMAND: sshd.sshCommand(), SSH_AUTH_SOCK: "" };
    cli(REPO, ["build", "//sqlite-cli:sealed"], env);
    const identity = (JSON.parse(cli(REPO, ["inspect", "--json", "//sqlite-cli:sealed"], env).stdout) as { identity: string }).identity;
    const target = ["--target", sshd.url, "--remote-wmb", remoteWmb, "--remote-store", join(sshd.remoteHome, "store")];
    const three = (f: () => number) => median([0, 1, 2].map(f));

    const sshTrue = three(() => {
      const t0 = performance.now();
      const r = spawnSync("/bin/sh", ["-c", `${sshd.sshCommand()} -o BatchMode=yes -p ${sshd.port} -l ${sshd.user} 127.0.0.1 true`]);
      if (r.status !== 0) throw new Error(`ssh true failed: ${r.stderr}`);
      return performance.now() - t0;
    });
    row("bare `ssh host true` (median of 3)", fmt(sshTrue));
    cli(REPO, ["run", identity, "--", "-version"], env); // transpile locally once
    const local = three(() => cli(REPO, ["run", identity, "--", "-version"], env).ms);
    row("local run blake3:… -version, warm (median of 3)", fmt(local));

    const first = cli(REPO, ["run", identity, ...target, "--timings", "--", "-version"], env);
    const bytes = Number(/\((\d+) bytes\)/.exec(first.stderr)?.[1] ?? NaN);
    row("dispatch -version, first (transfer + transpile)", fmt(first.ms), `${(bytes / 1048576).toFixed(2)} MiB sent`);
    const warm = three(() => {
      const r = cli(REPO, ["run", identity, ...target, "--timings", "--", "-version"], env);
      if (!/shipped 0 of 3 blobs \(0 bytes\)/.test(r.stderr)) throw new Error(`a warm dispatch sent blobs:\n${r.stderr}`);
      return r.ms;
    });
    row("dispatch -version, warm (0 bytes sent; median of 3)", fmt(warm), `local + ssh true = ${fmt(local + sshTrue)}`);
    row("store copy --to, nothing to send (median of 3)", fmt(three(() => cli(REPO, ["store", "copy", identity, "--to", sshd.url, ...target.slice(2)], env).ms)));
    row("remote check", fmt(cli(REPO, ["remote", "check", sshd.url, "--remote-wmb", remoteWmb], env).ms));
  } finally {
    await sshd.stop();
    removeSshdDir(sshd);
    rmSync(store, { recursive: true, force: true });
  }
}
