// Who vouches for a machine in a registry (docs/TRUST.md): the signed statements attached to its
// OCI image index as referrers. `push` with a signing key attaches the machine statement
// (identity + index digest) and, when it built the machine, its SLSA provenance; `verify
// --attest` attaches rebuild attestations. `pull`, `run oci://…` and `inspect oci://…` read them
// before any blob is fetched: with trusted keys configured, a machine that no trusted key signed
// (for exactly this identity at exactly this index) is refused, and `--require-rebuilds N` asks
// for N distinct trusted rebuilders besides its signers. Every envelope is checked on bytes
// against the trusted keys before its payload is parsed.
import { WmbError } from "../errors.ts";
import { encodeEnvelope, parseEnvelope, signEnvelope, unverifiedPayload, verifyEnvelope, type DsseEnvelope } from "../trust/dsse.ts";
import type { PublicKey, SigningKey } from "../trust/keys.ts";
import {
  independentRebuilders,
  IN_TOTO_PAYLOAD_TYPE,
  machineStatement,
  machineStatementMismatch,
  parseMachineStatement,
  parseProvenance,
  parseRebuildAttestation,
  statementBytes,
  type RebuildPredicate,
  type SlsaProvenance,
  type Statement,
} from "../trust/statements.ts";
import { MEDIA_INDEX, type RegistryClient } from "./oci/client.ts";
import { attachEnvelope, referrerEnvelopes, type ReferrerEnvelope } from "./oci/referrers.ts";

/** artifactTypes of the referrers of a machine's index (each one DSSE envelope of an in-toto Statement). */
export const MACHINE_SIGNATURE_ARTIFACT_TYPE = "application/vnd.wmb.machine.signature.v1";
export const PROVENANCE_ARTIFACT_TYPE = "application/vnd.wmb.provenance.slsa.v1";
export const REBUILD_ARTIFACT_TYPE = "application/vnd.wmb.rebuild.attestation.v1";

/** What a command asks of a machine before it admits or runs it. */
export interface MachinePolicy {
  trusted: PublicKey[];
  /** Where the trusted keys came from; undefined: none configured (nothing is required). */
  trustedFrom?: string;
  /** Go on when no trusted key signed it, saying so loudly (`--allow-unsigned`). */
  allowUnsigned?: boolean;
  /** Distinct trusted rebuilders, besides its signers, that attest an identical rebuild. */
  requireRebuilds?: number;
  warn: (message: string) => void;
}

/** A machine's index in a registry. */
export interface IndexAt {
  client: RegistryClient;
  repository: string;
  digest: string;
  size: number;
}

/** One signed document about a machine, as inspect shows it. */
export interface Attestation {
  kind: "signature" | "provenance" | "rebuild";
  /** The referrer manifest's digest. */
  referrer: string;
  /** keyids the envelope names (unauthenticated hints). */
  claimedSigners: string[];
  /** Trusted keys whose signature is valid and whose statement is about this machine. */
  validSigners: string[];
  /** The trusted keys behind validSigners. */
  validKeys?: PublicKey[];
  /** Why it does not count, when it does not (untrusted key, bad signature, another machine…). */
  problem?: string;
  /** What it says; parsed only when a trusted key signed it, or (shown as unverified) when no keys are configured. */
  statement?: Statement<unknown>;
  verified: boolean;
}

export interface MachineTrust {
  attestations: Attestation[];
  /** Trusted keys that signed this identity at this index. */
  signers: string[];
  /** The same signers as keys (what the store records). */
  signerKeys: PublicKey[];
  /** Distinct trusted keys, other than the signers, attesting an identical rebuild. */
  rebuilders: string[];
  /** Referrers listed but not read (about another manifest, not an envelope). */
  skipped: string[];
}

/** The statements attached to the machine's index, each checked against `trusted`. */
export async function machineTrust(at: IndexAt, identity: string, trusted: readonly PublicKey[]): Promise<MachineTrust> {
  const attestations: Attestation[] = [];
  const skipped: string[] = [];
  const rebuilds: { statement: Statement<RebuildPredicate>; validSigners: string[] }[] = [];
  const kinds: [Attestation["kind"], string][] = [
    ["signature", MACHINE_SIGNATURE_ARTIFACT_TYPE],
    ["provenance", PROVENANCE_ARTIFACT_TYPE],
    ["rebuild", REBUILD_ARTIFACT_TYPE],
  ];
  for (const [kind, artifactType] of kinds) {
    const found = await referrerEnvelopes(at.client, at.repository, at.digest, artifactType);
    skipped.push(...found.skipped);
    for (const r of found.envelopes) {
      const a = judge(kind, r, identity, at.digest, trusted);
      attestations.push(a);
      if (kind === "rebuild" && a.verified && a.statement) rebuilds.push({ statement: a.statement as Statement<RebuildPredicate>, validSigners: a.validSigners });
    }
  }
  const signed = attestations.filter((a) => a.kind === "signature");
  const signers = [...new Set(signed.flatMap((a) => a.validSigners))].sort();
  const signerKeys = [...new Set(signed.flatMap((a) => a.validKeys ?? []))];
  return { attestations, signers, signerKeys, rebuilders: independentRebuilders(rebuilds, identity, signers), skipped };
}

function judge(kind: Attestation["kind"], r: ReferrerEnvelope, identity: string, index: string, trusted: readonly PublicKey[]): Attestation {
  const source = `the ${kind} ${r.digest}`;
  let envelope: DsseEnvelope;
  try {
    envelope = parseEnvelope(r.envelope, source);
  } catch (e) {
    return { kind, referrer: r.digest, claimedSigners: [], validSigners: [], problem: (e as Error).message.replace(/\.$/, ""), verified: false };
  }
  const claimedSigners = [...new Set(envelope.signatures.map((s) => s.keyid || "(no keyid)"))];
  const base = { kind, referrer: r.digest, claimedSigners };
  let verdict;
  try {
    verdict = verifyEnvelope(envelope, trusted, IN_TOTO_PAYLOAD_TYPE, source);
  } catch (e) {
    return { ...base, validSigners: [], problem: (e as Error).message.replace(/\.$/, ""), verified: false };
  }
  if (!verdict.payloadBytes) {
    // Unverified: shown for what it claims when nothing is trusted, never used to decide.
    const problem = trusted.length === 0 ? "not verified: no trusted keys configured" : verdict.badSignatures.length ? "a bad signature" : "not trusted here";
    return { ...base, validSigners: [], problem, statement: trusted.length === 0 ? unverifiedStatement(kind, envelope, source) : undefined, verified: false };
  }
  const payload = verdict.payloadBytes;
  try {
    if (kind === "signature") {
      const s = parseMachineStatement(payload, source);
      const mismatch = machineStatementMismatch(s, { identity, index });
      return { ...base, validSigners: mismatch ? [] : verdict.validSigners, validKeys: mismatch ? [] : verdict.validKeys, statement: s, verified: true, ...(mismatch && { problem: mismatch }) };
    }
    if (kind === "provenance") {
      const s = parseProvenance(payload, source);
      return { ...base, validSigners: verdict.validSigners, statement: s, verified: true };
    }
    const s = parseRebuildAttestation(payload, source);
    const problem =
      s.predicate.identity !== identity
        ? `it attests a rebuild of ${s.predicate.identity}, not of ${identity}`
        : !verdict.validSigners.includes(s.predicate.rebuilder)
          ? `it names the rebuilder ${s.predicate.rebuilder}, which did not sign it`
          : undefined;
    return { ...base, validSigners: problem ? [] : verdict.validSigners, statement: s, verified: true, ...(problem && { problem }) };
  } catch (e) {
    if (!(e instanceof WmbError)) throw e;
    return { ...base, validSigners: [], problem: e.message.replace(/\.$/, ""), verified: false };
  }
}

function unverifiedStatement(kind: Attestation["kind"], envelope: DsseEnvelope, source: string): Statement<unknown> | undefined {
  const bytes = envelope.payloadType === IN_TOTO_PAYLOAD_TYPE ? unverifiedPayload(envelope) : undefined;
  if (!bytes) return undefined;
  try {
    return kind === "signature" ? parseMachineStatement(bytes, source) : kind === "provenance" ? parseProvenance(bytes, source) : parseRebuildAttestation(bytes, source);
  } catch {
    return undefined;
  }
}

/**
 * Refuses (INTEGRITY, exit 3: nothing is admitted or run) a machine the policy does not admit,
 * in one sentence naming the signers found; with --allow-unsigned, says so loudly and goes on.
 * Nothing is asked when no trusted keys are configured and no rebuilds are required.
 */
export async function enforceMachinePolicy(at: IndexAt, identity: string, reference: string, policy: MachinePolicy | undefined): Promise<MachineTrust | undefined> {
  if (!policy || (policy.trustedFrom === undefined && !policy.requireRebuilds)) return undefined;
  if (policy.trustedFrom === undefined) {
    throw new WmbError("USAGE", `--require-rebuilds needs trusted keys to count rebuilders: pass --trusted-key, set WMB_TRUSTED_KEYS, or add trusted_keys to wmb.json.`, { subject: reference });
  }
  const trust = await machineTrust(at, identity, policy.trusted);
  if (trust.signers.length === 0) {
    const found = foundSigners(trust);
    const why = `${reference} (${identity}) is not signed by a key trusted by ${policy.trustedFrom}: ${found}`;
    if (!policy.allowUnsigned) throw new WmbError("INTEGRITY", `${why}; nothing was admitted or run (--allow-unsigned takes it anyway).`, { subject: reference });
    policy.warn(`!!! ${why}; taking it anyway because of --allow-unsigned: anyone who can push to that registry chose this machine.`);
  }
  const need = policy.requireRebuilds ?? 0;
  if (need > 0 && trust.rebuilders.length < need) {
    const have = trust.rebuilders.length ? `only ${trust.rebuilders.length} (${trust.rebuilders.join(", ")})` : "none";
    throw new WmbError(
      "INTEGRITY",
      `${reference} (${identity}) has ${have} of the ${need} independent rebuild${need === 1 ? "" : "s"} required: distinct keys trusted by ${policy.trustedFrom}, other than its signers${trust.signers.length ? ` (${trust.signers.join(", ")})` : ""}, attesting the same identity; nothing was admitted or run.`,
      { subject: reference },
    );
  }
  return trust;
}

/** "signed only by rogue (not trusted)", "it carries no signature", "a bad signature claiming ci". */
function foundSigners(trust: MachineTrust): string {
  const sigs = trust.attestations.filter((a) => a.kind === "signature");
  if (sigs.length === 0) return "it carries no signature";
  return `signed by ${sigs.map((a) => `${a.claimedSigners.join(", ") || "no key"} (${a.problem ?? "not for this machine"})`).join("; ")}`;
}

/** Attach a signed statement to the machine's index. */
export async function attachStatement(at: IndexAt, artifactType: string, statement: Statement<unknown>, signer: SigningKey): Promise<string> {
  const envelope = encodeEnvelope(signEnvelope(IN_TOTO_PAYLOAD_TYPE, statementBytes(statement), signer));
  return attachEnvelope(at.client, at.repository, { mediaType: MEDIA_INDEX, digest: at.digest, size: at.size }, artifactType, envelope, { annotations: { "dev.wmb.signer": signer.name } });
}

/** What `push` signs: this identity is the machine at this index. */
export function signMachine(at: IndexAt, m: { name: string; identity: string }, signer: SigningKey): Promise<string> {
  return attachStatement(at, MACHINE_SIGNATURE_ARTIFACT_TYPE, machineStatement({ name: m.name, identity: m.identity, index: at.digest }), signer);
}

export type { SlsaProvenance };
