// Push a sealed machine to an OCI registry and pull one back (machine-artifact.ts is the
// layout). A pull verifies every byte twice, the registry's sha256 and the spec's BLAKE3, and
// the seal, before anything enters the store; a pull of a machine the store already holds
// makes no blob request (none at all by identity or index digest, one manifest for a tag).
// Kernel and rootfs are streamed to the store's temp directory while hashed, never held whole,
// and their sizes are checked before a byte is read (MAX_ARTIFACT_BYTES).
import { rm } from "node:fs/promises";
import { checkSealedSpec, formatSpec, withSources, type ArtifactRef, type SealedSpec } from "../formats/machine-spec.ts";
import { readComponent } from "../formats/wasm.ts";
import { ROOTFS_LIMITS } from "../run/rootfs-extract.ts";
import { WmbError } from "../errors.ts";
import type { Digest } from "../digest.ts";
import { registerMachine, type LoadedMachine } from "../machine.ts";
import type { Store } from "../../store/store.ts";
import { RegistryClient, sha256Of, type ClientOptions } from "./oci/client.ts";
import { enforceMachinePolicy, signMachine, attachStatement, PROVENANCE_ARTIFACT_TYPE, type MachinePolicy, type MachineTrust } from "./machine-trust.ts";
import type { SigningKey } from "../trust/keys.ts";
import type { Statement } from "../trust/statements.ts";
import { download, storeTempDir, type Download } from "./oci/download.ts";
import { fetchFollowing, unreachable } from "./oci/redirects.ts";
import { formatOciReference, identityTag, parseOciSource, type OciReference } from "./oci/reference.ts";
import {
  ANNOTATION,
  machineArtifact,
  readMachineIndex,
  readManifest,
  ROOTFS_MEDIA_TYPE,
  SPEC_MEDIA_TYPE,
  WASM_CONFIG_MEDIA_TYPE,
  WASM_LAYER_MEDIA_TYPE,
  type Descriptor,
} from "./machine-artifact.ts";

export interface PushReport {
  identity: string;
  reference: string;
  index: string;
  tags: string[];
  blobs: number;
  uploaded: number;
  uploadedBytes: number;
  /** The referrers attached: the machine's signature and its provenance. */
  signature?: string;
  provenance?: string;
}

export interface PushOptions extends ClientOptions {
  /** Sign the machine (identity + index digest) with this key. */
  signer?: SigningKey;
  /** The SLSA provenance statement to sign and attach, given the wasm and machine manifests. */
  provenance?: (subjects: { name: string; sha256: string }[]) => Promise<Statement<unknown>>;
}

export interface PullReport {
  identity: string;
  reference: string;
  index?: string;
  /** Blobs fetched (0 when the store held the machine already). */
  fetched: number;
  fetchedBytes: number;
  cached: boolean;
  /** What the policy found, when it asked (trusted keys configured). */
  trust?: MachineTrust;
}

export type ArtifactRole = "kernel" | "rootfs";

/** The largest kernel and rootfs fetched, checked before a byte is: V8 compiles no wasm module
 * over 1 GiB, and the rootfs extractor reads no more than its limits (with room for a header, a
 * pax header and padding per entry, and the archive's end). */
export const MAX_ARTIFACT_BYTES: Record<ArtifactRole, number> = {
  kernel: 1 << 30,
  rootfs: ROOTFS_LIMITS.maxTotalBytes + ROOTFS_LIMITS.maxEntries * 2048 + 1024,
};

function hex(prefixed: string): Digest {
  return prefixed.replace(/^blake3:/, "") as Digest;
}

/** The sha256 of a machine's blob, from the bytes it holds (never from the store's map, which an
 * older wmb filled from descriptors it did not check), recorded so the map is right from now on. */
function sha256For(store: Store, digest: Digest, bytes: Uint8Array): string {
  const sha = sha256Of(bytes);
  if (store.sha256Of(digest) !== sha) store.recordSha256(digest, sha);
  return sha;
}

/** Refused before anything is fetched: an artifact larger than any wmb runs. */
function checkClaimedSize(ref: ArtifactRef, role: ArtifactRole, what: string): void {
  if (ref.size > MAX_ARTIFACT_BYTES[role]) {
    throw new WmbError("INTEGRITY", `${what} is said to be ${ref.size} bytes, more than the ${MAX_ARTIFACT_BYTES[role]} a ${role} may be; it was not fetched, and nothing was admitted.`, { subject: what });
  }
}

/** A downloaded artifact is the one `ref` names (its size was checked on the way). */
async function checkDownloaded(ref: ArtifactRef, d: Download, what: string): Promise<void> {
  if (`blake3:${d.blake3}` === ref.digest) return;
  await rm(d.path, { force: true });
  throw new WmbError("INTEGRITY", `${what} hashes to blake3:${d.blake3} but the spec says ${ref.digest}; nothing was admitted.`, { subject: what });
}

export async function pushMachine(store: Store, m: LoadedMachine, ref: OciReference, opts: PushOptions = {}): Promise<PushReport> {
  if (!ref.tag || ref.digest) {
    throw new WmbError("USAGE", `Push to a tag (oci://<registry>/<repository>:<tag>), not to ${formatOciReference(ref)}; wmb adds the identity's tag itself.`, { subject: formatOciReference(ref) });
  }
  const kernelSha = sha256For(store, m.kernelDigest, m.kernel);
  const rootfsSha = sha256For(store, m.rootfsDigest, m.rootfs);
  const artifact = machineArtifact(m.spec, readComponent(m.kernel), kernelSha, rootfsSha);
  const client = new RegistryClient(ref.registry, opts);
  let uploaded = 0;
  let uploadedBytes = 0;
  for (const b of artifact.blobs) {
    const inStore = b.blake3 !== undefined && (await store.checkBlob(b.blake3 as Digest)) === "ok";
    const bytes = b.bytes ?? (b.blake3 === m.kernelDigest ? m.kernel : m.rootfs);
    const content = inStore ? { file: store.blobPath(b.blake3 as Digest) } : { bytes };
    if (await client.pushBlob(ref.repository, b.descriptor.digest, b.descriptor.size, content)) {
      uploaded++;
      uploadedBytes += b.descriptor.size;
    }
  }
  for (const mf of artifact.manifests) await client.putManifest(ref.repository, mf.digest, mf.bytes, "application/vnd.oci.image.manifest.v1+json");
  const tags = [ref.tag, identityTag(artifact.identity)];
  for (const tag of tags) await client.putManifest(ref.repository, tag, artifact.index.bytes, "application/vnd.oci.image.index.v1+json");
  store.recordOciIndex(artifact.index.digest, artifact.identity);
  const report: PushReport = { identity: artifact.identity, reference: formatOciReference(ref), index: artifact.index.digest, tags, blobs: artifact.blobs.length, uploaded, uploadedBytes };
  if (opts.signer) {
    const at = { client, repository: ref.repository, digest: artifact.index.digest, size: artifact.index.bytes.length };
    report.signature = await signMachine(at, { name: m.spec.name, identity: artifact.identity }, opts.signer);
    store.recordMachineSigners(artifact.identity, artifact.index.digest, "push", [opts.signer.publicKey]);
    if (opts.provenance) {
      const subjects = artifact.manifests.map((mf, i) => ({ name: i === 0 ? `${m.spec.name}.wasm` : m.spec.name, sha256: mf.digest.replace(/^sha256:/, "") }));
      report.provenance = await attachStatement(at, PROVENANCE_ARTIFACT_TYPE, await opts.provenance(subjects), opts.signer);
    }
  }
  return report;
}

/** Whether the store holds a whole registered machine. */
async function holds(store: Store, identity: string): Promise<boolean> {
  const spec = store.machineSpecDigest(identity);
  if (!spec || (await store.checkBlob(spec)) !== "ok") return false;
  const parsed = JSON.parse((await store.readBlob(spec)).toString("utf8")) as SealedSpec;
  for (const r of [parsed.kernel_ref, parsed.rootfs_ref]) if ((await store.checkBlob(hex(r.digest))) !== "ok") return false;
  return true;
}

/** `policy`: with trusted keys configured, the machine's signatures (and rebuilds) are checked
 * before anything is fetched or admitted, also for a machine the store holds already. */
export async function pullMachine(store: Store, ref: OciReference, opts: ClientOptions & { policy?: MachinePolicy } = {}): Promise<PullReport> {
  const reference = formatOciReference(ref);
  const asks = opts.policy !== undefined && (opts.policy.trustedFrom !== undefined || (opts.policy.requireRebuilds ?? 0) > 0);
  let trust: MachineTrust | undefined;
  const cached = (identity: string, index?: string): PullReport => ({ identity, reference, index, fetched: 0, fetchedBytes: 0, cached: true, ...(trust && { trust }) });
  // Without a policy a machine the store holds needs no request; with one, its signatures do.
  if (!asks && ref.digest?.startsWith("blake3:") && (await holds(store, ref.digest))) return cached(ref.digest);
  if (!asks && ref.digest?.startsWith("sha256:")) {
    const known = store.ociIndexIdentity(ref.digest);
    if (known && (await holds(store, known))) return cached(known, ref.digest);
  }
  const client = new RegistryClient(ref.registry, opts);
  const repo = ref.repository;
  const wanted = ref.digest?.startsWith("blake3:") ? identityTag(ref.digest) : (ref.digest ?? ref.tag!);
  const indexManifest = await client.manifest(repo, wanted);
  const index = readMachineIndex(indexManifest.bytes, reference);
  if (ref.digest?.startsWith("blake3:") && index.identity !== ref.digest) {
    throw new WmbError("INTEGRITY", `${reference} resolves to the machine ${index.identity}, not the identity asked for; nothing was admitted.`, { subject: reference });
  }
  // Who vouches for it, before any of its blobs is fetched (the spec's seal is checked against
  // this identity below, so the signed identity is the machine admitted).
  trust = await enforceMachinePolicy({ client, repository: repo, digest: indexManifest.digest, size: indexManifest.bytes.length }, index.identity, reference, opts.policy);
  // Who signed it is remembered once the machine is in the store (here, or after the checks below).
  const remember = (identity: string) => {
    if (trust) store.recordMachineSigners(identity, indexManifest.digest, "pull", trust.signerKeys);
  };
  const known = store.ociIndexIdentity(indexManifest.digest);
  if (known && known === index.identity && (await holds(store, known))) {
    remember(known);
    return cached(known, indexManifest.digest);
  }

  const fetchManifest = async (d: Descriptor, role: string) => {
    const m = await client.manifest(repo, d.digest);
    if (m.bytes.length !== d.size) throw new WmbError("INTEGRITY", `The ${role} manifest of ${reference} is ${m.bytes.length} bytes, not the ${d.size} the index says; nothing was admitted.`, { subject: reference });
    return m;
  };
  const machine = readManifest((await fetchManifest(index.machine, "machine")).bytes, SPEC_MEDIA_TYPE, ROOTFS_MEDIA_TYPE, `the machine manifest of ${reference}`);
  const component = readManifest((await fetchManifest(index.component, "component")).bytes, WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE, `the component manifest of ${reference}`);

  let fetched = 0;
  let fetchedBytes = 0;
  const specBytes = await client.documentBlob(repo, machine.config.digest, machine.config.size);
  fetched++;
  fetchedBytes += specBytes.length;
  let value: unknown;
  try {
    value = JSON.parse(specBytes.toString("utf8"));
  } catch {
    throw new WmbError("INTEGRITY", `The spec in ${reference} is not JSON; nothing was admitted.`, { subject: reference });
  }
  const spec = checkSealedSpec(value, {}, `the spec in ${reference}`);
  if (spec.seal.digest !== index.identity) {
    throw new WmbError("INTEGRITY", `The spec in ${reference} is sealed as ${spec.seal.digest} but the index says ${index.identity}; nothing was admitted.`, { subject: reference });
  }
  // Each layer must be the artifact the spec names: same BLAKE3 annotation and size, then the bytes.
  const layers: [ArtifactRef, Descriptor, ArtifactRole][] = [
    [spec.kernel_ref, component.layer, "kernel"],
    [spec.rootfs_ref, machine.layer, "rootfs"],
  ];
  for (const [r, layer, role] of layers) {
    const annotated = layer.annotations?.[ANNOTATION.blake3];
    if (layer.size !== r.size || (annotated !== undefined && `blake3:${annotated}` !== r.digest)) {
      throw new WmbError("INTEGRITY", `The ${role} layer of ${reference} (${layer.digest}) is not the ${role} its spec names (${r.digest}); nothing was admitted.`, { subject: reference });
    }
    checkClaimedSize(r, role, `The ${role} of ${reference}`);
  }
  const downloads: { digest: Digest; download: Download }[] = [];
  try {
    for (const [r, layer, role] of layers) {
      if ((await store.checkBlob(hex(r.digest))) === "ok") continue;
      const d = await client.downloadBlob(repo, layer.digest, layer.size, storeTempDir(store));
      downloads.push({ digest: hex(r.digest), download: d });
      await checkDownloaded(r, d, `the ${role} of ${reference}`);
      fetched++;
      fetchedBytes += d.size;
    }
    // Everything checked: admit, and remember where the machine came from. A sha256 is recorded
    // only for bytes hashed here: a blob the store had is not the registry's word for its sha256.
    for (const { digest, download: d } of downloads) {
      await store.moveFile(d.path);
      store.recordSha256(digest, d.sha256);
    }
  } finally {
    for (const { download: d } of downloads) await rm(d.path, { force: true });
  }
  const where = `${ref.registry}/${repo}`;
  const located = withSources(spec, { kernel: [{ oci: `${where}@${component.layer.digest}` }], rootfs: [{ oci: `${where}@${machine.layer.digest}` }] });
  const stored = await store.putBytes(new TextEncoder().encode(formatSpec(located)));
  registerMachine(store, located, stored.digest);
  store.recordOciIndex(indexManifest.digest, spec.seal.digest);
  remember(spec.seal.digest);
  return { identity: spec.seal.digest, reference, index: indexManifest.digest, fetched, fetchedBytes, cached: false, ...(trust && { trust }) };
}

/** Bring an artifact into the store from one of its `oci` or `https` sources, in order, each
 * streamed to the store's temp directory and verified against the ref (and the registry's
 * sha256) before it is admitted. False when it names none. */
export async function fetchFromSources(store: Store, ref: ArtifactRef, role: ArtifactRole, what: string, opts: ClientOptions = {}): Promise<boolean> {
  checkClaimedSize(ref, role, what);
  const errors: WmbError[] = [];
  for (const s of ref.sources) {
    if (typeof s.oci !== "string" && typeof s.https !== "string") continue;
    const from = `${what} from ${s.oci ?? s.https}`;
    try {
      let d: Download;
      if (typeof s.oci === "string") {
        const source = parseOciSource(s.oci);
        d = await new RegistryClient(source.registry, opts).downloadBlob(source.repository, source.digest, ref.size, storeTempDir(store));
      } else {
        d = await download(await httpsSource(s.https!, from), { dir: storeTempDir(store), size: ref.size, what: from });
      }
      await checkDownloaded(ref, d, from);
      await store.moveFile(d.path);
      return true;
    } catch (e) {
      if (!(e instanceof WmbError)) throw e;
      errors.push(e);
    }
  }
  if (errors.length === 0) return false;
  const code = errors.some((e) => e.code === "INTEGRITY") ? "INTEGRITY" : "REMOTE";
  throw new WmbError(code, `${what} (${ref.digest}) could not be fetched from any of its sources: ${errors.map((e) => e.message).join(" ")}`, { subject: what });
}

/** The response of an `https` source: https only, a few redirects, never to plain http. */
async function httpsSource(url: string, what: string): Promise<Response> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new WmbError("USAGE", `${what}: "${url}" is not a URL.`, { subject: url });
  }
  if (target.protocol !== "https:") throw new WmbError("USAGE", `${what}: "${url}" is not an https URL.`, { subject: url });
  let res: Response;
  try {
    res = await fetchFollowing(target, { signal: AbortSignal.timeout(300_000) }, { policy: "never", what });
  } catch (e) {
    if (e instanceof WmbError) throw e;
    throw unreachable(target.host, e);
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new WmbError("REMOTE", `${url} answered HTTP ${res.status}.`, { subject: url });
  }
  return res;
}
