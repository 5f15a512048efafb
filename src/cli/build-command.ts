import { Command, Option } from "clipanion";
import * as t from "typanion";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { BuildSummary } from "../build.ts";
import { servedFromMemo, type MemoedBuild, type MemoSummary } from "../noop-memo.ts";
import { parseLabel } from "../label.ts";
import { sandboxMode } from "../sandbox.ts";
import { WmbError } from "../errors.ts";
import { fmtMs, progressReporter } from "../progress.ts";
import { WmbCommand, errorText, type ManyLabels } from "./base.ts";
import { readWorkspaceConfig } from "../workspace-config.ts";
import { openRemoteCache } from "./remote-cache.ts";
import { signingKeyOption, trustedKeyOption } from "./trust-options.ts";

/** Targets whose output paths a build prints; the rest are counted (Bazel's --show_result). */
const SHOWN_TARGETS = 5;

export class BuildCommand extends WmbCommand implements ManyLabels {
  static paths = [["build"]];
  static usage = Command.Usage({
    description: "Build targets: run the actions whose inputs changed, reuse every other result from the store",
    details: `
      Labels may be target patterns: //pkg:all (every target of a package), //pkg/... (and
      the packages below it), //... (every target).

      Outputs of the requested targets are copied read-only to wmb-out/<pkg>/; the paths of the
      first ${SHOWN_TARGETS} targets are printed on stdout, with a count of the rest (--json lists all).

      Exit codes: 0 built, 1 an action failed or BUILD.ts is wrong, 2 usage, 130 interrupted.
    `,
    examples: [
      ["Build the sealed sqlite machine", "$0 build //sqlite-cli:sealed"],
      ["Build with 4 jobs, going on past failures", "$0 build -j 4 --keep-going //examples:all"],
    ],
  });

  targets = Option.Rest({ required: 1, name: "labels" });

  appendLabels(labels: string[]): void {
    this.targets.push(...labels);
  }
  jobs = Option.String("-j,--jobs", { description: "Actions running their rule at once (default: cores)", validator: t.isNumber() });
  keepGoing = Option.Boolean("-k,--keep-going", false, { description: "Build everything not downstream of a failure" });
  toolchain = Option.String("--toolchain", "hermetic", {
    description: "C toolchain: hermetic (@yowasp/clang, default) or system (Debian clang)",
    validator: t.isEnum(["hermetic", "system"] as const),
  });
  sandbox = Option.String("--sandbox", { description: "Confine command actions: auto (bwrap when it works; the default unless WMB_SANDBOX or wmb.json says otherwise), bwrap (required), none", validator: t.isEnum(["auto", "bwrap", "none"] as const) });
  noCache = Option.Boolean("--no-cache", false, { description: "Run every action even if a result is recorded" });
  remoteCache = Option.String("--remote-cache", { description: "Read results from this OCI repository (oci://registry/repo; default: WMB_REMOTE_CACHE, else wmb.json's remote_cache)" });
  noRemoteCache = Option.Boolean("--no-remote-cache", false, { description: "Use no remote cache, whatever is configured" });
  remoteUpload = Option.Boolean("--remote-upload", false, { description: "Also upload this build's sandboxed results to the remote cache" });
  plainHttp = Option.Boolean("--plain-http", false, { description: "Plain HTTP to a remote cache not on this host" });
  signingKey = signingKeyOption();
  trustedKeys = trustedKeyOption();
  asJson = Option.Boolean("--json", false, { description: "Print a JSON summary on stdout" });
  verbose = Option.Boolean("-v,--verbose", false, { description: "Also list cached actions and rule logs" });

  private printOutputs(summary: BuildSummary | MemoSummary): void {
    const out = this.context.stdout;
    const outputs = new Map(summary.actions.map((a) => [a.label, a.outputs]));
    let hidden = 0;
    summary.targets.forEach((label, i) => {
      const paths = Object.keys(outputs.get(label) ?? {});
      if (i < SHOWN_TARGETS) for (const p of paths) out.write(`${join("wmb-out", parseLabel(label).pkg, p)}\n`);
      else hidden += paths.length;
    });
    const more = summary.targets.length - SHOWN_TARGETS;
    if (more > 0) out.write(`… and ${hidden} more output${hidden === 1 ? "" : "s"} of ${more} more target${more === 1 ? "" : "s"} in wmb-out/ (--json lists all)\n`);
  }

  async run(): Promise<number> {
    const workspace = this.workspace();
    const store = await this.store();
    const reporter = progressReporter(this.context.stderr as NodeJS.WriteStream, { verbose: this.verbose });
    const config = readWorkspaceConfig(workspace);
    const remote = await openRemoteCache(store, this, config, (m) => reporter.warning!(m), workspace);
    const abort = new AbortController();
    const onSigint = () => abort.abort();
    process.on("SIGINT", onSigint);
    process.on("SIGTERM", onSigint);
    const { build, warn } = await import("../build.ts");
    // A no-op memo stands for builds served wholly from this store (src/noop-memo.ts).
    const memo: MemoedBuild | undefined = this.noCache || remote ? undefined : { store, root: workspace, targets: this.targets, sandbox: sandboxMode(this.sandbox, config.sandbox), toolchain: this.toolchain };
    let summary: BuildSummary | MemoSummary;
    try {
      const memoed = memo && (await servedFromMemo(memo, reporter, abort.signal, (m) => warn(reporter, m)));
      if (memoed && this.verbose) reporter.log!("wmb", `nothing changed since build ${memoed.unchangedSince}`);
      summary = memoed || await build({
        workspace,
        store,
        targets: this.targets,
        jobs: this.jobs ?? availableParallelism(),
        keepGoing: this.keepGoing,
        toolchain: this.toolchain,
        sandbox: this.sandbox,
        noCache: this.noCache,
        remote,
        events: reporter,
        signal: abort.signal,
        memo,
      });
    } finally {
      reporter.stop();
      process.off("SIGINT", onSigint);
      process.off("SIGTERM", onSigint);
    }
    // Sealed machines built here become runnable by identity (known by the rule that sealed them).
    if ("graph" in summary && summary.ok && summary.targets.some((l) => summary.graph.get(l).rule.machineOutput)) {
      const { registerBuiltMachines } = await import("../machine.ts");
      await registerBuiltMachines(store, summary);
    }
    const failures = summary.actions.filter((a) => a.status === "failed" && a.error?.code !== "INTERRUPTED");
    for (const f of failures) if (f.error) this.context.stderr.write(errorText(f.error));
    const c = summary.counts;
    const fromRemote = remote ? `, ${c.remote} from the remote cache (${fmtBytes(remote.stats.downloadedBytes)} downloaded${remote.uploading ? `, ${remote.stats.uploaded} uploaded${remote.stats.signed ? `, ${remote.stats.signed} signed` : ""}` : ""})` : "";
    const line = `${summary.ok ? "Build OK" : summary.interrupted ? "Build interrupted" : "Build FAILED"}: ${c.executed} executed, ${c.cached} cached${fromRemote}${c.failed ? `, ${c.failed} failed` : ""}${c.skipped ? `, ${c.skipped} skipped` : ""} in ${fmtMs(summary.durationMs)}`;
    this.context.stderr.write(line + "\n");
    if (this.asJson) {
      this.json({
        ok: summary.ok,
        build_id: summary.buildId,
        targets: summary.targets,
        counts: summary.counts,
        duration_ms: Math.round(summary.durationMs),
        materialized: summary.materialized,
        toolchain_used: summary.toolchainUsed,
        unchanged_since: "unchangedSince" in summary ? summary.unchangedSince : undefined,
        remote: remote && {
          url: remote.url,
          lookups: remote.stats.lookups,
          hits: remote.stats.hits,
          downloaded_blobs: remote.stats.downloadedBlobs,
          downloaded_bytes: remote.stats.downloadedBytes,
          uploaded: remote.stats.uploaded,
          not_uploaded_unsandboxed: remote.stats.unsandboxed,
          signed: remote.stats.signed,
          ignored_unsigned_or_untrusted: remote.stats.ignored,
          authenticated: remote.checksSignatures,
        },
        actions: summary.actions.map((a) => ({
          label: a.label,
          rule: a.rule,
          key: a.key,
          status: a.status,
          duration_ms: Math.round(a.durationMs),
          outputs: a.outputs,
          nondeterministic: a.divergentFrom ? true : undefined,
          sandbox: a.sandbox,
          error: a.error?.message,
        })),
      });
    } else if (summary.ok) {
      this.printOutputs(summary);
    }
    if (summary.interrupted) return new WmbError("INTERRUPTED", "").exitCode;
    return summary.ok ? 0 : 1;
  }
}

function fmtBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}
