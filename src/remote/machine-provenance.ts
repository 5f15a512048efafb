// The SLSA Provenance v1 statement `wmb push` signs for a machine it built from a label: what
// was asked for (the label), what it was made from (BUILD.ts and every source of the closure
// with its BLAKE3; a fetched package by its name@version and integrity, with the digest of what
// was fetched), with what (the toolchain's identity, wmb's version), and how each action ran
// (its key and sandbox). Built from the build's own summary and key inputs: nothing here reruns
// or re-plans the build.
import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import type { BuildSummary } from "../build.ts";
import { hashFile, type Digest } from "../digest.ts";
import { wmbFile } from "../repo-root.ts";
import type { SandboxUse } from "../sandbox.ts";
import type { Store } from "../../store/store.ts";
import { provenanceStatement, type Statement, type SlsaProvenance, type ToolchainIdentity } from "../trust/statements.ts";

export function wmbVersion(): string {
  return (JSON.parse(readFileSync(wmbFile("package.json"), "utf8")) as { version: string }).version;
}

export interface BuiltMachine {
  label: string;
  root: string;
  summary: BuildSummary;
  toolchain: "hermetic" | "system";
}

export async function machineProvenance(store: Store, built: BuiltMachine, subjects: { name: string; sha256: string }[]): Promise<Statement<SlsaProvenance>> {
  const { summary, root } = built;
  const closure = summary.graph.closure([built.label]);
  const sources = new Map<string, Digest>();
  for (const t of closure) {
    for (const s of t.sources) sources.set(relative(root, s.file), (await hashFile(s.file)).digest);
    // A fetched package is a source too: named as npm names it, with what was fetched.
    if (t.rule.name === "fetch") {
      const out = summary.actions.find((a) => a.label === t.label)?.outputs;
      const digest = out && Object.values(out)[0];
      if (digest) sources.set(`npm:${String(t.attrs.package)}#${String(t.attrs.integrity)}`, digest);
    }
  }
  let toolchain: ToolchainIdentity | undefined;
  const actions: { label: string; key: import("../digest.ts").ActionKey; sandbox: SandboxUse }[] = [];
  for (const a of summary.actions) {
    if (!a.key) continue;
    actions.push({ label: a.label, key: a.key, sandbox: a.sandbox ?? "none" });
    if (!toolchain) {
      const inputs = store.keyInputsOf(a.key);
      const digest = inputs ? (JSON.parse(inputs) as { toolchain?: Digest | null }).toolchain : undefined;
      if (digest) toolchain = { kind: built.toolchain, digest: { blake3: digest } };
    }
  }
  const version = wmbVersion();
  const finishedOn = new Date();
  return provenanceStatement({
    subjects,
    label: built.label,
    wmbVersion: version,
    toolchain,
    buildFile: (await hashFile(join(root, "BUILD.ts"))).digest,
    sources: [...sources].map(([uri, blake3]) => ({ uri, blake3 })),
    builderId: `https://wmb.dev/builders/wmb@${version}`,
    invocationId: String(summary.buildId),
    startedOn: new Date(finishedOn.getTime() - Math.round(summary.durationMs)),
    finishedOn,
    actions,
  });
}
