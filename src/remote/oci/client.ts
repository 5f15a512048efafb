// A thin OCI distribution client on fetch: manifests and blobs by sha256, uploads, and the auth
// every registry uses (anonymous, Basic, the Bearer token flow from WWW-Authenticate). No
// client on npm is maintained well enough to depend on, and the protocol wmb needs is small.
// Nothing a registry sends is trusted: every manifest and blob is checked against its sha256
// (and its declared size) before it is returned. Secrets never reach a message.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { WmbError } from "../../errors.ts";
import { credentialsFor, type Credentials } from "./credentials.ts";
import { isLoopback } from "./reference.ts";

export const MEDIA_INDEX = "application/vnd.oci.image.index.v1+json";
export const MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
/** Distribution 2.8 answers 404 for an OCI manifest unless the request accepts its type. */
const MANIFEST_ACCEPT = [MEDIA_INDEX, MEDIA_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json"].join(", ");
const MAX_MANIFEST_BYTES = 4 << 20;
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
}

export interface Manifest {
  bytes: Buffer;
  digest: string;
  mediaType: string;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export function sha256Of(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

export class RegistryClient {
  readonly base: string;
  private credentials?: Promise<Credentials | undefined>;
  /** The Authorization value per scope (Bearer), or for every scope (Basic). */
  private readonly tokens = new Map<string, string>();
  private basic?: string;

  constructor(
    readonly registry: string,
    private readonly opts: ClientOptions = {},
  ) {
    this.base = `${isLoopback(registry) || opts.plainHttp ? "http" : "https"}://${registry}`;
  }

  // ---- manifests -------------------------------------------------------------------------

  /** A manifest by tag or digest, checked against its digest (given, or the registry's header). */
  async manifest(repository: string, reference: string): Promise<Manifest> {
    const path = `/v2/${repository}/manifests/${reference}`;
    const res = await this.request("GET", path, pullScope(repository), { headers: { accept: MANIFEST_ACCEPT } });
    if (!res.ok) throw await this.failure(res, `the manifest ${repository}:${reference}`);
    const bytes = await readLimited(res, MAX_MANIFEST_BYTES, `the manifest ${repository}:${reference} on ${this.registry}`);
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
    const res = await this.request("PUT", `/v2/${repository}/manifests/${reference}`, pushScope(repository), { headers: { "content-type": mediaType }, body: bytes });
    if (res.status !== 201 && res.status !== 200) throw await this.failure(res, `pushing the manifest ${repository}:${reference}`);
    await res.arrayBuffer();
    return sha256Of(bytes);
  }

  // ---- blobs -----------------------------------------------------------------------------

  async hasBlob(repository: string, sha256: string): Promise<boolean> {
    const res = await this.request("HEAD", `/v2/${repository}/blobs/${sha256}`, pullScope(repository));
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.failure(res, `the blob ${repository}@${sha256}`);
  }

  /** A blob's bytes, refused past `size` and unless they hash to `sha256`. */
  async blob(repository: string, sha256: string, size: number): Promise<Buffer> {
    const res = await this.request("GET", `/v2/${repository}/blobs/${sha256}`, pullScope(repository), { long: true });
    if (!res.ok) throw await this.failure(res, `the blob ${repository}@${sha256}`);
    const what = `the blob ${repository}@${sha256} on ${this.registry}`;
    const bytes = await readLimited(res, size, what);
    if (bytes.length !== size) throw new WmbError("INTEGRITY", `${what} is ${bytes.length} bytes, not the ${size} its manifest says; nothing was admitted.`, { subject: sha256 });
    const actual = sha256Of(bytes);
    if (actual !== sha256) throw new WmbError("INTEGRITY", `${what} hashes to ${actual}; the registry's copy is corrupt or was replaced, and nothing was admitted.`, { subject: sha256 });
    return bytes;
  }

  /** Upload a blob (monolithic, streamed from `file` or sent from `bytes`) unless the registry has it.
   * Returns whether it was uploaded. */
  async pushBlob(repository: string, sha256: string, size: number, content: { file: string } | { bytes: Uint8Array }): Promise<boolean> {
    if (await this.hasBlob(repository, sha256)) return false;
    const start = await this.request("POST", `/v2/${repository}/blobs/uploads/`, pushScope(repository), { headers: { "content-length": "0" } });
    if (start.status !== 202) throw await this.failure(start, `starting an upload to ${repository}`);
    await start.arrayBuffer();
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
    await res.arrayBuffer();
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
        res = await fetch(url, {
          method,
          headers,
          body: o.body as RequestInit["body"],
          redirect: "follow",
          signal: AbortSignal.timeout((this.opts.timeoutMs ?? 30_000) * (o.long ? 10 : 1)),
          ...(o.body instanceof ReadableStream ? { duplex: "half" } : {}),
        } as RequestInit);
      } catch (e) {
        if (!o.once && attempt < 2) {
          await sleep(backoff(attempt));
          continue;
        }
        throw unreachable(this.registry, e);
      }
      if (res.status === 401 && !authenticated && !o.once) {
        const challenge = parseChallenge(res.headers.get("www-authenticate") ?? "");
        await res.arrayBuffer();
        await this.authenticate(challenge, scope);
        authenticated = true;
        continue;
      }
      if ((res.status === 429 || res.status >= 500) && !o.once && attempt < 3) {
        await res.arrayBuffer();
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
    const realm = new URL(challenge.params.realm);
    if (challenge.params.service) realm.searchParams.set("service", challenge.params.service);
    realm.searchParams.set("scope", scope);
    let res: Response;
    try {
      res = await fetch(realm, { headers: creds ? { authorization: basicAuth(creds) } : {}, signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000) });
    } catch (e) {
      throw unreachable(`the token service of ${this.registry} (${realm.origin})`, e);
    }
    if (res.status === 401 || res.status === 403) {
      await res.arrayBuffer();
      throw new WmbError(
        "REMOTE",
        creds
          ? `The token service of ${this.registry} refused the credentials from ${creds.origin} (HTTP ${res.status}, UNAUTHORIZED); log in again with \`docker login ${this.registry}\`.`
          : `The token service of ${this.registry} refused anonymous access (HTTP ${res.status}, UNAUTHORIZED); log in with \`docker login ${this.registry}\`.`,
        { subject: this.registry },
      );
    }
    if (!res.ok) throw await this.failure(res, `a token from ${realm.origin}`);
    const body = (await res.json().catch(() => ({}))) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new WmbError("REMOTE", `The token service of ${this.registry} answered without a token; check its configuration.`, { subject: this.registry });
    this.tokens.set(scope, `Bearer ${token}`);
  }

  /** One sentence for a failed response, with the registry's own error code. */
  private async failure(res: Response, what: string): Promise<WmbError> {
    const text = await res.text().catch(() => "");
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

function basicAuth(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}

/** `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = p[2] ?? p[3] ?? "";
  return { scheme: m[1]!.toLowerCase(), params };
}

async function readLimited(res: Response, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  if (!res.body) return Buffer.alloc(0);
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > limit) throw new WmbError("INTEGRITY", `${what} is larger than the ${limit} bytes it may be; nothing was admitted.`, { subject: what });
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks, total);
}

function unreachable(what: string, e: unknown): WmbError {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const why = (e as Error).name === "TimeoutError" ? "timed out" : (cause?.code ?? cause?.message ?? (e as Error).message);
  return new WmbError("REMOTE", `Cannot reach ${what} (${why}); check that it is running and the address is right.`, { subject: what });
}

function backoff(attempt: number): number {
  return 200 * 4 ** attempt;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
