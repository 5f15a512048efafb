// Remote cache figures on a loopback registry: //sqlite-cli:sealed cold on an empty store with
// no remote, then on another empty store (another checkout) with a warm remote, in one run;
// bytes downloaded; the no-op with a remote configured vs without.
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, fmt, median, REPO, row, section, withRegistry } from "./harness.ts";

function checkout(): string {
  const ws = mkdtempSync(join(tmpdir(), "wmb-bench-clone-"));
  for (const f of ["BUILD.ts", "package.json", "sqlite-cli", "examples"]) cpSync(join(REPO, f), join(ws, f), { recursive: true });
  return ws;
}

export async function remoteCacheBench(): Promise<void> {
  section("remote cache (loopback docker-registry)");
  await withRegistry((host) => {
    const docker = { DOCKER_CONFIG: mkdtempSync(join(tmpdir(), "wmb-bench-docker-")) };
    const cache = `oci://${host}/bench/wmb-cache`;
    const a = checkout();
    const cold = cli(a, ["build", "//sqlite-cli:sealed"], docker).ms;
    row("cold build, empty store, no remote", fmt(cold));
    row("upload everything (--remote-upload on a no-op)", fmt(cli(a, ["build", "--remote-upload", "--remote-cache", cache, "//sqlite-cli:sealed"], docker).ms));
    const b = checkout();
    const warm = cli(b, ["build", "--json", "--remote-cache", cache, "//sqlite-cli:sealed"], docker);
    const stats = (JSON.parse(warm.stdout) as { remote: { downloaded_bytes: number; downloaded_blobs: number } }).remote;
    row("another checkout, empty store, warm remote", fmt(warm.ms), `x${(cold / warm.ms).toFixed(1)} faster; ${stats.downloaded_blobs} blobs, ${(stats.downloaded_bytes / 1048576).toFixed(2)} MiB downloaded`);
    const noop = (args: string[]) => median([0, 1, 2, 3, 4].map(() => cli(a, ["build", ...args, "//sqlite-cli:sealed"], docker).ms));
    const without = noop([]);
    const withRemote = noop(["--remote-cache", cache]);
    row("no-op, no remote (median of 5)", fmt(without));
    row("no-op, remote configured (median of 5)", fmt(withRemote), `x${(withRemote / without).toFixed(2)}`);
  });
}
