// A thin OCI distribution client on fetch: manifests and blobs by sha256, uploads, and the auth
// every registry uses (anonymous, Basic, the Bearer token flow from WWW-Authenticate). No
// client on npm is maintained well enough to depend on, and the protocol wmb needs is small.
// Nothing a registry sends is trusted: every manifest and blob is checked against its sha256
// (and its declared size) before it is returned, and no size it claims decides how much memory
// wmb uses: documents are read with a bound (bounded-body.ts), blobs streamed to a file
// (download.ts). Secrets never reach a message. The layers: reference.ts parses, redirects.ts
// follows, auth.ts authenticates, this file retries, decodes registry errors and makes the calls.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import { Readable } from "node:stream";
import { WmbError } from "../../errors.ts";
import { basicAuth, bearerToken, parseChallenge, type Challenge } from "./auth.ts";
import { discardBody, MAX_DOCUMENT_BYTES, readBounded, readErrorBody } from "./bounded-body.ts";
import { credentialsFor, type Credentials } from "./credentials.ts";
import { download, type Download } from "./download.ts";
import { fetchFollowing, registryHttpPolicy, unreachable, type HttpPolicy } from "./redirects.ts";
import { isLoopback } from "./reference.ts";

export const MEDIA_INDEX = "application/vnd.oci.image.index.v1+json";
export const MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
/** Distribution 2.8 answers 404 for an OCI manifest unless the request accepts its type. */
const MANIFEST_ACCEPT = [MEDIA_INDEX, MEDIA_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json"].join(", ");
const SHA256 = /^sha256:[0-9a-f]{64}$/;

export interface ClientOptions {
  /** Allow http:// to a registry that is not this host (oras' --plain-http). */
  plainHttp?: boolean;
  /** Credentials; default: the docker config (credentialsFor). */
  credentials?: () => Promise<Credentials | undefined>;
  /** Counted requests, for reports and tests. */
  onRequest?: (method: string, path: string) => void;
  /** Timeout of one request without a blob body (a blob's is ten times longer). */
  timeoutMs?: number;
  /** Where a warning goes (a token service on another host); default: stderr. */
  warn?: (message: string) => void;
}

export interface Manifest {
  bytes: Buffer;
  digest: string;
  mediaType: string;
}

export function sha256Of(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** A file's sha256, streamed (an output may be larger than what wmb holds in memory). */
export async function sha256OfFile(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return `sha256:${h.digest("hex")}`;
}

export class RegistryClient {
  readonly base: string;
  private readonly policy: HttpPolicy;
  private credentials?: Promise<Credentials | undefined>;
  /** The Authorization value per scope (Bearer), or for every scope (Basic). */
  private readonly tokens = new Map<string, string>();
  private basic?: string;

  constructor(
    readonly registry: string,
    private readonly opts: ClientOptions = {},
  ) {
    this.base = `${isLoopback(registry) || opts.plainHttp ? "http" : "https"}://${registry}`;
    this.policy = registryHttpPolicy(registry, opts.plainHttp);
  }

  // ---- manifests -------------------------------------------------------------------------

  /** A manifest by tag or digest, checked against its digest (given, or the registry's header). */
  async manifest(repository: string, reference: string): Promise<Manifest> {
    return (await this.manifestIfThere(repository, reference, false))!;
  }

  /** As manifest, but undefined for a tag or digest the registry does not have (404). */
  async manifestIfThere(repository: string, reference: string, missingIsUndefined = true): Promise<Manifest | undefined> {
    const path = `/v2/${repository}/manifests/${reference}`;
    const res = await this.request("GET", path, pullScope(repository), { headers: { accept: MANIFEST_ACCEPT } });
    if (res.status === 404 && missingIsUndefined) {
      await discardBody(res);
      return undefined;
    }
    if (!res.ok) throw await this.failure(res, `the manifest ${repository}:${reference}`);
    const bytes = await readBounded(res, `the manifest ${repository}:${reference} on ${this.registry}`);
    const digest = sha256Of(bytes);
    const expected = SHA256.test(reference) ? reference : res.headers.get("docker-content-digest");
    if (expected && expected !== digest) {
      throw new WmbError("INTEGRITY", `The registry ${this.registry} sent a manifest for ${repository}@${expected} whose bytes hash to ${digest}; nothing was admitted.`, { subject: reference });
    }
    const mediaType = (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
    return { bytes, digest, mediaType };
  }

  /** The digest a tag or digest resolves to, by HEAD (registries rate-limit manifest GETs, not
   * HEADs); undefined when there is none. */
  async manifestDigest(repository: string, reference: string): Promise<string | undefined> {
    const res = await this.request("HEAD", `/v2/${repository}/manifests/${reference}`, pullScope(repository), { headers: { accept: MANIFEST_ACCEPT } });
    if (res.status === 404) return undefined;
    if (!res.ok) throw await this.failure(res, `the manifest ${repository}:${reference}`);
    const digest = res.headers.get("docker-content-digest") ?? undefined;
    if (digest !== undefined && !SHA256.test(digest)) throw new WmbError("REMOTE", `The registry ${this.registry} named the manifest ${repository}:${reference} by "${digest}", not a sha256 digest.`, { subject: this.registry });
    return digest ?? (SHA256.test(reference) ? reference : undefined);
  }

  async putManifest(repository: string, reference: string, bytes: Uint8Array, mediaType: string): Promise<string> {
    return (await this.putManifestAnswer(repository, reference, bytes, mediaType)).digest;
  }

  /** As putManifest, with the `OCI-Subject` the registry answers when it keeps referrers itself
   * (the OCI 1.1 referrers API): then no referrers tag needs writing. */
  async putManifestAnswer(repository: string, reference: string, bytes: Uint8Array, mediaType: string): Promise<{ digest: string; ociSubject?: string }> {
    const res = await this.request("PUT", `/v2/${repository}/manifests/${reference}`, pushScope(repository), { headers: { "content-type": mediaType }, body: bytes });
    if (res.status !== 201 && res.status !== 200) throw await this.failure(res, `pushing the manifest ${repository}:${reference}`);
    await discardBody(res);
    const ociSubject = res.headers.get("oci-subject") ?? undefined;
    return { digest: sha256Of(bytes), ...(ociSubject && { ociSubject }) };
  }

  /** The referrers of a manifest through the OCI 1.1 referrers API, as the image index's bytes
   * (read with the document bound); undefined when the registry has no such API (404, as
   * distribution 2.8 answers). */
  async referrersIndex(repository: string, digest: string, artifactType?: string): Promise<Buffer | undefined> {
    const query = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : "";
    const res = await this.request("GET", `/v2/${repository}/referrers/${digest}${query}`, pullScope(repository), { headers: { accept: MEDIA_INDEX } });
    if (res.status === 404) {
      await discardBody(res);
      return undefined;
    }
    if (!res.ok) throw await this.failure(res, `the referrers of ${repository}@${digest}`);
    return readBounded(res, `the referrers of ${repository}@${digest} on ${this.registry}`);
  }

  // ---- blobs -----------------------------------------------------------------------------

  async hasBlob(repository: string, sha256: string): Promise<boolean> {
    const res = await this.request("HEAD", `/v2/${repository}/blobs/${sha256}`, pullScope(repository));
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.failure(res, `the blob ${repository}@${sha256}`);
  }

  /** A small blob (a config, a spec) in memory: refused before it is requested when its
   * descriptor claims more than a document may be, then unless it is `size` bytes of `sha256`. */
  async documentBlob(repository: string, sha256: string, size: number): Promise<Buffer> {
    const what = this.blobName(repository, sha256);
    if (!Number.isSafeInteger(size) || size < 0 || size > MAX_DOCUMENT_BYTES) {
      throw new WmbError("INTEGRITY", `${what} is said to be ${size} bytes, more than the ${MAX_DOCUMENT_BYTES} a document may be; it was not fetched, and nothing was admitted.`, { subject: sha256 });
    }
    const res = await this.blobResponse(repository, sha256);
    const bytes = await readBounded(res, what, { limit: size });
    if (bytes.length !== size) throw new WmbError("INTEGRITY", `${what} is ${bytes.length} bytes, not the ${size} its manifest says; nothing was admitted.`, { subject: sha256 });
    this.checkSha256(what, sha256, sha256Of(bytes));
    return bytes;
  }

  /** A blob streamed to a new file in `dir` (the caller admits or removes it), hashed on the way
   * (sha256 and BLAKE3), refused unless it is `size` bytes of `sha256`; memory stays flat. */
  async downloadBlob(repository: string, sha256: string, size: number, dir: string): Promise<Download> {
    const what = this.blobName(repository, sha256);
    if (!Number.isSafeInteger(size) || size < 0) throw new WmbError("INTEGRITY", `${what} is said to be ${size} bytes, which is no size; nothing was admitted.`, { subject: sha256 });
    const d = await download(await this.blobResponse(repository, sha256), { dir, size, what });
    try {
      this.checkSha256(what, sha256, d.sha256);
    } catch (e) {
      await rm(d.path, { force: true });
      throw e;
    }
    return d;
  }

  private blobName(repository: string, sha256: string): string {
    return `the blob ${repository}@${sha256} on ${this.registry}`;
  }

  private async blobResponse(repository: string, sha256: string): Promise<Response> {
    const res = await this.request("GET", `/v2/${repository}/blobs/${sha256}`, pullScope(repository), { long: true });
    if (!res.ok) throw await this.failure(res, `the blob ${repository}@${sha256}`);
    return res;
  }

  private checkSha256(what: string, expected: string, actual: string): void {
    if (actual !== expected) throw new WmbError("INTEGRITY", `${what} hashes to ${actual}; the registry's copy is corrupt or was replaced, and nothing was admitted.`, { subject: expected });
  }

  /** Upload a blob (monolithic, streamed from `file` or sent from `bytes`) unless the registry has it.
   * Returns whether it was uploaded. */
  async pushBlob(repository: string, sha256: string, size: number, content: { file: string } | { bytes: Uint8Array }): Promise<boolean> {
    if (await this.hasBlob(repository, sha256)) return false;
    const start = await this.request("POST", `/v2/${repository}/blobs/uploads/`, pushScope(repository), { headers: { "content-length": "0" } });
    if (start.status !== 202) throw await this.failure(start, `starting an upload to ${repository}`);
    await discardBody(start);
    const location = start.headers.get("location");
    if (!location) throw new WmbError("REMOTE", `The registry ${this.registry} started an upload to ${repository} without a Location; it does not follow the distribution spec.`, { subject: this.registry });
    const url = new URL(location, this.base);
    url.searchParams.set("digest", sha256);
    const body = "file" in content ? (Readable.toWeb(createReadStream(content.file)) as ReadableStream<Uint8Array>) : content.bytes;
    const res = await this.request("PUT", url.pathname + url.search, pushScope(repository), {
      headers: { "content-type": "application/octet-stream", "content-length": String(size) },
      body,
      long: true,
      once: "file" in content,
    });
    if (res.status !== 201) throw await this.failure(res, `uploading ${sha256} to ${repository}`);
    await discardBody(res);
    return true;
  }

  // ---- requests and auth -----------------------------------------------------------------

  private async request(
    method: string,
    path: string,
    scope: string,
    o: { headers?: Record<string, string>; body?: Uint8Array | ReadableStream<Uint8Array>; long?: boolean; once?: boolean } = {},
  ): Promise<Response> {
    const url = path.startsWith("http") ? path : `${this.base}${path}`;
    let authenticated = false;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { ...o.headers };
      const auth = this.tokens.get(scope) ?? this.basic;
      if (auth) headers.authorization = auth;
      this.opts.onRequest?.(method, new URL(url).pathname);
      let res: Response;
      try {
        res = await fetchFollowing(
          url,
          {
            method,
            headers,
            body: o.body as RequestInit["body"],
            signal: AbortSignal.timeout((this.opts.timeoutMs ?? 30_000) * (o.long ? 10 : 1)),
            ...(o.body instanceof ReadableStream ? { duplex: "half" } : {}),
          } as Parameters<typeof fetchFollowing>[1],
          { policy: this.policy, what: `${method} ${new URL(url).pathname} on ${this.registry}` },
        );
      } catch (e) {
        if (e instanceof WmbError) throw e;
        if (!o.once && attempt < 2) {
          await sleep(backoff(attempt));
          continue;
        }
        throw unreachable(this.registry, e);
      }
      if (res.status === 401 && !authenticated && !o.once) {
        const challenge = parseChallenge(res.headers.get("www-authenticate") ?? "");
        await discardBody(res);
        await this.authenticate(challenge, scope);
        authenticated = true;
        continue;
      }
      if ((res.status === 429 || res.status >= 500) && !o.once && attempt < 3) {
        await discardBody(res);
        const after = Number(res.headers.get("retry-after"));
        await sleep(Number.isFinite(after) && after > 0 ? Math.min(after, 10) * 1000 : backoff(attempt));
        continue;
      }
      return res;
    }
  }

  private async authenticate(challenge: Challenge | undefined, scope: string): Promise<void> {
    this.credentials ??= (this.opts.credentials ?? (() => credentialsFor(this.registry)))();
    const creds = await this.credentials;
    if (challenge?.scheme === "basic") {
      if (!creds) throw new WmbError("REMOTE", `The registry ${this.registry} needs credentials; log in with \`docker login ${this.registry}\` (wmb reads the docker config) and try again.`, { subject: this.registry });
      this.basic = basicAuth(creds);
      return;
    }
    if (challenge?.scheme !== "bearer" || !challenge.params.realm) {
      throw new WmbError("REMOTE", `The registry ${this.registry} refused the request without a usable WWW-Authenticate challenge; check the registry's auth configuration.`, { subject: this.registry });
    }
    const token = await bearerToken(challenge, {
      registry: this.registry,
      policy: this.policy,
      scope,
      credentials: creds,
      timeoutMs: this.opts.timeoutMs ?? 30_000,
      warn: this.opts.warn ?? ((m) => process.stderr.write(`warning: ${m}\n`)),
    });
    this.tokens.set(scope, token);
  }

  /** One sentence for a failed response, with the registry's own error code. */
  private async failure(res: Response, what: string): Promise<WmbError> {
    const text = await readErrorBody(res);
    let code = "";
    let message = "";
    try {
      const e = (JSON.parse(text) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
      code = e?.code ?? "";
      message = e?.message ?? "";
    } catch {
      /* not the distribution error format */
    }
    const hint: Record<string, string> = {
      NAME_UNKNOWN: "check the repository name",
      MANIFEST_UNKNOWN: "check the tag or digest (it was never pushed, or was deleted)",
      BLOB_UNKNOWN: "the registry lost a blob the manifest names; push the machine again",
      MANIFEST_BLOB_UNKNOWN: "push the blobs before the manifest that names them",
      UNAUTHORIZED: `check your credentials for ${this.registry} (\`docker login ${this.registry}\`)`,
      DENIED: `your credentials for ${this.registry} do not allow this`,
      TOOMANYREQUESTS: "the registry is rate-limiting; try again later",
    };
    const label = code || (res.status === 404 ? "NOT_FOUND" : `HTTP ${res.status}`);
    const why = message && message.toLowerCase() !== label.toLowerCase() ? ` (${message.replace(/\.$/, "")})` : "";
    const todo = hint[code] ?? (res.status === 401 ? hint.UNAUTHORIZED : res.status === 403 ? hint.DENIED : res.status === 404 ? "check the reference" : "try again, or check the registry");
    return new WmbError("REMOTE", `The registry ${this.registry} answered ${label}${why} for ${what}; ${todo}.`, { subject: this.registry });
  }
}

function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

function backoff(attempt: number): number {
  return 200 * 4 ** attempt;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
