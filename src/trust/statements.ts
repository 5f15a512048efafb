// The in-toto Statements (https://in-toto.io/Statement/v1, DSSE payloadType
// application/vnd.in-toto+json) wmb signs about machines: their provenance (SLSA Provenance v1),
// the signature of a machine (its identity and OCI index digest), and independent rebuilds.
// Each has a builder giving the payload bytes (RFC 8785 JCS) and a parser for verified bytes
// that reads them only in that canonical form (src/trust/signed-json.ts). As in-toto asks,
// members a parser does not know are ignored; every member it reads is checked.
import { canonicalBytes } from "../formats/jcs.ts";
import type { ActionKey, Digest } from "../digest.ts";
import type { SandboxUse } from "../sandbox.ts";
import {
  array,
  hex64,
  object,
  optionalString,
  optionalTimestamp,
  parseCanonical,
  prefixedDigest,
  refusal,
  string,
  type Json,
  type Refuse,
} from "./signed-json.ts";

export const IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json";
export const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";
export const SLSA_PROVENANCE_TYPE = "https://slsa.dev/provenance/v1";
/** wmb's own identifiers (the `dev.wmb.*` namespace of its OCI annotations); docs/TRUST.md
 * describes each. They name formats and need not resolve. */
export const WMB_BUILD_TYPE = "https://wmb.dev/buildtypes/machine/v1";
export const MACHINE_PREDICATE_TYPE = "https://wmb.dev/attestation/machine/v1";
export const REBUILD_PREDICATE_TYPE = "https://wmb.dev/attestation/rebuild/v1";

/** Algorithm -> lowercase hex digest, as in-toto writes them (`sha256`, `blake3`). */
export type DigestSet = Record<string, string>;

export interface Subject {
  name: string;
  digest: DigestSet;
}

/** in-toto's ResourceDescriptor, with the members wmb writes. */
export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest?: DigestSet;
  annotations?: Record<string, string>;
}

export interface Statement<P> {
  _type: typeof STATEMENT_TYPE;
  subject: Subject[];
  predicateType: string;
  predicate: P;
}

/** The toolchain as an action key sees it: its kind and the digest of its files (build.ts's
 * ToolchainProvider.id). */
export interface ToolchainIdentity {
  kind: string;
  digest: { blake3: Digest };
}

// ---------------------------------------------------------------- provenance (SLSA v1)

export interface SlsaProvenance {
  buildDefinition: {
    buildType: string;
    externalParameters: { label: string };
    internalParameters: { wmbVersion: string; toolchain?: ToolchainIdentity };
    /** BUILD.ts first, then every source of the closure, each `{ uri, digest: { blake3 } }`. */
    resolvedDependencies: ResourceDescriptor[];
  };
  runDetails: {
    builder: { id: string };
    metadata?: { invocationId?: string; startedOn?: string; finishedOn?: string };
    /** One per action of the closure: name = label, digest.blake3 = its action key (the BLAKE3
     * of its canonical ActionKeyInputs), annotations.sandbox = how it ran. */
    byproducts?: ResourceDescriptor[];
  };
}

export interface ProvenanceInput {
  /** What was built: the wasm and machine manifests, by their OCI sha256 (hex). */
  subjects: { name: string; sha256: string }[];
  label: string;
  wmbVersion: string;
  toolchain?: ToolchainIdentity;
  /** BLAKE3 of BUILD.ts. */
  buildFile: Digest;
  /** Every source input of the closure: a workspace-relative path (or another URI, e.g. a fetched
   * package's) and its BLAKE3. */
  sources: { uri: string; blake3: Digest }[];
  builderId: string;
  invocationId?: string;
  startedOn?: Date;
  finishedOn?: Date;
  actions: { label: string; key: ActionKey; sandbox: SandboxUse }[];
}

export function provenanceStatement(p: ProvenanceInput): Statement<SlsaProvenance> {
  const byUri = (a: { uri: string }, b: { uri: string }) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0);
  const metadata = {
    ...(p.invocationId !== undefined && { invocationId: p.invocationId }),
    ...(p.startedOn && { startedOn: p.startedOn.toISOString() }),
    ...(p.finishedOn && { finishedOn: p.finishedOn.toISOString() }),
  };
  return statement(
    p.subjects.map((s) => ({ name: s.name, digest: { sha256: s.sha256 } })),
    SLSA_PROVENANCE_TYPE,
    {
      buildDefinition: {
        buildType: WMB_BUILD_TYPE,
        externalParameters: { label: p.label },
        internalParameters: { wmbVersion: p.wmbVersion, ...(p.toolchain && { toolchain: p.toolchain }) },
        resolvedDependencies: [{ uri: "BUILD.ts", digest: { blake3: p.buildFile } }, ...[...p.sources].sort(byUri).map((s) => ({ uri: s.uri, digest: { blake3: s.blake3 } }))],
      },
      runDetails: {
        builder: { id: p.builderId },
        ...(Object.keys(metadata).length > 0 && { metadata }),
        byproducts: [...p.actions]
          .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
          .map((a) => ({ name: a.label, digest: { blake3: a.key }, annotations: { sandbox: a.sandbox } })),
      },
    },
  );
}

export function parseProvenance(payload: Uint8Array, source: string): Statement<SlsaProvenance> {
  return parseStatement(payload, SLSA_PROVENANCE_TYPE, source, "a SLSA provenance", (p, refuse) => {
    const def = object(p.buildDefinition, "predicate.buildDefinition", refuse);
    const run = object(p.runDetails, "predicate.runDetails", refuse);
    const buildType = string(def.buildType, "predicate.buildDefinition.buildType", refuse);
    if (buildType !== WMB_BUILD_TYPE) refuse(`predicate.buildDefinition.buildType is not ${WMB_BUILD_TYPE}`);
    const ext = object(def.externalParameters, "predicate.buildDefinition.externalParameters", refuse);
    const int = object(def.internalParameters, "predicate.buildDefinition.internalParameters", refuse);
    const deps = array(def.resolvedDependencies, "predicate.buildDefinition.resolvedDependencies", refuse).map((d, i) =>
      resourceDescriptor(d, `predicate.buildDefinition.resolvedDependencies[${i}]`, refuse),
    );
    if (deps[0]?.uri !== "BUILD.ts" || !deps[0].digest?.blake3) refuse("predicate.buildDefinition.resolvedDependencies does not start with BUILD.ts and its blake3");
    const builder = object(run.builder, "predicate.runDetails.builder", refuse);
    const meta = run.metadata === undefined ? undefined : object(run.metadata, "predicate.runDetails.metadata", refuse);
    const byproducts = run.byproducts === undefined ? undefined : array(run.byproducts, "predicate.runDetails.byproducts", refuse).map((d, i) => resourceDescriptor(d, `predicate.runDetails.byproducts[${i}]`, refuse));
    const metadata = meta && {
      invocationId: optionalString(meta.invocationId, "predicate.runDetails.metadata.invocationId", refuse),
      startedOn: optionalTimestamp(meta.startedOn, "predicate.runDetails.metadata.startedOn", refuse),
      finishedOn: optionalTimestamp(meta.finishedOn, "predicate.runDetails.metadata.finishedOn", refuse),
    };
    return {
      buildDefinition: {
        buildType,
        externalParameters: { label: string(ext.label, "predicate.buildDefinition.externalParameters.label", refuse) },
        internalParameters: {
          wmbVersion: string(int.wmbVersion, "predicate.buildDefinition.internalParameters.wmbVersion", refuse),
          toolchain: int.toolchain === undefined ? undefined : toolchainIdentity(int.toolchain, "predicate.buildDefinition.internalParameters.toolchain", refuse),
        },
        resolvedDependencies: deps,
      },
      runDetails: { builder: { id: string(builder.id, "predicate.runDetails.builder.id", refuse) }, metadata, byproducts },
    };
  });
}

// ---------------------------------------------------------------- a machine's signature

/** What `wmb push` signs: this identity is the machine the index at this digest holds. */
export interface MachinePredicate {
  /** `blake3:<hex>`, the seal's identity. */
  identity: string;
  /** `sha256:<hex>`, the OCI image index (also the subject's digest). */
  index: string;
}

export function machineStatement(m: { name: string; identity: string; index: string }): Statement<MachinePredicate> {
  return statement([{ name: m.name, digest: { sha256: m.index.replace(/^sha256:/, "") } }], MACHINE_PREDICATE_TYPE, { identity: m.identity, index: m.index });
}

export function parseMachineStatement(payload: Uint8Array, source: string): Statement<MachinePredicate> {
  return parseStatement(payload, MACHINE_PREDICATE_TYPE, source, "a wmb machine statement", (p, refuse, subjects) => {
    const identity = prefixedDigest(p.identity, "blake3", "predicate.identity", refuse);
    const index = prefixedDigest(p.index, "sha256", "predicate.index", refuse);
    if (subjects.length !== 1 || subjects[0]!.digest.sha256 !== index.slice("sha256:".length)) refuse("its subject is not the index its predicate names");
    return { identity, index };
  });
}

/** Whether a verified machine statement is about exactly this machine at this index: undefined
 * when it is, else what differs (a machine re-pushed under a signed tag fails here). */
export function machineStatementMismatch(s: Statement<MachinePredicate>, pulled: { identity: string; index: string }): string | undefined {
  if (s.predicate.index !== pulled.index) return `the signature is for the index ${s.predicate.index}, not ${pulled.index}`;
  if (s.predicate.identity !== pulled.identity) return `the signature is for the machine ${s.predicate.identity}, not ${pulled.identity}`;
  return undefined;
}

// ---------------------------------------------------------------- independent rebuilds

/** What `wmb verify --attest` signs: the rebuilder built this identity itself, with every action
 * run locally and nothing served from any cache, using this wmb and toolchain. */
export interface RebuildPredicate {
  /** `blake3:<hex>`, the identity the rebuild produced (and the subject's digest). */
  identity: string;
  label: string;
  /** The name of the rebuilder's key: it must be a valid signer of the envelope it comes in. */
  rebuilder: string;
  wmbVersion: string;
  toolchain?: ToolchainIdentity;
  rebuiltOn?: string;
}

export interface RebuildInput {
  name: string;
  identity: string;
  label: string;
  rebuilder: string;
  wmbVersion: string;
  toolchain?: ToolchainIdentity;
  rebuiltOn?: Date;
}

export function rebuildAttestation(r: RebuildInput): Statement<RebuildPredicate> {
  return statement([{ name: r.name, digest: { blake3: r.identity.replace(/^blake3:/, "") } }], REBUILD_PREDICATE_TYPE, {
    identity: r.identity,
    label: r.label,
    rebuilder: r.rebuilder,
    wmbVersion: r.wmbVersion,
    ...(r.toolchain && { toolchain: r.toolchain }),
    ...(r.rebuiltOn && { rebuiltOn: r.rebuiltOn.toISOString() }),
  });
}

export function parseRebuildAttestation(payload: Uint8Array, source: string): Statement<RebuildPredicate> {
  return parseStatement(payload, REBUILD_PREDICATE_TYPE, source, "a wmb rebuild attestation", (p, refuse, subjects) => {
    const identity = prefixedDigest(p.identity, "blake3", "predicate.identity", refuse);
    if (subjects.length !== 1 || subjects[0]!.digest.blake3 !== identity.slice("blake3:".length)) refuse("its subject is not the identity its predicate names");
    return {
      identity,
      label: string(p.label, "predicate.label", refuse),
      rebuilder: string(p.rebuilder, "predicate.rebuilder", refuse),
      wmbVersion: string(p.wmbVersion, "predicate.wmbVersion", refuse),
      toolchain: p.toolchain === undefined ? undefined : toolchainIdentity(p.toolchain, "predicate.toolchain", refuse),
      rebuiltOn: optionalTimestamp(p.rebuiltOn, "predicate.rebuiltOn", refuse),
    };
  });
}

/**
 * The distinct keys that attest an identical rebuild of `identity`: an attestation counts for
 * its `rebuilder` only when that key is among the valid signers of its envelope, and never for
 * a key in `excluded` (the pusher's). N attestations signed by one key count once.
 */
export function independentRebuilders(
  attestations: readonly { statement: Statement<RebuildPredicate>; validSigners: readonly string[] }[],
  identity: string,
  excluded: readonly string[],
): string[] {
  const keys = new Set<string>();
  for (const a of attestations) {
    const { rebuilder, identity: rebuilt } = a.statement.predicate;
    if (rebuilt === identity && a.validSigners.includes(rebuilder) && !excluded.includes(rebuilder)) keys.add(rebuilder);
  }
  return [...keys].sort();
}

// ---------------------------------------------------------------- shared

function statement<P>(subject: Subject[], predicateType: string, predicate: P): Statement<P> {
  return { _type: STATEMENT_TYPE, subject, predicateType, predicate };
}

/** The payload bytes of a statement (the DSSE payload, payloadType IN_TOTO_PAYLOAD_TYPE). */
export function statementBytes(s: Statement<unknown>): Uint8Array {
  return canonicalBytes(s);
}

function parseStatement<P>(
  payload: Uint8Array,
  predicateType: string,
  source: string,
  what: string,
  predicate: (p: Json, refuse: Refuse, subjects: Subject[]) => P,
): Statement<P> {
  const refuse = refusal(source, what);
  const doc = parseCanonical(payload, refuse);
  if (doc._type !== STATEMENT_TYPE) refuse(`its _type is not ${STATEMENT_TYPE}`);
  if (doc.predicateType !== predicateType) refuse(`its predicateType is ${JSON.stringify(doc.predicateType)}, not ${predicateType}`);
  const subjects = array(doc.subject, "subject", refuse).map((v, i): Subject => {
    const s = object(v, `subject[${i}]`, refuse);
    return { name: string(s.name, `subject[${i}].name`, refuse), digest: digestSet(s.digest, `subject[${i}].digest`, refuse, true) };
  });
  if (subjects.length === 0) refuse("it has no subject");
  return statement(subjects, predicateType, predicate(object(doc.predicate, "predicate", refuse), refuse, subjects));
}

function digestSet(v: unknown, path: string, refuse: Refuse, required: boolean): DigestSet {
  const o = object(v, path, refuse);
  const entries = Object.entries(o);
  if (required && entries.length === 0) refuse(`${path} names no digest`);
  // Only the algorithms wmb writes are read; their values are checked.
  const set: DigestSet = {};
  for (const [alg, d] of entries) if (alg === "sha256" || alg === "blake3") set[alg] = hex64(d, `${path}.${alg}`, refuse);
  if (required && Object.keys(set).length === 0) refuse(`${path} has neither sha256 nor blake3`);
  return set;
}

function resourceDescriptor(v: unknown, path: string, refuse: Refuse): ResourceDescriptor {
  const o = object(v, path, refuse);
  const r: ResourceDescriptor = {};
  if (o.name !== undefined) r.name = string(o.name, `${path}.name`, refuse);
  if (o.uri !== undefined) r.uri = string(o.uri, `${path}.uri`, refuse);
  if (o.digest !== undefined) r.digest = digestSet(o.digest, `${path}.digest`, refuse, true);
  if (o.annotations !== undefined) {
    const a = object(o.annotations, `${path}.annotations`, refuse);
    r.annotations = Object.fromEntries(Object.entries(a).map(([k, val]) => [k, string(val, `${path}.annotations.${k}`, refuse)]));
  }
  if (r.name === undefined && r.uri === undefined && r.digest === undefined) refuse(`${path} has none of name, uri, digest`);
  return r;
}

function toolchainIdentity(v: unknown, path: string, refuse: Refuse): ToolchainIdentity {
  const o = object(v, path, refuse);
  const digest = object(o.digest, `${path}.digest`, refuse);
  return { kind: string(o.kind, `${path}.kind`, refuse), digest: { blake3: hex64(digest.blake3, `${path}.digest.blake3`, refuse) as Digest } };
}
