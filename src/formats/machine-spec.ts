// The machine spec (`<machine>.json`): its types, its validation, its seal, and the policy a
// component must satisfy to be sealed. The spec and seal rules write it; `wmb run`, `inspect`
// and `verify` read it back through the same functions, so a spec is judged one way everywhere.
//
// Identity: "blake3:" + BLAKE3 of the RFC 8785 (JCS) bytes of the spec without its `seal`
// member and without any ArtifactRef's `sources` (schema_version 2: sources say where bytes may
// be fetched, not what the machine is, so pushing or moving a machine never changes its
// identity; a schema_version 1 spec, whose identity covered its sources, is still read). The sealed file is written as pretty JSON (members in JCS order, 2-space indent,
// trailing newline) for people to read; its whitespace never matters, the identity is over JCS.
import { hashBytes } from "../digest.ts";
import { WmbError } from "../errors.ts";
import { canonicalBytes, CanonicalizationError } from "./jcs.ts";
import { isOciSource } from "../remote/oci/reference.ts";
import { memoryMaximumBytes, type ComponentInfo } from "./wasm.ts";

export const SCHEMA_VERSION = 2;
/** The largest spec wmb reads from a peer (sqlite-cli's is 3 kB): a spec is parsed in memory. */
export const MAX_SPEC_BYTES = 4 << 20;

/** The versions wmb reads: 1 differs only in that its identity covers `sources`. */
const READABLE_SCHEMA_VERSIONS = [1, 2];
export const SEAL_ALGORITHM = "blake3";
export const SEAL_CANONICALIZATION = "jcs-rfc8785";
/** The provider every WASI import of a machine binds to: the runtime's host implementation. */
export const WASI_HOST = "wasi-host";
export const KERNEL_MEDIA_TYPE = "application/wasm";
export const ROOTFS_MEDIA_TYPE = "application/x-tar";

/** "blake3:" followed by 64 lowercase hex digits. */
export type PrefixedDigest = `blake3:${string}`;

export interface ArtifactSource {
  /** A file name relative to the directory that holds the spec. */
  local?: string;
  /** A blob in an OCI registry: "<registry>/<repository>@sha256:<64 hex>". */
  oci?: string;
  /** An https URL serving the bytes. */
  https?: string;
  [other: string]: unknown;
}

export interface ArtifactRef {
  digest: PrefixedDigest;
  size: number;
  media_type: string;
  sources: ArtifactSource[];
}

export interface CapabilityProfile {
  cpus: number;
  memory_bytes: number;
  network: "deny" | "allow";
  filesystem: { writable: string[] };
}

export interface ComponentEntry {
  id: string;
  /** The 32 bytes of the component's BLAKE3 digest, as integers 0..255. */
  digest: number[];
}

export interface Binding {
  consumer_id: string;
  import_name: string;
  provider_id: string;
  export_name: string;
}

export interface Composition {
  version: number;
  root: string;
  components: ComponentEntry[];
  bindings: Binding[];
  secrets: unknown[];
  policy: { determinism: string; capabilities: string[] };
}

export interface Seal {
  algorithm: typeof SEAL_ALGORITHM;
  canonicalization: typeof SEAL_CANONICALIZATION;
  digest: PrefixedDigest;
}

export interface MachineSpec {
  schema_version: number;
  name: string;
  version: string;
  capability_profile: CapabilityProfile;
  kernel_ref: ArtifactRef;
  rootfs_ref: ArtifactRef;
  composition: Composition;
  seal?: Seal;
}

export type SealedSpec = MachineSpec & { seal: Seal };

// ---- digests -------------------------------------------------------------------------------

/** The one place the spec code hashes: lowercase hex BLAKE3. */
export function blake3Hex(bytes: Uint8Array): string {
  return hashBytes(bytes);
}

export function prefixedDigest(bytes: Uint8Array): PrefixedDigest {
  return `blake3:${blake3Hex(bytes)}`;
}

const HEX64 = /^[0-9a-f]{64}$/;
const PREFIXED = /^blake3:[0-9a-f]{64}$/;

/** "blake3:ab…" or "ab…" (64 hex) -> 32 integers. */
export function digestHexToInts(hex: string): number[] {
  const bare = hex.startsWith("blake3:") ? hex.slice(7) : hex;
  if (!HEX64.test(bare)) throw new Error(`"${hex}" is not a BLAKE3 digest (64 lowercase hex digits).`);
  // Without Buffer: the page checks seals with this module too (src/web/page).
  return Array.from({ length: 32 }, (_, i) => parseInt(bare.slice(2 * i, 2 * i + 2), 16));
}

/** 32 integers 0..255 -> 64 lowercase hex digits (no prefix). */
export function digestIntsToHex(ints: readonly number[]): string {
  if (ints.length !== 32 || !ints.every((n) => Number.isInteger(n) && n >= 0 && n <= 255)) {
    throw new Error(`a digest must be 32 integers from 0 to 255, got ${JSON.stringify(ints)}.`);
  }
  return ints.map((n) => n.toString(16).padStart(2, "0")).join("");
}

/** The ArtifactRef of some bytes published next to the spec as `local`. */
export function artifactRef(bytes: Uint8Array, mediaType: string, local: string): ArtifactRef {
  return { digest: prefixedDigest(bytes), size: bytes.length, media_type: mediaType, sources: [{ local }] };
}

// ---- identity and seal ---------------------------------------------------------------------

/** The spec without `seal`. */
export function withoutSeal(spec: MachineSpec): Omit<MachineSpec, "seal"> {
  const { seal: _seal, ...rest } = spec;
  return rest;
}

/** The spec as the identity sees it: everything but `seal` and (from schema_version 2) every
 * ArtifactRef's `sources`. */
function identityView(spec: MachineSpec): unknown {
  const rest = withoutSeal(spec);
  if (spec.schema_version === 1) return rest;
  const bare = (ref: ArtifactRef) => {
    const { sources: _sources, ...r } = ref;
    return r;
  };
  return { ...rest, kernel_ref: bare(spec.kernel_ref), rootfs_ref: bare(spec.rootfs_ref) };
}

/** "blake3:" + BLAKE3(JCS(the identity view)). */
export function sealIdentity(spec: MachineSpec): PrefixedDigest {
  return prefixedDigest(canonicalBytes(identityView(spec)));
}

/** The same machine with other sources (the identity and the seal stay valid: schema_version 2).
 * No sources at all is how a machine travels: its bytes then name no location. */
export function withSources(spec: SealedSpec, sources: { kernel: ArtifactSource[]; rootfs: ArtifactSource[] }): SealedSpec {
  if (spec.schema_version === 1) throw new Error("internal: a schema_version 1 spec's identity covers its sources");
  return { ...spec, kernel_ref: { ...spec.kernel_ref, sources: sources.kernel }, rootfs_ref: { ...spec.rootfs_ref, sources: sources.rootfs } };
}

/** The spec with its seal (any previous seal replaced). */
export function sealSpec(spec: MachineSpec): SealedSpec {
  return { ...withoutSeal(spec), seal: { algorithm: SEAL_ALGORITHM, canonicalization: SEAL_CANONICALIZATION, digest: sealIdentity(spec) } };
}

/** The bytes of a spec file: pretty JSON with members in JCS order, and a trailing newline. */
export function formatSpec(spec: MachineSpec): string {
  return `${JSON.stringify(sortedCopy(spec), null, 2)}\n`;
}

function sortedCopy(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortedCopy);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortedCopy((v as Record<string, unknown>)[k])]));
  }
  return v;
}

export interface SealCheckArtifacts {
  kernel?: Uint8Array;
  rootfs?: Uint8Array;
}

/**
 * Validate a sealed spec and prove it intact: the shape, the seal's digest against the identity
 * recomputed from the document, and (when given) the kernel and rootfs bytes against their refs.
 * Throws a WmbError("INTEGRITY") whose message says what differs; returns the typed spec.
 * `what` names the document in messages (a path or a label).
 */
export function checkSealedSpec(value: unknown, artifacts: SealCheckArtifacts = {}, what = "the machine spec"): SealedSpec {
  const spec = validateMachineSpec(value, what);
  if (!spec.seal) throw integrity(`${what} is not sealed (it has no "seal" member); build its sealed target.`, what);
  let identity: string;
  try {
    identity = sealIdentity(spec);
  } catch (e) {
    // JCS refuses what is not I-JSON (a lone surrogate, found by fuzzing): no identity, no seal.
    if (!(e instanceof CanonicalizationError)) throw e;
    throw integrity(`${what} has no canonical form, so no seal can match it: ${e.message.slice(0, 300)}`, what);
  }
  if (identity !== spec.seal.digest) {
    throw integrity(`${what} does not match its seal: its content hashes to ${identity} but the seal says ${spec.seal.digest}.`, what);
  }
  if (artifacts.kernel) checkArtifact(spec.kernel_ref, artifacts.kernel, `the kernel of ${what}`);
  if (artifacts.rootfs) checkArtifact(spec.rootfs_ref, artifacts.rootfs, `the rootfs of ${what}`);
  return spec as SealedSpec;
}

function isHttpsUrl(s: string): boolean {
  try {
    const url = new URL(s);
    return url.protocol === "https:" && url.hostname !== "" && !url.username && !url.password;
  } catch {
    return false;
  }
}

/** Throws WmbError("INTEGRITY") when `bytes` are not what `ref` describes. */
export function checkArtifact(ref: ArtifactRef, bytes: Uint8Array, what: string): void {
  if (bytes.length !== ref.size) throw integrity(`${what} is ${bytes.length} bytes but the spec says ${ref.size}.`, what);
  const digest = prefixedDigest(bytes);
  if (digest !== ref.digest) throw integrity(`${what} hashes to ${digest} but the spec says ${ref.digest}.`, what);
}

function integrity(message: string, subject: string): WmbError {
  return new WmbError("INTEGRITY", message, { subject });
}

// ---- policy --------------------------------------------------------------------------------

const NETWORK_INTERFACES = /^wasi:(sockets|http)\//;

/** What a profile allows that the imports need, in one sentence each; empty when the component fits. */
export function policyViolations(component: ComponentInfo, profile: CapabilityProfile): string[] {
  const out: string[] = [];
  if (profile.network === "deny") {
    for (const i of component.imports) {
      if (NETWORK_INTERFACES.test(i.name)) out.push(`the component imports ${i.name} but the capability profile says network: "deny".`);
    }
  }
  // Imported memories are another module's memory seen from inside the component: only the
  // memories a module defines take space. Their maxima add up: that is what the guest can hold.
  let total = 0;
  const parts: string[] = [];
  for (const m of component.coreModules) {
    for (const mem of m.memories) {
      if (mem.importedFrom) continue;
      const max = memoryMaximumBytes(mem);
      if (max === null) {
        out.push(
          `core module ${m.path} defines memory ${mem.index} with no maximum, so it could grow past memory_bytes ${profile.memory_bytes}; link with -Wl,--max-memory=${profile.memory_bytes}.`,
        );
        continue;
      }
      total += max;
      parts.push(`${m.path} memory ${mem.index}: ${mem.max} pages = ${max} bytes`);
    }
  }
  if (total > profile.memory_bytes) {
    out.push(`the component's memory may grow to ${total} bytes (${parts.join("; ")}), more than memory_bytes ${profile.memory_bytes}.`);
  }
  return out;
}

/** One binding per WASI import, to the host. Throws when an import is not WASI (nothing could provide it). */
export function wasiBindings(consumerId: string, component: ComponentInfo): Binding[] {
  return component.imports.map((i) => {
    if (!i.name.startsWith("wasi:")) {
      throw new Error(`the component imports "${i.name}", which is not a WASI interface, so no provider of this machine can satisfy it.`);
    }
    return { consumer_id: consumerId, import_name: i.name, provider_id: WASI_HOST, export_name: i.name };
  });
}

// ---- validation ----------------------------------------------------------------------------

/** Check the shape and internal consistency of a spec (sealed or not). Throws WmbError("INTEGRITY"). */
export function validateMachineSpec(value: unknown, what = "the machine spec"): MachineSpec {
  // A reason quotes what the spec holds, which anyone may have written: cut to a sentence's
  // length (fuzzing found 70 kB messages).
  const fail = (path: string, why: string): never => {
    const short = (t: string, n: number) => (t.length > n ? `${t.slice(0, n - 3)}...` : t);
    throw integrity(`${what} is invalid: ${short(path, 200)} ${short(why, 400)}.`, what);
  };
  const obj = (v: unknown, path: string): Record<string, unknown> => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) fail(path, "must be an object");
    return v as Record<string, unknown>;
  };
  const str = (v: unknown, path: string): string => {
    if (typeof v !== "string" || v === "") fail(path, "must be a non-empty string");
    return v as string;
  };
  const int = (v: unknown, path: string, min: number): number => {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) fail(path, `must be an integer >= ${min}`);
    return v as number;
  };
  const arr = (v: unknown, path: string): unknown[] => {
    if (!Array.isArray(v)) fail(path, "must be an array");
    return v as unknown[];
  };
  const strings = (v: unknown, path: string): string[] => arr(v, path).map((x, i) => str(x, `${path}[${i}]`));
  const ref = (v: unknown, path: string): ArtifactRef => {
    const r = obj(v, path);
    if (typeof r.digest !== "string" || !PREFIXED.test(r.digest)) fail(`${path}.digest`, 'must be "blake3:" and 64 lowercase hex digits');
    int(r.size, `${path}.size`, 0);
    str(r.media_type, `${path}.media_type`);
    const sources = arr(r.sources, `${path}.sources`);
    // Version 1 sealed its sources, so it needed one; a version 2 machine in transit has none.
    if (sources.length === 0 && spec.schema_version === 1) fail(`${path}.sources`, "must name at least one source");
    sources.forEach((s, i) => {
      const src = obj(s, `${path}.sources[${i}]`);
      if (src.local !== undefined) {
        const local = str(src.local, `${path}.sources[${i}].local`);
        if (local.startsWith("/") || local.split(/[\\/]/).includes("..")) fail(`${path}.sources[${i}].local`, "must be a relative path that stays next to the spec");
      }
      // Sources are outside the seal, so anyone may have written them: each is held to its grammar.
      if (src.oci !== undefined && !isOciSource(str(src.oci, `${path}.sources[${i}].oci`))) {
        fail(`${path}.sources[${i}].oci`, 'must be "<registry>/<repository>@sha256:<64 hex>" in the OCI reference grammar');
      }
      if (src.https !== undefined && !isHttpsUrl(str(src.https, `${path}.sources[${i}].https`))) fail(`${path}.sources[${i}].https`, 'must be an "https://" URL');
    });
    return r as unknown as ArtifactRef;
  };

  const spec = obj(value, "the document");
  if (!READABLE_SCHEMA_VERSIONS.includes(spec.schema_version as number)) {
    fail("schema_version", `must be ${READABLE_SCHEMA_VERSIONS.join(" or ")}, got ${JSON.stringify(spec.schema_version)}`);
  }
  const name = str(spec.name, "name");
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) fail("name", "must be lowercase letters, digits, '.', '_' or '-'");
  str(spec.version, "version");

  const profile = obj(spec.capability_profile, "capability_profile");
  int(profile.cpus, "capability_profile.cpus", 1);
  int(profile.memory_bytes, "capability_profile.memory_bytes", 1);
  if (profile.network !== "deny" && profile.network !== "allow") fail("capability_profile.network", 'must be "deny" or "allow"');
  const fs = obj(profile.filesystem, "capability_profile.filesystem");
  // Each writable path becomes one mount of its own: absolute, normalized, not `/` (the rootfs
  // is read-only), and neither inside another one nor repeated.
  const writable = strings(fs.writable, "capability_profile.filesystem.writable");
  writable.forEach((p, i) => {
    const at = `capability_profile.filesystem.writable[${i}]`;
    if (!p.startsWith("/") || p.split("/").includes("..")) fail(at, "must be an absolute path without '..'");
    if (p === "/" || p.endsWith("/") || p.includes("//") || p.split("/").includes(".")) fail(at, `must name a directory below / in normal form, not "${p}"`);
    const other = writable.findIndex((q, j) => j !== i && (q === p || p.startsWith(`${q}/`)));
    if (other >= 0) fail(at, `"${p}" repeats or lies inside writable[${other}] "${writable[other]}"`);
  });

  const kernel = ref(spec.kernel_ref, "kernel_ref");
  ref(spec.rootfs_ref, "rootfs_ref");

  const comp = obj(spec.composition, "composition");
  int(comp.version, "composition.version", 1);
  const root = str(comp.root, "composition.root");
  const ids = new Map<string, number[]>();
  arr(comp.components, "composition.components").forEach((c, i) => {
    const e = obj(c, `composition.components[${i}]`);
    const id = str(e.id, `composition.components[${i}].id`);
    const digest = arr(e.digest, `composition.components[${i}].digest`);
    if (digest.length !== 32 || !digest.every((n) => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 255)) {
      fail(`composition.components[${i}].digest`, "must be 32 integers from 0 to 255");
    }
    if (ids.has(id)) fail(`composition.components[${i}].id`, `repeats "${id}"`);
    ids.set(id, digest as number[]);
  });
  const rootDigest = ids.get(root);
  if (!rootDigest) fail("composition.root", `names "${root}", which is not among composition.components`);
  if (`blake3:${digestIntsToHex(rootDigest!)}` !== kernel.digest) {
    fail(`composition.components (id "${root}")`, `has digest blake3:${digestIntsToHex(rootDigest!)}, not the kernel's ${kernel.digest}`);
  }
  const seen = new Set<string>();
  arr(comp.bindings, "composition.bindings").forEach((b, i) => {
    const p = `composition.bindings[${i}]`;
    const e = obj(b, p);
    const consumer = str(e.consumer_id, `${p}.consumer_id`);
    if (!ids.has(consumer)) fail(`${p}.consumer_id`, `names "${consumer}", which is not among composition.components`);
    const imp = str(e.import_name, `${p}.import_name`);
    str(e.provider_id, `${p}.provider_id`);
    str(e.export_name, `${p}.export_name`);
    if (seen.has(`${consumer}\0${imp}`)) fail(`${p}`, `binds ${consumer}'s import ${imp} a second time`);
    seen.add(`${consumer}\0${imp}`);
  });
  arr(comp.secrets, "composition.secrets");
  const policy = obj(comp.policy, "composition.policy");
  str(policy.determinism, "composition.policy.determinism");
  strings(policy.capabilities, "composition.policy.capabilities");

  if (spec.seal !== undefined) {
    const seal = obj(spec.seal, "seal");
    if (seal.algorithm !== SEAL_ALGORITHM) fail("seal.algorithm", `must be "${SEAL_ALGORITHM}", got ${JSON.stringify(seal.algorithm)}`);
    if (seal.canonicalization !== SEAL_CANONICALIZATION) fail("seal.canonicalization", `must be "${SEAL_CANONICALIZATION}", got ${JSON.stringify(seal.canonicalization)}`);
    if (typeof seal.digest !== "string" || !PREFIXED.test(seal.digest)) fail("seal.digest", 'must be "blake3:" and 64 lowercase hex digits');
  }
  return spec as unknown as MachineSpec;
}

/** The bindings a spec should have for `component`, compared with the ones it has. */
export function bindingDifferences(spec: MachineSpec, component: ComponentInfo): { missing: string[]; extra: string[] } {
  const root = spec.composition.root;
  const declared = new Set(spec.composition.bindings.filter((b) => b.consumer_id === root).map((b) => b.import_name));
  const actual = new Set(component.imports.map((i) => i.name));
  return {
    missing: [...actual].filter((n) => !declared.has(n)).sort(),
    extra: [...declared].filter((n) => !actual.has(n)).sort(),
  };
}
