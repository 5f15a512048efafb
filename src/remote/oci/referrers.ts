// OCI 1.1 referrers: a document about a manifest (a signature, a provenance) is a manifest of
// its own whose `subject` names that manifest and whose `artifactType` says what it is; here its
// one layer is a DSSE envelope. They are found through the referrers API
// (GET /v2/<name>/referrers/<digest>) where the registry has one, else through the referrers tag
// schema: the tag `sha256-<hex of the subject>` holds an image index listing them, which every
// writer reads, extends and writes back. Distribution 2.8 has no referrers API.
//
// The tag schema is last-writer-wins: two writers that read the index at the same moment each
// write back only their own addition. A writer therefore reads the tag again a little later and
// adds its referrer once more if it was lost; a registry writer can still delete referrers (deny
// service), which no client can prevent. Nothing here decides what a referrer is worth: its
// envelope is checked by src/trust/dsse.ts against trusted keys before anything reads it.
import { WmbError } from "../../errors.ts";
import { DSSE_MEDIA_TYPE, MAX_ENVELOPE_BYTES } from "../../trust/dsse.ts";
import { MEDIA_INDEX, MEDIA_MANIFEST, sha256Of, type RegistryClient } from "./client.ts";

/** The OCI empty descriptor's content (image-spec 1.1), the config of an artifact that has none. */
const EMPTY_CONFIG_BYTES = new TextEncoder().encode("{}");
export const EMPTY_CONFIG = { mediaType: "application/vnd.oci.empty.v1+json", digest: sha256Of(EMPTY_CONFIG_BYTES), size: 2 } as const;

/** Referrers read per subject at most: more is not what any wmb writes, and bounds the work a
 * registry can ask of a lookup. */
export const MAX_REFERRERS = 64;

export interface Referrer {
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** The manifest a referrer is about, as a descriptor. */
export interface SubjectDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface AttachOptions {
  /** Annotations of the referrer's manifest (and of its entry in the referrers index). */
  annotations?: Record<string, string>;
  /** How long a tag-schema writer waits before reading the tag again (ms; default 60-160). */
  settleMs?: () => number;
}

/** Clients whose registry answered the referrers API with 404. */
const withoutApi = new WeakSet<RegistryClient>();

/** The referrers tag of a subject: `sha256-<64 hex>` (distribution-spec 1.1, "Referrers Tag Schema"). */
export function referrersTag(subjectDigest: string): string {
  if (!/^sha256:[0-9a-f]{64}$/.test(subjectDigest)) throw new Error(`internal: ${subjectDigest} is not a sha256 digest`);
  return subjectDigest.replace(":", "-");
}

/**
 * Push `envelope` (DSSE bytes) as a referrer of `subject`: its blob, the empty config, a manifest
 * with `artifactType` and `subject`, then (unless the registry keeps referrers itself and said so
 * with OCI-Subject) its entry in the subject's referrers tag. Returns the referrer's digest.
 */
export async function attachEnvelope(
  client: RegistryClient,
  repository: string,
  subject: SubjectDescriptor,
  artifactType: string,
  envelope: Uint8Array,
  o: AttachOptions = {},
): Promise<string> {
  const layerDigest = sha256Of(envelope);
  await client.pushBlob(repository, EMPTY_CONFIG.digest, EMPTY_CONFIG.size, { bytes: EMPTY_CONFIG_BYTES });
  await client.pushBlob(repository, layerDigest, envelope.length, { bytes: envelope });
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_MANIFEST,
      artifactType,
      config: EMPTY_CONFIG,
      layers: [{ mediaType: DSSE_MEDIA_TYPE, digest: layerDigest, size: envelope.length }],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      ...(o.annotations && { annotations: o.annotations }),
    }),
  );
  const digest = sha256Of(manifest);
  const answer = await client.putManifestAnswer(repository, digest, manifest, MEDIA_MANIFEST);
  if (answer.ociSubject === subject.digest) return digest;
  const entry: Referrer & { mediaType: string } = { mediaType: MEDIA_MANIFEST, digest, size: manifest.length, artifactType, ...(o.annotations && { annotations: o.annotations }) };
  await addToReferrersTag(client, repository, subject.digest, entry, o.settleMs ?? (() => 60 + Math.random() * 100));
  return digest;
}

/** Read-modify-write of the referrers tag, then a re-read after `settle` ms: a concurrent writer
 * that read the index before our write puts back an index without our entry, and we add it again. */
async function addToReferrersTag(client: RegistryClient, repository: string, subjectDigest: string, entry: Referrer & { mediaType: string }, settle: () => number): Promise<void> {
  const tag = referrersTag(subjectDigest);
  for (let attempt = 0; attempt < 8; attempt++) {
    const current = await tagIndex(client, repository, tag);
    if (!current.some((m) => m.digest === entry.digest)) {
      const index = { schemaVersion: 2, mediaType: MEDIA_INDEX, manifests: [...current, entry] };
      await client.putManifest(repository, tag, new TextEncoder().encode(JSON.stringify(index)), MEDIA_INDEX);
    }
    await new Promise((r) => setTimeout(r, settle()));
    if ((await tagIndex(client, repository, tag)).some((m) => m.digest === entry.digest)) return;
  }
  throw new WmbError("REMOTE", `The referrers tag ${tag} in ${repository} on ${client.registry} kept losing the entry wmb added (other writers keep replacing it); push again later.`, { subject: tag });
}

/** The raw entries of a referrers tag's index (kept as they are when written back). */
async function tagIndex(client: RegistryClient, repository: string, tag: string): Promise<(Referrer & Record<string, unknown>)[]> {
  const m = await client.manifestIfThere(repository, tag);
  return m ? indexEntries(m.bytes, `the referrers tag ${repository}:${tag} on ${client.registry}`) : [];
}

function indexEntries(bytes: Uint8Array, what: string): (Referrer & Record<string, unknown>)[] {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw new WmbError("INTEGRITY", `${what} is not JSON.`, { subject: what });
  }
  const manifests = (doc as { manifests?: unknown } | null)?.manifests;
  if (!Array.isArray(manifests)) throw new WmbError("INTEGRITY", `${what} is not an image index (it has no "manifests" array).`, { subject: what });
  return manifests.filter(
    (m): m is Referrer & Record<string, unknown> => typeof m === "object" && m !== null && typeof (m as Referrer).digest === "string" && /^sha256:[0-9a-f]{64}$/.test((m as Referrer).digest) && Number.isSafeInteger((m as Referrer).size),
  );
}

/**
 * The referrers of `subjectDigest` with this `artifactType` (all when undefined): through the
 * referrers API when the registry has one, else the referrers tag. At most MAX_REFERRERS, each
 * digest once, in the order the registry lists them.
 */
export async function listReferrers(client: RegistryClient, repository: string, subjectDigest: string, artifactType?: string): Promise<Referrer[]> {
  // A registry that answered 404 once has no referrers API: not asked again by this client.
  const viaApi = withoutApi.has(client) ? undefined : await client.referrersIndex(repository, subjectDigest, artifactType);
  if (!viaApi) withoutApi.add(client);
  const entries = viaApi ? indexEntries(viaApi, `the referrers of ${repository}@${subjectDigest} on ${client.registry}`) : await tagIndex(client, repository, referrersTag(subjectDigest));
  const seen = new Set<string>();
  const out: Referrer[] = [];
  for (const e of entries) {
    if (artifactType !== undefined && e.artifactType !== artifactType) continue;
    if (seen.has(e.digest)) continue;
    seen.add(e.digest);
    out.push({ digest: e.digest, size: e.size, ...(typeof e.artifactType === "string" && { artifactType: e.artifactType }), ...(isStringMap(e.annotations) && { annotations: e.annotations }) });
    if (out.length === MAX_REFERRERS) break;
  }
  return out;
}

export interface ReferrerEnvelope {
  /** The referrer manifest's digest. */
  digest: string;
  artifactType: string;
  annotations?: Record<string, string>;
  /** The DSSE envelope's bytes, not yet parsed or checked. */
  envelope: Buffer;
}

/**
 * The DSSE envelopes attached to `subjectDigest` with this artifactType. A listed manifest that
 * is not about this subject, has another artifactType, or whose layer is not one envelope within
 * the envelope bound, is skipped (and named in `skipped`): an index entry says nothing a
 * registry writer could not forge. Reads are bounded: manifests and envelopes by their limits.
 */
export async function referrerEnvelopes(
  client: RegistryClient,
  repository: string,
  subjectDigest: string,
  artifactType: string,
): Promise<{ envelopes: ReferrerEnvelope[]; skipped: string[] }> {
  const envelopes: ReferrerEnvelope[] = [];
  const skipped: string[] = [];
  for (const r of await listReferrers(client, repository, subjectDigest, artifactType)) {
    const m = await client.manifestIfThere(repository, r.digest);
    if (!m) {
      skipped.push(`${r.digest} (listed, but not in the registry)`);
      continue;
    }
    let doc: { artifactType?: unknown; subject?: { digest?: unknown }; layers?: { mediaType?: unknown; digest?: unknown; size?: unknown }[]; annotations?: unknown };
    try {
      doc = JSON.parse(m.bytes.toString("utf8"));
    } catch {
      skipped.push(`${r.digest} (not JSON)`);
      continue;
    }
    const layer = Array.isArray(doc.layers) && doc.layers.length === 1 ? doc.layers[0] : undefined;
    if (doc.subject?.digest !== subjectDigest) skipped.push(`${r.digest} (about another manifest)`);
    else if (doc.artifactType !== artifactType) skipped.push(`${r.digest} (another artifactType)`);
    else if (!layer || layer.mediaType !== DSSE_MEDIA_TYPE || typeof layer.digest !== "string" || typeof layer.size !== "number") skipped.push(`${r.digest} (not one DSSE envelope)`);
    else if (layer.size > MAX_ENVELOPE_BYTES) skipped.push(`${r.digest} (an envelope of ${layer.size} bytes)`);
    else {
      const envelope = await client.documentBlob(repository, layer.digest, layer.size);
      envelopes.push({ digest: r.digest, artifactType, envelope, ...(isStringMap(doc.annotations) && { annotations: doc.annotations }) });
    }
  }
  return { envelopes, skipped };
}

function isStringMap(v: unknown): v is Record<string, string> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === "string");
}
