// OCI figures on a loopback registry (Debian's docker-registry): push of //sqlite-cli:sealed
// cold and again, pull into an empty store, and `run oci://…` first vs warm next to the local run.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, fmt, median, REPO, row, section, withRegistry } from "./harness.ts";

export async function ociBench(): Promise<void> {
  section("OCI registry (loopback docker-registry)");
  await withRegistry((host) => {
    const store = mkdtempSync(join(tmpdir(), "wmb-bench-oci-"));
    const env = { WMB_STORE: store, DOCKER_CONFIG: mkdtempSync(join(tmpdir(), "wmb-bench-docker-")) };
    cli(REPO, ["build", "//sqlite-cli:sealed"], env);
    const ref = `oci://${host}/bench/sqlite-cli:1`;
    const cold = cli(REPO, ["push", "--json", "//sqlite-cli:sealed", ref], env);
    const bytes = (JSON.parse(cold.stdout) as { uploaded_bytes: number }).uploaded_bytes;
    row("push, cold (4 blobs)", fmt(cold.ms), `${(bytes / 1048576).toFixed(1)} MiB`);
    row("push again (nothing uploaded; median of 3)", fmt(median([0, 1, 2].map(() => cli(REPO, ["push", "//sqlite-cli:sealed", ref], env).ms))));
    const pulled = mkdtempSync(join(tmpdir(), "wmb-bench-oci-pull-"));
    row("pull into an empty store", fmt(cli(REPO, ["pull", ref], { ...env, WMB_STORE: pulled }).ms));
    row("pull again (one manifest request)", fmt(cli(REPO, ["pull", ref], { ...env, WMB_STORE: pulled }).ms));
    const fresh = { ...env, WMB_STORE: mkdtempSync(join(tmpdir(), "wmb-bench-oci-run-")) };
    row("run oci://… -version, first (pull + transpile)", fmt(cli(REPO, ["run", ref, "--", "-version"], fresh).ms));
    row("run oci://… -version, warm (median of 3)", fmt(median([0, 1, 2].map(() => cli(REPO, ["run", ref, "--", "-version"], fresh).ms))));
    row("run of the local label -version, warm (median of 3)", fmt(median([0, 1, 2].map(() => cli(REPO, ["run", "//sqlite-cli:sealed", "--", "-version"], env).ms))));
  });
}
