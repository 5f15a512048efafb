// Push a sealed machine to an OCI registry and pull one back (machine-artifact.ts is the
// layout). A pull verifies every byte twice, the registry's sha256 and the spec's BLAKE3, and
// the seal, before anything enters the store; a pull of a machine the store already holds
// makes no blob request (none at all by identity or index digest, one manifest for a tag).
import { checkArtifact, checkSealedSpec, formatSpec, withSources, type ArtifactRef, type SealedSpec } from "../formats/machine-spec.ts";
import { readComponent } from "../formats/wasm.ts";
import { WmbError } from "../errors.ts";
import type { Digest } from "../digest.ts";
import { registerMachine, type LoadedMachine } from "../machine.ts";
import type { Store } from "../../store/store.ts";
import { RegistryClient, sha256Of, type ClientOptions } from "./oci/client.ts";
import { formatOciReference, identityTag, type OciReference } from "./oci/reference.ts";
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
}

export interface PullReport {
  identity: string;
  reference: string;
  index?: string;
  /** Blobs fetched (0 when the store held the machine already). */
  fetched: number;
  fetchedBytes: number;
  cached: boolean;
}

function hex(prefixed: string): Digest {
  return prefixed.replace(/^blake3:/, "") as Digest;
}

/** The sha256 of a store blob, hashed once and remembered. */
function sha256For(store: Store, digest: Digest, bytes: Uint8Array): string {
  const known = store.sha256Of(digest);
  if (known) return known;
  const sha = sha256Of(bytes);
  store.recordSha256(digest, sha);
  return sha;
}

export async function pushMachine(store: Store, m: LoadedMachine, ref: OciReference, opts: ClientOptions = {}): Promise<PushReport> {
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
  return { identity: artifact.identity, reference: formatOciReference(ref), index: artifact.index.digest, tags, blobs: artifact.blobs.length, uploaded, uploadedBytes };
}

/** Whether the store holds a whole registered machine. */
async function holds(store: Store, identity: string): Promise<boolean> {
  const spec = store.machineSpecDigest(identity);
  if (!spec || (await store.checkBlob(spec)) !== "ok") return false;
  const parsed = JSON.parse((await store.readBlob(spec)).toString("utf8")) as SealedSpec;
  for (const r of [parsed.kernel_ref, parsed.rootfs_ref]) if ((await store.checkBlob(hex(r.digest))) !== "ok") return false;
  return true;
}

export async function pullMachine(store: Store, ref: OciReference, opts: ClientOptions = {}): Promise<PullReport> {
  const reference = formatOciReference(ref);
  const cached = (identity: string, index?: string): PullReport => ({ identity, reference, index, fetched: 0, fetchedBytes: 0, cached: true });
  if (ref.digest?.startsWith("blake3:") && (await holds(store, ref.digest))) return cached(ref.digest);
  if (ref.digest?.startsWith("sha256:")) {
    const known = store.ociIndexIdentity(ref.digest);
    if (known && (await holds(store, known))) return cached(known, ref.digest);
  }
  const client = new RegistryClient(ref.registry, opts);
  const repo = ref.repository;
  const wanted = ref.digest?.startsWith("blake3:") ? identityTag(ref.digest) : (ref.digest ?? ref.tag!);
  const indexManifest = await client.manifest(repo, wanted);
  const known = store.ociIndexIdentity(indexManifest.digest);
  if (known && (!ref.digest?.startsWith("blake3:") || known === ref.digest) && (await holds(store, known))) return cached(known, indexManifest.digest);

  const index = readMachineIndex(indexManifest.bytes, reference);
  if (ref.digest?.startsWith("blake3:") && index.identity !== ref.digest) {
    throw new WmbError("INTEGRITY", `${reference} resolves to the machine ${index.identity}, not the identity asked for; nothing was admitted.`, { subject: reference });
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
  const getBlob = async (d: Descriptor) => {
    const bytes = await client.blob(repo, d.digest, d.size);
    fetched++;
    fetchedBytes += bytes.length;
    return bytes;
  };
  const specBytes = await getBlob(machine.config);
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
  const artifact = async (ref: ArtifactRef, layer: Descriptor, role: string): Promise<Uint8Array | undefined> => {
    const annotated = layer.annotations?.[ANNOTATION.blake3];
    if (layer.size !== ref.size || (annotated !== undefined && `blake3:${annotated}` !== ref.digest)) {
      throw new WmbError("INTEGRITY", `The ${role} layer of ${reference} (${layer.digest}) is not the ${role} its spec names (${ref.digest}); nothing was admitted.`, { subject: reference });
    }
    if ((await store.checkBlob(hex(ref.digest))) === "ok") return undefined;
    const bytes = await getBlob(layer);
    checkArtifact(ref, bytes, `the ${role} of ${reference}`);
    return bytes;
  };
  const kernel = await artifact(spec.kernel_ref, component.layer, "kernel");
  const rootfs = await artifact(spec.rootfs_ref, machine.layer, "rootfs");

  // Everything checked: admit, and remember where the machine came from.
  if (kernel) await store.putBytes(kernel);
  if (rootfs) await store.putBytes(rootfs);
  store.recordSha256(hex(spec.kernel_ref.digest), component.layer.digest);
  store.recordSha256(hex(spec.rootfs_ref.digest), machine.layer.digest);
  const where = `${ref.registry}/${repo}`;
  const located = withSources(spec, { kernel: [{ oci: `${where}@${component.layer.digest}` }], rootfs: [{ oci: `${where}@${machine.layer.digest}` }] });
  const stored = await store.putBytes(new TextEncoder().encode(formatSpec(located)));
  registerMachine(store, located, stored.digest);
  store.recordOciIndex(indexManifest.digest, spec.seal.digest);
  return { identity: spec.seal.digest, reference, index: indexManifest.digest, fetched, fetchedBytes, cached: false };
}

/** An artifact's bytes from one of its `oci` or `https` sources, in order, each verified against
 * the ref (and the registry's sha256). Undefined when it names none. */
export async function fetchFromSources(ref: ArtifactRef, what: string, opts: ClientOptions = {}): Promise<Uint8Array | undefined> {
  const errors: string[] = [];
  for (const s of ref.sources) {
    try {
      if (typeof s.oci === "string") {
        const m = /^([^/]+)\/(.+)@(sha256:[0-9a-f]{64})$/.exec(s.oci)!;
        const bytes = await new RegistryClient(m[1]!, opts).blob(m[2]!, m[3]!, ref.size);
        checkArtifact(ref, bytes, `${what} from ${s.oci}`);
        return bytes;
      }
      if (typeof s.https === "string") {
        const res = await fetch(s.https, { signal: AbortSignal.timeout(300_000) });
        if (!res.ok) throw new WmbError("REMOTE", `${s.https} answered HTTP ${res.status}.`);
        const bytes = new Uint8Array(await res.arrayBuffer());
        checkArtifact(ref, bytes, `${what} from ${s.https}`);
        return bytes;
      }
    } catch (e) {
      if (!(e instanceof WmbError)) throw e;
      errors.push(e.message);
    }
  }
  if (errors.length === 0) return undefined;
  const integrity = errors.some((e) => /hashes to|bytes but|bytes, not/.test(e));
  throw new WmbError(integrity ? "INTEGRITY" : "REMOTE", `${what} (${ref.digest}) could not be fetched from any of its sources: ${errors.join(" ")}`, { subject: what });
}
