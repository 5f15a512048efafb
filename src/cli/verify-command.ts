import { Command, Option } from "clipanion";
import * as t from "typanion";
import { availableParallelism } from "node:os";
import type { VerifyReport } from "../verify.ts";
import { progressReporter, fmtMs } from "../progress.ts";
import type { ExplainedDifference } from "../explain-diff.ts";
import { WmbCommand, type ManyLabels } from "./base.ts";
import { signingKeyOption, trustedKeyOption } from "./trust-options.ts";

export class VerifyCommand extends WmbCommand implements ManyLabels {
  static paths = [["verify"]];
  static usage = Command.Usage({
    description: "Rebuild a target's whole closure, bypassing the cache, in varied sandboxes, and compare every output",
    details: `
      Each round runs every action again in a sandbox that differs from the recorded build
      (--vary: path, tz, locale, umask, time, jobs; default all). The first action whose
      output differs is the root cause, shown with a diff; divergences downstream of it are
      marked as consequences. The table shows one digest per action for its whole output
      set. A variation this host cannot apply (the clock without faketime) is named once on
      stderr and in --json's "unapplied". Labels may be target patterns (//pkg:all, //...).
      With --against oci://<registry>/<repository>, every action of the closure is rebuilt here
      (no cache) and its outputs compared with the remote cache's result for the same key; each
      differing action is listed (a poisoned or non-reproducible entry).
      With oci://REF in place of a label, the machine is pulled and rebuilt here from its label
      (--label, else the one its provenance names) with every action run here and nothing
      served from any cache; with --attest and an identical identity, a rebuild attestation
      signed with your key (--signing-key, WMB_SIGNING_KEY, wmb.json signing_key) is attached
      to it, which \`run\`/\`pull --require-rebuilds N\` count.
      Exit codes: 0 identical, 1 not reproducible (or a remote result differs), 2 usage, other codes for build errors.
    `,
    examples: [
      ["Verify the sealed machine", "$0 verify //sqlite-cli:sealed"],
      ["Two rounds, varying only the path and the time zone", "$0 verify //sqlite-cli:sealed --rounds 2 --vary path,tz"],
      ["Check a remote cache's results against a local rebuild", "$0 verify //sqlite-cli:sealed --against oci://127.0.0.1:5000/acme/wmb-cache"],
      ["Rebuild a pushed machine and attest it", "$0 verify oci://127.0.0.1:5000/acme/sqlite-cli:3.52.0 --attest --signing-key ~/.config/wmb/keys/me.secret"],
    ],
  });
  targets = Option.Rest({ required: 1, name: "labels" });

  appendLabels(labels: string[]): void {
    this.targets.push(...labels);
  }
  rounds = Option.String("--rounds", "1", { description: "Rebuild rounds (default 1)", validator: t.isNumber() });
  vary = Option.String("--vary", { description: "Comma-separated dimensions to vary (default: all)" });
  jobs = Option.String("-j,--jobs", { description: "Parallel actions (default: cores; rounds that vary jobs use one more)", validator: t.isNumber() });
  toolchain = Option.String("--toolchain", "hermetic", { validator: t.isEnum(["hermetic", "system"] as const) });
  sandbox = Option.String("--sandbox", { description: "Confine command actions: auto (bwrap when it works; the default unless WMB_SANDBOX or wmb.json says otherwise), bwrap (required), none", validator: t.isEnum(["auto", "bwrap", "none"] as const) });
  against = Option.String("--against", { description: "Instead of varied rounds, compare every action rebuilt here with this remote cache's result (oci://registry/repo)" });
  plainHttp = Option.Boolean("--plain-http", false, { description: "Plain HTTP to a remote cache not on this host" });
  attest = Option.Boolean("--attest", false, { description: "With oci://REF: sign and attach a rebuild attestation when the rebuilt identity is the pulled one" });
  label = Option.String("--label", { description: "With oci://REF: the target to rebuild (default: the label its provenance names)" });
  signingKey = signingKeyOption();
  trustedKeys = trustedKeyOption();
  asJson = Option.Boolean("--json", false, { description: "JSON report on stdout" });

  async run(): Promise<number> {
    if (this.against) return this.challenge(this.against);
    if (this.targets[0]?.startsWith("oci://")) {
      const { WmbError } = await import("../errors.ts");
      if (this.targets.length !== 1) throw new WmbError("USAGE", "verify takes one oci:// machine at a time.");
      const { verifyOci } = await import("./verify-oci.ts");
      const { code, report } = await verifyOci(
        { reference: this.targets[0], label: this.label, attest: this.attest, signingKey: this.signingKey, trustedKeys: this.trustedKeys, plainHttp: this.plainHttp, jobs: this.jobs, toolchain: this.toolchain, json: this.asJson },
        await this.store(),
        this.workspace(),
        { stdout: this.context.stdout, stderr: this.context.stderr as NodeJS.WriteStream },
      );
      if (this.asJson) this.json(report);
      return code;
    }
    const { parseVariations, verify } = await import("../verify.ts");
    const { describeDifference } = await import("../explain-diff.ts");
    const workspace = this.workspace();
    const store = await this.store();
    const reporter = progressReporter(this.context.stderr as NodeJS.WriteStream, { quiet: this.asJson });
    let report: VerifyReport;
    try {
      report = await verify({
        workspace,
        store,
        targets: this.targets,
        rounds: Math.max(1, this.rounds),
        vary: parseVariations(this.vary),
        jobs: this.jobs ?? availableParallelism(),
        toolchain: this.toolchain,
        sandbox: this.sandbox,
        events: reporter,
      });
    } finally {
      reporter.stop();
    }
    for (const u of report.unapplied) this.context.stderr.write(`warning: could not vary ${u.variation}: ${u.reason}.\n`);
    const diffs: (ExplainedDifference | undefined)[] = [];
    for (const r of report.rounds) {
      diffs.push(r.firstDivergence ? await describeDifference(store, r.firstDivergence) : undefined);
    }
    if (this.asJson) {
      this.json({ ...report, rounds: report.rounds.map((r, i) => ({ ...r, diff: diffs[i] })) });
      return report.reproducible ? 0 : 1;
    }
    const out = this.context.stdout;
    report.rounds.forEach((r, i) => {
      out.write(`\nround ${r.round}: ${Object.entries(r.variation).map(([k, v]) => `${k}=${v}`).join("  ")}\n`);
      const w = Math.max(...r.actions.map((a) => a.label.length), 6);
      // One digest per side stands for the action's whole output set (every path, digest and mode).
      out.write(`${"action".padEnd(w)}  ${"rule".padEnd(16)} ${"recorded".padEnd(14)} ${"rebuilt".padEnd(14)} ${"result".padEnd(12)} time\n`);
      for (const a of r.actions) {
        const set = (d: string | undefined) => (d ?? "-").slice(0, 12);
        const mark = a.status === "differs" && r.firstDivergence?.label === a.label ? "DIFFERS (root cause)" : a.status === "differs" ? "DIFFERS" : a.status;
        out.write(`${a.label.padEnd(w)}  ${a.rule.padEnd(16)} ${set(a.recordedSet).padEnd(14)} ${set(a.rebuiltSet).padEnd(14)} ${mark.padEnd(12)} ${fmtMs(a.durationMs)}\n`);
      }
      if (r.identityBefore || r.identityAfter) {
        out.write(`sealed identity: recorded ${r.identityBefore ?? "-"}\n                 rebuilt  ${r.identityAfter ?? "-"}\n`);
      }
      const d = diffs[i];
      if (r.firstDivergence && d) {
        out.write(`\nfirst divergence: ${r.firstDivergence.label} output ${r.firstDivergence.path}\n${d.text}\n`);
      }
    });
    out.write(report.reproducible ? `\n${report.target} is reproducible.\n` : `\n${report.target} is NOT reproducible.\n`);
    return report.reproducible ? 0 : 1;
  }

  private async challenge(url: string): Promise<number> {
    const { challenge } = await import("../challenge.ts");
    const { RemoteCache } = await import("../remote/action-cache.ts");
    const store = await this.store();
    const reporter = progressReporter(this.context.stderr as NodeJS.WriteStream, { quiet: this.asJson });
    const remote = new RemoteCache(store, { url, plainHttp: this.plainHttp, warn: (m) => reporter.warning!(m) });
    let report;
    try {
      report = await challenge({ workspace: this.workspace(), store, targets: this.targets, jobs: this.jobs ?? availableParallelism(), toolchain: this.toolchain, remote, events: reporter });
    } finally {
      reporter.stop();
    }
    if (this.asJson) {
      this.json(report);
    } else {
      const out = this.context.stdout;
      const width = Math.max(...report.actions.map((a) => a.label.length));
      for (const a of report.actions) {
        const what = a.status === "differs" ? `DIFFERS  ${a.paths!.join(", ")}` : a.status === "unreadable" ? `UNREADABLE  ${a.reason}` : a.status === "absent" ? "not in the remote" : "same";
        out.write(`${a.label.padEnd(width)}  ${what}\n`);
      }
      const n = report.differing.length;
      out.write(n === 0 ? `every remote result in ${report.remote} matches the local rebuild\n` : `${n} remote result${n === 1 ? "" : "s"} in ${report.remote} differ${n === 1 ? "s" : ""} from the local rebuild: ${report.differing.join(", ")}\n`);
    }
    return report.differing.length ? 1 : 0;
  }
}
