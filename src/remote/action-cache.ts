// A remote action cache in an OCI registry (Bazel's remote cache, BuildKit's registry cache):
// one artifact per action key, tagged `action-<key hex>`, whose config is the result (output
// paths -> BLAKE3, sha256, size, executable bit; the rule; the key inputs for `why`; how it
// was made) and whose layers are the output blobs. Lookups are a HEAD of the tag, then the
// manifest and config by digest; a hit is used without downloading its outputs, which are
// fetched (and checked against their BLAKE3) only when a local action or wmb-out/ needs them.
// Nothing is trusted beyond digests, and a result is used only as an honest client uploads it:
// made in a sandbox, and for a target that seals a machine, a spec of that machine (else a miss
// with one warning). A registry that fails (down, timeout, 5xx) is dropped for the rest of the
// build with one warning; the build's result is what it would be without it.
//
// Signatures (result-signatures.ts): with a signing key, each uploaded result gets a DSSE
// envelope over its fingerprint as an OCI referrer of its manifest. With trusted keys, a result
// is a hit only when one of them signed exactly it; every other one is a miss, counted in one
// line at the build's end. A remembered hit is checked again against today's keys, so a key
// removed from the trusted list stops serving what it signed.
import { rm, stat } from "node:fs/promises";
import type { ActionKey, Digest } from "../digest.ts";
import { WmbError } from "../errors.ts";
import type { OutputMap, Store } from "../../store/store.ts";
import type { SandboxUse } from "../sandbox.ts";
import { MAX_SPEC_BYTES } from "../formats/machine-spec.ts";
import { MEDIA_MANIFEST, RegistryClient, sha256Of, sha256OfFile, type ClientOptions } from "./oci/client.ts";
import { storeTempDir } from "./oci/download.ts";
import { parseOciReference } from "./oci/reference.ts";
import { ANNOTATION } from "./machine-artifact.ts";
import { attachEnvelope, referrerEnvelopes } from "./oci/referrers.ts";
import { IgnoredResults, judgeResult, RESULT_SIGNATURE_ARTIFACT_TYPE, signResult } from "./result-signatures.ts";
import type { Trust } from "../trust/trust-config.ts";
import { decodeBase64, encodeBase64 } from "../trust/base64.ts";

export const RESULT_ARTIFACT_TYPE = "application/vnd.wmb.action.result.v1";
export const RESULT_MEDIA_TYPE = "application/vnd.wmb.action.result.v1+json";
const OUTPUT_MEDIA_TYPE = "application/octet-stream";
/** Results of these are shared; `none` (a host command run unsandboxed) and unknown never are. */
const UPLOADABLE: readonly (SandboxUse | undefined)[] = ["bwrap", "in-process"];

/** `action-` + the key's 64 hex digits: 71 characters, within the tag grammar's 128. */
export function actionTag(key: ActionKey): string {
  return `action-${key}`;
}

export interface RemoteOutput {
  blake3: Digest;
  sha256: string;
  size: number;
  executable: boolean;
}

/** The config of a result artifact. */
export interface RemoteResult {
  action_key: ActionKey;
  label: string;
  rule: string;
  key_inputs: string;
  sandbox?: SandboxUse;
  outputs: Record<string, RemoteOutput>;
}

/** A hit as the store remembers it (remote_results.result): the result, and the envelopes that
 * vouched for it when it was found (base64 of their bytes), checked again on every use. */
interface RememberedResult extends RemoteResult {
  signatures?: string[];
}

export interface CacheStats {
  lookups: number;
  hits: number;
  downloadedBlobs: number;
  downloadedBytes: number;
  uploaded: number;
  /** Results not uploaded because a host command made them unsandboxed. */
  unsandboxed: number;
  /** Results uploaded (or found there, the same) and signed with the signing key. */
  signed: number;
  /** Remote results ignored for want of a trusted signature. */
  ignored: number;
}

export interface RemoteCacheOptions extends ClientOptions {
  /** oci://<registry>/<repository> */
  url: string;
  upload?: boolean;
  warn: (message: string) => void;
  /** The keys: with `trust.trustedFrom` set, only results a trusted key signed are hits; with
   * `trust.signer`, uploads are signed. */
  trust?: Trust;
}

export class RemoteCache {
  readonly source: string;
  readonly stats: CacheStats = { lookups: 0, hits: 0, downloadedBlobs: 0, downloadedBytes: 0, uploaded: 0, unsandboxed: 0, signed: 0, ignored: 0 };
  private readonly client: RegistryClient;
  private readonly repository: string;
  private failed?: string;
  /** Where each output blob of a hit can be fetched. */
  private readonly located = new Map<Digest, RemoteOutput>();
  private readonly uploads: Promise<void>[] = [];
  private readonly uploadErrors: string[] = [];
  private readonly ignored = new IgnoredResults();
  /** Results whose tag held another result than this build's, so they were not signed. */
  private readonly notSigned: string[] = [];

  constructor(
    private readonly store: Store,
    private readonly opts: RemoteCacheOptions,
  ) {
    const ref = parseOciReference(opts.url, { repository: true });
    this.repository = ref.repository;
    this.source = `${ref.registry}/${ref.repository}`;
    this.client = new RegistryClient(ref.registry, opts);
  }

  get url(): string {
    return `oci://${this.source}`;
  }

  get uploading(): boolean {
    return this.opts.upload === true;
  }

  /** Whether only results signed by a trusted key are taken (trusted keys are configured). */
  get checksSignatures(): boolean {
    return this.opts.trust?.trustedFrom !== undefined;
  }

  /** The result the remote holds for `key`, checked to fit the target; undefined on a miss.
   * `machine`: the target seals a machine, whose spec must be `output` and name `name`. */
  async lookup(key: ActionKey, label: string, outputs: readonly string[], machine?: { output: string; name: string }): Promise<RemoteResult | undefined> {
    const remembered = this.store.remoteResult(key, this.source);
    let { result, signatures } = remembered ? splitRemembered(remembered) : ({} as { result?: RemoteResult; signatures?: Uint8Array[] });
    // A remembered hit is taken again only while a key trusted today signed it; else ask afresh.
    if (result && this.checksSignatures && !judgeResult(signatures ?? [], this.opts.trust!.trusted, key, result).trusted) result = undefined;
    if (!result && this.failed) return undefined;
    let refused: string | undefined;
    let fresh = false;
    try {
      if (!result) {
        this.stats.lookups++;
        const entry = await this.fetchEntry(key);
        if (!entry) return this.forgotten(remembered, key);
        result = entry.result;
        if (this.checksSignatures) {
          // Verified before any blob of the result is fetched or any of its outputs read.
          signatures = (await referrerEnvelopes(this.client, this.repository, entry.manifest.digest, RESULT_SIGNATURE_ARTIFACT_TYPE)).envelopes.map((e) => e.envelope);
          const verdict = judgeResult(signatures, this.opts.trust!.trusted, key, result);
          if (!verdict.trusted) {
            this.ignored.add(label, verdict);
            this.stats.ignored++;
            return this.forgotten(remembered, key);
          }
        }
        fresh = true;
      }
      refused = await this.refusal(result, outputs, machine);
    } catch (e) {
      if (!(e instanceof WmbError)) throw e;
      if (e.code !== "INTEGRITY") {
        this.fail(e);
        return undefined;
      }
      refused = `is not usable (${e.message})`;
    }
    if (refused !== undefined || !result) {
      if (refused !== undefined) this.opts.warn(`the remote result of ${label} ${refused}; running it locally.`);
      return this.forgotten(remembered, key);
    }
    if (fresh) {
      const stored: RememberedResult = { ...result, ...(signatures?.length && { signatures: signatures.map((b) => encodeBase64(b)) }) };
      this.store.recordRemoteResult({ key, source: this.source, label, rule: result.rule, keyInputs: result.key_inputs, result: JSON.stringify(stored) });
    }
    return this.accept(result);
  }

  private forgotten(remembered: string | undefined, key: ActionKey): undefined {
    if (remembered) this.forget(key);
    return undefined;
  }

  /** Why a well-formed result is not used for the target, if it is not. Only what an honest
   * client uploads is taken (a result made without a sandbox may depend on its host), and a
   * sealed spec must be of the target's machine: a result's outputs are checked against their
   * digests, which say nothing about which machine they are. */
  private async refusal(result: RemoteResult, outputs: readonly string[], machine?: { output: string; name: string }): Promise<string | undefined> {
    if (Object.keys(result.outputs).sort().join("\0") !== [...outputs].sort().join("\0")) return "does not list the outputs the target declares";
    if (!UPLOADABLE.includes(result.sandbox)) {
      const said = JSON.stringify(result.sandbox ?? null).slice(0, 40);
      return result.sandbox === "none" ? `was made without a sandbox (sandbox: ${said}), so it may depend on the host that made it` : `names no sandbox results are shared from (sandbox: ${said})`;
    }
    if (!machine) return undefined;
    const spec = result.outputs[machine.output]!;
    if (spec.size > MAX_SPEC_BYTES) return `names a sealed spec of ${spec.size} bytes, more than the ${MAX_SPEC_BYTES} a spec may have`;
    this.located.set(spec.blake3, spec);
    await this.fetch(spec.blake3);
    let name: unknown;
    try {
      name = (JSON.parse((await this.store.readBlob(spec.blake3)).toString("utf8")) as { name?: unknown }).name;
    } catch {
      return `names a sealed spec that is not JSON`;
    }
    if (name !== machine.name) return `is a sealed spec of the machine ${JSON.stringify(name ?? null).slice(0, 80)}, not of ${JSON.stringify(machine.name)}, the target's`;
    return undefined;
  }

  /** What the remote holds for `key`, read afresh (no memo, no fallback): for lookups and for
   * `verify --against`. Throws INTEGRITY for an entry that is not a well-formed result. */
  async fetchResult(key: ActionKey): Promise<RemoteResult | undefined> {
    return (await this.fetchEntry(key))?.result;
  }

  /** The result of `key` and its manifest (the subject its signatures refer to). */
  private async fetchEntry(key: ActionKey): Promise<{ result: RemoteResult; manifest: { digest: string; size: number } } | undefined> {
    const digest = await this.client.manifestDigest(this.repository, actionTag(key));
    if (!digest) return undefined;
    const manifest = await this.client.manifest(this.repository, digest);
    return { result: await this.readResult(manifest.bytes, key), manifest: { digest: manifest.digest, size: manifest.bytes.length } };
  }

  private accept(result: RemoteResult): RemoteResult {
    this.stats.hits++;
    for (const o of Object.values(result.outputs)) this.located.set(o.blake3, o);
    return result;
  }

  /** The remote is not used again in this build; said once. */
  private fail(e: WmbError): void {
    if (this.failed) return;
    this.failed = e.message;
    this.opts.warn(`the remote cache ${this.url} cannot be used (${e.message.replace(/\.$/, "")}); building locally.`);
  }

  private async readResult(bytes: Uint8Array, key: ActionKey): Promise<RemoteResult> {
    const bad = (why: string) => new WmbError("INTEGRITY", `its manifest ${why}`);
    let manifest: { mediaType?: string; config?: { mediaType?: string; digest?: string; size?: number }; layers?: { digest?: string; size?: number; annotations?: Record<string, string> }[] };
    try {
      manifest = JSON.parse(Buffer.from(bytes).toString("utf8"));
    } catch {
      throw bad("is not JSON");
    }
    const config = manifest.config;
    if (manifest.mediaType !== MEDIA_MANIFEST || config?.mediaType !== RESULT_MEDIA_TYPE || typeof config.digest !== "string" || typeof config.size !== "number") {
      throw bad("is not a wmb action result");
    }
    const configBytes = await this.client.documentBlob(this.repository, config.digest, config.size);
    let result: RemoteResult;
    try {
      result = JSON.parse(configBytes.toString("utf8")) as RemoteResult;
    } catch {
      throw bad("names a config that is not JSON");
    }
    if (result.action_key !== key || typeof result.outputs !== "object" || result.outputs === null) throw bad(`names a result for another key`);
    // What the store keeps beside a remembered result is never taken from the registry.
    delete (result as RememberedResult).signatures;
    // Every output must be one of the manifest's layers, with the same BLAKE3 and size.
    const layers = new Map((manifest.layers ?? []).map((l) => [l.digest, l]));
    for (const [path, o] of Object.entries(result.outputs)) {
      const layer = layers.get(o.sha256);
      if (!layer || layer.size !== o.size || layer.annotations?.[ANNOTATION.blake3] !== o.blake3 || !/^[0-9a-f]{64}$/.test(o.blake3)) {
        throw bad(`does not carry the output ${path} its result names`);
      }
    }
    return result;
  }

  /** Bring a hit's output blob into the store, streamed to its temp directory and checked
   * against its sha256 and BLAKE3 before it is admitted. Throws INTEGRITY or REMOTE. */
  async fetch(digest: Digest): Promise<void> {
    if ((await this.store.checkBlob(digest)) === "ok") return;
    const where = this.located.get(digest);
    if (!where) throw new WmbError("REMOTE", `no remote result names the blob ${digest}`);
    const d = await this.client.downloadBlob(this.repository, where.sha256, where.size, storeTempDir(this.store));
    try {
      if (d.blake3 !== digest) throw new WmbError("INTEGRITY", `the blob ${where.sha256} from ${this.url} hashes to blake3:${d.blake3}, not the blake3:${digest} its result names`);
      await this.store.moveFile(d.path);
    } finally {
      await rm(d.path, { force: true });
    }
    this.store.recordSha256(digest, d.sha256);
    this.stats.downloadedBlobs++;
    this.stats.downloadedBytes += d.size;
  }

  /** Forget a remembered hit whose blobs could not be fetched, so the next build asks again. */
  forget(key: ActionKey): void {
    this.store.forgetRemoteResult(key, this.source);
  }

  // ---- upload ------------------------------------------------------------------------------

  /** Queue the upload of a local result (never one made unsandboxed). Errors are collected. */
  upload(r: { key: ActionKey; label: string; rule: string; keyInputs: string; sandbox?: SandboxUse; outputs: OutputMap }): void {
    if (!this.opts.upload || this.failed) return;
    if (!UPLOADABLE.includes(r.sandbox)) {
      this.stats.unsandboxed++;
      return;
    }
    this.uploads.push(
      this.publish(r).catch((e: unknown) => {
        if (!(e instanceof WmbError)) throw e;
        this.uploadErrors.push(`${r.label}: ${e.message}`);
      }),
    );
  }

  private async publish(r: { key: ActionKey; label: string; rule: string; keyInputs: string; sandbox?: SandboxUse; outputs: OutputMap }): Promise<void> {
    const tag = actionTag(r.key);
    // Never overwrite: the first result published for a key stays. A signing build signs it
    // when it is the result this build made (the same fingerprint), and says so when not.
    if (await this.client.manifestDigest(this.repository, tag)) {
      if (this.opts.trust?.signer) await this.signExisting(r);
      return;
    }
    const outputs: Record<string, RemoteOutput> = {};
    const layers = new Map<string, { mediaType: string; digest: string; size: number; annotations: Record<string, string> }>();
    for (const [path, o] of Object.entries(r.outputs)) {
      const file = this.store.blobPath(o.digest);
      const size = (await stat(file)).size;
      let sha = this.store.sha256Of(o.digest);
      if (!sha) {
        sha = await sha256OfFile(file);
        this.store.recordSha256(o.digest, sha);
      }
      outputs[path] = { blake3: o.digest, sha256: sha, size, executable: o.executable };
      if (!layers.has(sha)) {
        await this.client.pushBlob(this.repository, sha, size, { file });
        layers.set(sha, { mediaType: OUTPUT_MEDIA_TYPE, digest: sha, size, annotations: { [ANNOTATION.blake3]: o.digest } });
      }
    }
    const result: RemoteResult = { action_key: r.key, label: r.label, rule: r.rule, key_inputs: r.keyInputs, sandbox: r.sandbox, outputs };
    const manifest = await publishResult(this.client, this.repository, result, [...layers.values()]);
    this.stats.uploaded++;
    if (this.opts.trust?.signer) await this.sign(r.key, result, manifest);
  }

  private async sign(key: ActionKey, result: RemoteResult, manifest: { digest: string; size: number }): Promise<void> {
    const signer = this.opts.trust!.signer!;
    await attachEnvelope(this.client, this.repository, { mediaType: MEDIA_MANIFEST, ...manifest }, RESULT_SIGNATURE_ARTIFACT_TYPE, signResult(signer, key, result), {
      annotations: { "dev.wmb.signer": signer.name },
    });
    this.stats.signed++;
  }

  /** A result already in the registry: signed when it is this build's (and not yet by this key). */
  private async signExisting(r: { key: ActionKey; label: string; outputs: OutputMap }): Promise<void> {
    const entry = await this.fetchEntry(r.key);
    if (!entry) return;
    const same = Object.keys(entry.result.outputs).length === Object.keys(r.outputs).length && Object.entries(r.outputs).every(([p, o]) => entry.result.outputs[p]?.blake3 === o.digest && entry.result.outputs[p]?.executable === o.executable);
    if (!same) {
      this.notSigned.push(r.label);
      return;
    }
    const signer = this.opts.trust!.signer!;
    const { envelopes } = await referrerEnvelopes(this.client, this.repository, entry.manifest.digest, RESULT_SIGNATURE_ARTIFACT_TYPE);
    if (judgeResult(envelopes.map((e) => e.envelope), [signer.publicKey], r.key, entry.result).trusted) return;
    await this.sign(r.key, entry.result, entry.manifest);
  }

  /** Wait for queued uploads; one warning for whatever failed. */
  async finish(): Promise<void> {
    await Promise.all(this.uploads);
    if (this.uploadErrors.length) {
      this.opts.warn(`${this.uploadErrors.length} result${this.uploadErrors.length === 1 ? "" : "s"} could not be uploaded to ${this.url} (first: ${this.uploadErrors[0]})`);
    }
    if (this.stats.unsandboxed) {
      this.opts.warn(`${this.stats.unsandboxed} result${this.stats.unsandboxed === 1 ? " was" : "s were"} not uploaded: made by host commands without the bwrap sandbox, they may depend on this host.`);
    }
    if (this.notSigned.length) {
      const n = this.notSigned.length;
      this.opts.warn(`${n} result${n === 1 ? " was" : "s were"} not signed: ${this.url} already holds another result for ${n === 1 ? "its key" : "their keys"} (first: ${this.notSigned[0]}), which wmb never replaces; check ${n === 1 ? "it" : "them"} with \`wmb verify --against\`.`);
    }
    const ignored = this.ignored.line(this.opts.trust?.trustedFrom ?? "");
    if (ignored) this.opts.warn(ignored);
    if (!this.checksSignatures && this.stats.hits > 0) {
      this.opts.warn(`the ${this.stats.hits} result${this.stats.hits === 1 ? "" : "s"} taken from ${this.url} ${this.stats.hits === 1 ? "is" : "are"} unauthenticated: no trusted keys are configured, so anyone who can push there decides them (set trusted_keys in wmb.json or WMB_TRUSTED_KEYS; see docs/TRUST.md).`);
    }
  }
}

/** Write a result's config and manifest and tag it (its output blobs already pushed). */
export async function publishResult(
  client: RegistryClient,
  repository: string,
  result: RemoteResult,
  layers: { mediaType: string; digest: string; size: number; annotations: Record<string, string> }[],
): Promise<{ digest: string; size: number }> {
  const config = new TextEncoder().encode(JSON.stringify(result));
  const configDigest = sha256Of(config);
  await client.pushBlob(repository, configDigest, config.length, { bytes: config });
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_MANIFEST,
      artifactType: RESULT_ARTIFACT_TYPE,
      config: { mediaType: RESULT_MEDIA_TYPE, digest: configDigest, size: config.length },
      layers,
      annotations: { "dev.wmb.action_key": result.action_key, "org.opencontainers.image.title": result.label },
    }),
  );
  return { digest: await client.putManifest(repository, actionTag(result.action_key), manifest, MEDIA_MANIFEST), size: manifest.length };
}

/** A remote_results row: the result and the signatures remembered with it. */
function splitRemembered(text: string): { result: RemoteResult; signatures: Uint8Array[] } {
  const { signatures, ...result } = JSON.parse(text) as RememberedResult;
  return { result, signatures: (signatures ?? []).map((s) => decodeBase64(s, "standard")).filter((b): b is Buffer => b !== undefined) };
}
