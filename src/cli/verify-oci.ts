// `wmb verify oci://REF [--attest]`: an independent rebuild of a machine from a registry. The
// machine is pulled (every digest and the seal checked), its label taken from --label or its
// provenance, and built again from the local workspace with every action run here and nothing
// served from any cache (neither the store's results nor a remote cache). When the identity is
// the pulled one, --attest signs a rebuild attestation with this host's key and attaches it to
// the machine's index, where `--require-rebuilds N` counts it. When it differs nothing is pushed,
// and the first action (in dependency order) whose key is not the one the provenance recorded
// is named: where this workspace and the pusher's stopped agreeing.
import { availableParallelism } from "node:os";
import { build, buildFailure } from "../build.ts";
import { WmbError } from "../errors.ts";
import { canonicalLabel } from "../label.ts";
import { registerBuiltMachines } from "../machine.ts";
import { progressReporter } from "../progress.ts";
import { machineTrust, attachStatement, REBUILD_ARTIFACT_TYPE } from "../remote/machine-trust.ts";
import { wmbVersion } from "../remote/machine-provenance.ts";
import { pullMachine } from "../remote/oci-machine.ts";
import { RegistryClient } from "../remote/oci/client.ts";
import { parseOciReference } from "../remote/oci/reference.ts";
import { rebuildAttestation, type SlsaProvenance } from "../trust/statements.ts";
import type { Store } from "../../store/store.ts";
import { trustForCommand } from "./trust-options.ts";
import { readWorkspaceConfig } from "../workspace-config.ts";

export interface VerifyOciReport {
  reference: string;
  identity: string;
  label: string;
  rebuilt: string | undefined;
  identical: boolean;
  executed: number;
  /** The first action whose key differs from the provenance's, when the identity differs. */
  firstDivergent?: { label: string; key?: string; recorded?: string };
  attestation?: string;
  rebuilder?: string;
}

export async function verifyOci(
  o: { reference: string; label?: string; attest: boolean; signingKey?: string; trustedKeys?: string[]; plainHttp: boolean; jobs?: number; toolchain: "hermetic" | "system"; json: boolean },
  store: Store,
  workspace: string,
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WriteStream },
): Promise<{ code: number; report: VerifyOciReport }> {
  const config = readWorkspaceConfig(workspace);
  // The key is read first: a verify that cannot sign stops before a rebuild of many minutes.
  const trust = await trustForCommand(o, { root: workspace, config }, { sign: o.attest });
  if (o.attest && !trust.signer) throw new WmbError("USAGE", "--attest signs with your key: pass --signing-key FILE, set WMB_SIGNING_KEY, or add signing_key to wmb.json (`wmb key generate NAME` makes one).");
  const ref = parseOciReference(o.reference);
  const pulled = await pullMachine(store, ref, { plainHttp: o.plainHttp });
  const client = new RegistryClient(ref.registry, { plainHttp: o.plainHttp });
  const index = await client.manifest(ref.repository, pulled.index ?? `blake3-${pulled.identity.slice("blake3:".length)}`);
  const at = { client, repository: ref.repository, digest: index.digest, size: index.bytes.length };
  // The label and the keys the pusher recorded. An unverified provenance may name any label:
  // that only chooses what is built here, and nothing is attested unless the identity is equal.
  const found = await machineTrust(at, pulled.identity, trust.trusted);
  const provenance = found.attestations.find((a) => a.kind === "provenance" && a.statement)?.statement?.predicate as SlsaProvenance | undefined;
  const label = o.label ? canonicalLabel(o.label) : provenance?.buildDefinition.externalParameters.label;
  if (!label) throw new WmbError("USAGE", `${o.reference} carries no provenance naming its label; pass --label //pkg:target to say what to rebuild.`, { subject: o.reference });

  const reporter = progressReporter(io.stderr, { quiet: o.json });
  let summary;
  try {
    // Every action run here: no store result, no remote cache.
    summary = await build({ workspace, store, targets: [label], jobs: o.jobs ?? availableParallelism(), toolchain: o.toolchain, noCache: true, events: reporter });
  } finally {
    reporter.stop();
  }
  if (!summary.ok) throw buildFailure(summary);
  const [sealed] = await registerBuiltMachines(store, summary);
  const rebuilt = sealed?.seal.digest;
  const report: VerifyOciReport = { reference: o.reference, identity: pulled.identity, label, rebuilt, identical: rebuilt === pulled.identity, executed: summary.counts.executed };
  if (!report.identical) {
    const recorded = new Map((provenance?.runDetails.byproducts ?? []).map((b) => [b.name, b.digest?.blake3]));
    const first = summary.actions.find((a) => a.key !== undefined && recorded.get(a.label) !== a.key);
    if (first) report.firstDivergent = { label: first.label, key: first.key, recorded: recorded.get(first.label) };
  } else if (o.attest) {
    const signer = trust.signer!;
    const statement = rebuildAttestation({
      name: sealed!.name,
      identity: rebuilt!,
      label,
      rebuilder: signer.name,
      wmbVersion: wmbVersion(),
      rebuiltOn: new Date(),
    });
    report.attestation = await attachStatement(at, REBUILD_ARTIFACT_TYPE, statement, signer);
    report.rebuilder = signer.name;
  }
  if (!o.json) {
    const out = io.stdout;
    out.write(`${o.reference}\n  pulled   ${pulled.identity}\n  rebuilt  ${rebuilt ?? "-"}  (${label}, ${summary.counts.executed} actions run here, nothing from any cache)\n`);
    if (report.identical) out.write(report.attestation ? `identical: attested as ${report.rebuilder} (${report.attestation})\n` : `identical (pass --attest to sign a rebuild attestation)\n`);
    else {
      const d = report.firstDivergent;
      out.write(
        `DIFFERS: nothing was attested.${
          d ? ` First divergent action: ${d.label} (key here ${d.key}, ${d.recorded ? `the provenance says ${d.recorded}` : "not in the provenance"})` : provenance ? " Every action's key matches the provenance: an action is not deterministic (`wmb verify " + label + "` finds it)" : " The machine carries no provenance to compare actions with"
        }.\n`,
      );
    }
  }
  return { code: report.identical ? 0 : 1, report };
}
