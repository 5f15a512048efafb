// A remote action cache in an OCI registry (Bazel's remote cache, BuildKit's registry cache):
// one artifact per action key, tagged `action-<key hex>`, whose config is the result (output
// paths -> BLAKE3, sha256, size, executable bit; the rule; the key inputs for `why`; how it
// was made) and whose layers are the output blobs. Lookups are a HEAD of the tag, then the
// manifest and config by digest; a hit is used without downloading its outputs, which are
// fetched (and checked against their BLAKE3) only when a local action or wmb-out/ needs them.
// Nothing is trusted beyond digests. A registry that fails (down, timeout, 5xx) is dropped for
// the rest of the build with one warning; the build's result is what it would be without it.
import { readFile, stat } from "node:fs/promises";
import { hashBytes, type ActionKey, type Digest } from "../digest.ts";
import { WmbError } from "../errors.ts";
import type { OutputMap, Store } from "../../store/store.ts";
import type { SandboxUse } from "../sandbox.ts";
import { MEDIA_MANIFEST, RegistryClient, sha256Of, type ClientOptions } from "./oci/client.ts";
import { parseOciReference } from "./oci/reference.ts";
import { ANNOTATION } from "./machine-artifact.ts";

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

export interface CacheStats {
  lookups: number;
  hits: number;
  downloadedBlobs: number;
  downloadedBytes: number;
  uploaded: number;
  /** Results not uploaded because a host command made them unsandboxed. */
  unsandboxed: number;
}

export interface RemoteCacheOptions extends ClientOptions {
  /** oci://<registry>/<repository> */
  url: string;
  upload?: boolean;
  warn: (message: string) => void;
}

export class RemoteCache {
  readonly source: string;
  readonly stats: CacheStats = { lookups: 0, hits: 0, downloadedBlobs: 0, downloadedBytes: 0, uploaded: 0, unsandboxed: 0 };
  private readonly client: RegistryClient;
  private readonly repository: string;
  private failed?: string;
  /** Where each output blob of a hit can be fetched. */
  private readonly located = new Map<Digest, RemoteOutput>();
  private readonly uploads: Promise<void>[] = [];
  private readonly uploadErrors: string[] = [];

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

  /** The result the remote holds for `key`, checked to fit the target; undefined on a miss. */
  async lookup(key: ActionKey, label: string, outputs: readonly string[]): Promise<RemoteResult | undefined> {
    const remembered = this.store.remoteResult(key, this.source);
    if (remembered) return this.accept(JSON.parse(remembered) as RemoteResult);
    if (this.failed) return undefined;
    this.stats.lookups++;
    let result: RemoteResult | undefined;
    try {
      result = await this.fetchResult(key);
      if (!result) return undefined;
    } catch (e) {
      if (!(e instanceof WmbError)) throw e;
      if (e.code === "INTEGRITY") {
        this.opts.warn(`the remote result of ${label} is not usable (${e.message}); running it locally.`);
        return undefined;
      }
      this.fail(e);
      return undefined;
    }
    const declared = [...outputs].sort().join("\0");
    if (Object.keys(result.outputs).sort().join("\0") !== declared) {
      this.opts.warn(`the remote result of ${label} does not list the outputs the target declares; running it locally.`);
      return undefined;
    }
    this.store.recordRemoteResult({ key, source: this.source, label, rule: result.rule, keyInputs: result.key_inputs, result: JSON.stringify(result) });
    return this.accept(result);
  }

  /** What the remote holds for `key`, read afresh (no memo, no fallback): for lookups and for
   * `verify --against`. Throws INTEGRITY for an entry that is not a well-formed result. */
  async fetchResult(key: ActionKey): Promise<RemoteResult | undefined> {
    const digest = await this.client.manifestDigest(this.repository, actionTag(key));
    if (!digest) return undefined;
    const manifest = await this.client.manifest(this.repository, digest);
    return this.readResult(manifest.bytes, key);
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
    const configBytes = await this.client.blob(this.repository, config.digest, config.size);
    let result: RemoteResult;
    try {
      result = JSON.parse(configBytes.toString("utf8")) as RemoteResult;
    } catch {
      throw bad("names a config that is not JSON");
    }
    if (result.action_key !== key || typeof result.outputs !== "object" || result.outputs === null) throw bad(`names a result for another key`);
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

  /** Bring a hit's output blob into the store, checked against its BLAKE3. Throws INTEGRITY or REMOTE. */
  async fetch(digest: Digest): Promise<void> {
    if ((await this.store.checkBlob(digest)) === "ok") return;
    const where = this.located.get(digest);
    if (!where) throw new WmbError("REMOTE", `no remote result names the blob ${digest}`);
    const bytes = await this.client.blob(this.repository, where.sha256, where.size);
    const actual = hashBytes(bytes);
    if (actual !== digest) throw new WmbError("INTEGRITY", `the blob ${where.sha256} from ${this.url} hashes to blake3:${actual}, not the blake3:${digest} its result names`);
    await this.store.putBytes(bytes);
    this.store.recordSha256(digest, where.sha256);
    this.stats.downloadedBlobs++;
    this.stats.downloadedBytes += bytes.length;
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
    // Never overwrite: the first result published for a key stays.
    if (await this.client.manifestDigest(this.repository, tag)) return;
    const outputs: Record<string, RemoteOutput> = {};
    const layers = new Map<string, { mediaType: string; digest: string; size: number; annotations: Record<string, string> }>();
    for (const [path, o] of Object.entries(r.outputs)) {
      const file = this.store.blobPath(o.digest);
      const size = (await stat(file)).size;
      let sha = this.store.sha256Of(o.digest);
      if (!sha) {
        sha = sha256Of(await readFile(file));
        this.store.recordSha256(o.digest, sha);
      }
      outputs[path] = { blake3: o.digest, sha256: sha, size, executable: o.executable };
      if (!layers.has(sha)) {
        await this.client.pushBlob(this.repository, sha, size, { file });
        layers.set(sha, { mediaType: OUTPUT_MEDIA_TYPE, digest: sha, size, annotations: { [ANNOTATION.blake3]: o.digest } });
      }
    }
    await publishResult(this.client, this.repository, { action_key: r.key, label: r.label, rule: r.rule, key_inputs: r.keyInputs, sandbox: r.sandbox, outputs }, [...layers.values()]);
    this.stats.uploaded++;
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
  }
}

/** Write a result's config and manifest and tag it (its output blobs already pushed). */
export async function publishResult(client: RegistryClient, repository: string, result: RemoteResult, layers: { mediaType: string; digest: string; size: number; annotations: Record<string, string> }[]): Promise<void> {
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
  await client.putManifest(repository, actionTag(result.action_key), manifest, MEDIA_MANIFEST);
}
