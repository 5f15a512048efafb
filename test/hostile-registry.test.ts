// Hostile peers: registries, token services, caches and https sources that answer what an
// attacker would. Each is a few lines of node:http (or https) on a loopback address, started
// here; the CLI talks to it as to any registry. What is checked: memory stays flat whatever size
// a peer claims or sends (peak RSS of the wmb process, read from /proc at its exit), every refusal
// is one sentence with the right exit code, nothing is admitted, the store's BLAKE3 -> sha256 map
// holds only what was hashed here, credentials go only to an https token service (or a plain-http
// one on this host, from a registry on this host), and a spec's sources are held to their grammar.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeWorkspace, wmb, type CliResult } from "./helpers/cli.ts";
import { copyFixtureStore, sqliteFixture, type SqliteFixture } from "./helpers/sqlite-fixture.ts";
import { registryInstalled, startRegistry, type TestRegistry } from "./helpers/registry.ts";
import { RegistryClient, MEDIA_INDEX, MEDIA_MANIFEST } from "../src/remote/oci/client.ts";
import { machineArtifact, ROOTFS_MEDIA_TYPE, SPEC_MEDIA_TYPE, type MachineArtifact } from "../src/remote/machine-artifact.ts";
import { readComponent } from "../src/formats/wasm.ts";
import type { SealedSpec } from "../src/formats/machine-spec.ts";

const GiB2 = 2 ** 31;
const MAX_PEAK_KB = 200 * 1024;

// ---- the peers -------------------------------------------------------------------------------

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

interface Peer {
  /** "127.0.0.1:PORT" (or the address it listens on) */
  host: string;
  /** "METHOD path?query" of every request, with its Authorization header if any */
  requests: { line: string; authorization?: string }[];
  close(): Promise<void>;
}

const peers: Server[] = [];
afterAll(async () => {
  for (const p of peers) {
    p.closeAllConnections();
    await new Promise((r) => p.close(r));
  }
});

async function peer(handler: Handler, o: { address?: string; tls?: { key: string; cert: string } } = {}): Promise<Peer> {
  const requests: Peer["requests"] = [];
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    requests.push({ line: `${req.method} ${req.url}`, authorization: req.headers.authorization });
    handler(req, res, new URL(req.url ?? "/", "http://x"));
  };
  const server = o.tls ? createHttpsServer(o.tls, listener) : createHttpServer(listener);
  const address = o.address ?? "127.0.0.1";
  await new Promise<void>((r) => server.listen(0, address, r));
  peers.push(server);
  const port = (server.address() as { port: number }).port;
  return {
    host: `${address}:${port}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Zeros after `prefix` until the client hangs up (or `limit` bytes, whichever comes first). */
function endless(res: ServerResponse, o: { status?: number; headers?: Record<string, string>; prefix?: Uint8Array; limit?: number } = {}): void {
  res.writeHead(o.status ?? 200, { "content-type": "application/octet-stream", ...o.headers });
  const chunk = Buffer.alloc(1 << 16);
  let sent = 0;
  const limit = o.limit ?? 4 * GiB2;
  if (o.prefix) {
    res.write(o.prefix);
    sent += o.prefix.length;
  }
  const pump = () => {
    while (!res.destroyed && sent < limit) {
      sent += chunk.length;
      if (!res.write(chunk)) return void res.once("drain", pump);
    }
    res.end();
  };
  res.on("close", () => res.removeAllListeners("drain"));
  pump();
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** A registry serving `docs` (manifests by tag and digest, blobs by digest); `override` answers first. */
function registryHandler(docs: Map<string, { bytes: Buffer; type?: string }>, override?: (req: IncomingMessage, res: ServerResponse, url: URL) => boolean): Handler {
  return (req, res, url) => {
    if (override?.(req, res, url)) return;
    const m = /^\/v2\/.+\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    const doc = m ? docs.get(m[2]!) : undefined;
    if (!doc) return void res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: "unknown" }] }));
    res.writeHead(200, { "content-type": doc.type ?? "application/octet-stream", "content-length": String(doc.bytes.length), "docker-content-digest": sha256(doc.bytes) });
    res.end(req.method === "HEAD" ? undefined : doc.bytes);
  };
}

/** The documents of `artifact` (as wmb pushes it) by tag `tag` and by digest, and its blobs. */
function artifactDocs(a: MachineArtifact, blobs: Record<string, Buffer>, tag = "1"): Map<string, { bytes: Buffer; type?: string }> {
  const docs = new Map<string, { bytes: Buffer; type?: string }>();
  docs.set(tag, { bytes: Buffer.from(a.index.bytes), type: MEDIA_INDEX });
  docs.set(a.index.digest, { bytes: Buffer.from(a.index.bytes), type: MEDIA_INDEX });
  for (const m of a.manifests) docs.set(m.digest, { bytes: Buffer.from(m.bytes), type: MEDIA_MANIFEST });
  for (const b of a.blobs) if (b.bytes) docs.set(b.descriptor.digest, { bytes: Buffer.from(b.bytes) });
  for (const [digest, bytes] of Object.entries(blobs)) docs.set(digest, { bytes });
  return docs;
}

/** An index for `identity` whose machine manifest has `config` and `layer` as given. */
function forgedArtifact(identity: string, config: object, layer: object): Map<string, { bytes: Buffer; type?: string }> {
  const machine = json({ schemaVersion: 2, mediaType: MEDIA_MANIFEST, artifactType: "application/vnd.wmb.machine.v1", config, layers: [layer] });
  const component = json({
    schemaVersion: 2,
    mediaType: MEDIA_MANIFEST,
    config: { mediaType: "application/vnd.wasm.config.v0+json", digest: sha256(Buffer.from("{}")), size: 2 },
    layers: [{ mediaType: "application/wasm", digest: sha256(Buffer.from("k")), size: 1 }],
  });
  const index = json({
    schemaVersion: 2,
    mediaType: MEDIA_INDEX,
    artifactType: "application/vnd.wmb.machine.v1",
    manifests: [
      { mediaType: MEDIA_MANIFEST, digest: sha256(component), size: component.length, annotations: { "dev.wmb.role": "component" } },
      { mediaType: MEDIA_MANIFEST, digest: sha256(machine), size: machine.length, annotations: { "dev.wmb.role": "machine" } },
    ],
    annotations: { "dev.wmb.identity": identity },
  });
  return new Map([
    ["1", { bytes: index, type: MEDIA_INDEX }],
    [sha256(machine), { bytes: machine, type: MEDIA_MANIFEST }],
    [sha256(component), { bytes: component, type: MEDIA_MANIFEST }],
  ]);
}

// ---- the client, measured ------------------------------------------------------------------

/** A module every wmb process loads first (NODE_OPTIONS): at exit, the process that loaded it
 * first (not the processes it starts) writes its peak RSS (VmHWM, kB) to $WMB_TEST_PEAK_FILE. */
const PEAK_MODULE = join(mkdtempSync(join(tmpdir(), "wmb-peak-")), "peak.mjs");
writeFileSync(
  PEAK_MODULE,
  `import { readFileSync, writeFileSync } from "node:fs";
if (process.env.WMB_TEST_PEAK_FILE && !process.env.WMB_TEST_PEAK_OWNER) {
  process.env.WMB_TEST_PEAK_OWNER = String(process.pid);
  process.on("exit", () => {
    const kb = /VmHWM:\\s+(\\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    writeFileSync(process.env.WMB_TEST_PEAK_FILE, kb ?? "");
  });
}
`,
);

interface Measured extends CliResult {
  /** peak RSS of the wmb process, kB; undefined when it died without exiting (a fatal OOM) */
  peakKb?: number;
}

async function measured(cwd: string, args: string[], env: Record<string, string>): Promise<Measured> {
  const file = join(mkdtempSync(join(tmpdir(), "wmb-peak-out-")), "peak");
  const r = await wmb(cwd, args, { env: { ...env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import=${pathToFileURL(PEAK_MODULE).href}`.trim(), WMB_TEST_PEAK_FILE: file } });
  const kb = existsSync(file) ? Number(readFileSync(file, "utf8")) : NaN;
  console.log(`PEAK ${args.join(" ").slice(0, 60)} ${kb} kB`);
  return { ...r, peakKb: Number.isFinite(kb) && kb > 0 ? kb : undefined };
}

function freshStore(): string {
  return join(mkdtempSync(join(tmpdir(), "wmb-hostile-store-")), "store");
}

function dockerConfig(host?: string, creds?: { username: string; password: string }): string {
  const dir = mkdtempSync(join(tmpdir(), "wmb-hostile-docker-"));
  const auths = host && creds ? { [host]: { auth: Buffer.from(`${creds.username}:${creds.password}`).toString("base64") } } : {};
  writeFileSync(join(dir, "config.json"), JSON.stringify({ auths }));
  return dir;
}

function blobsIn(store: string): string[] {
  const cas = join(store, "cas");
  return existsSync(cas) ? readdirSync(cas, { recursive: true }).map(String).filter((p) => /^[0-9a-f]{2}\/[0-9a-f]{62}$/.test(p)) : [];
}

/** The last line of stderr, which must be the only error line: one sentence. */
function oneError(r: CliResult): string {
  const errors = r.stderr.trim().split("\n").filter((l) => l.startsWith("error:") || /^\s+at /.test(l));
  expect(errors, r.stderr).toHaveLength(1);
  return errors[0]!;
}

/** A self-signed certificate for the given IP addresses, trusted by a child through NODE_EXTRA_CA_CERTS. */
function certificate(ips: string[]): { key: string; cert: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), "wmb-hostile-tls-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "2", "-subj", "/CN=wmb-hostile", "-addext", `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(",")}`], { stdio: "ignore" });
  return { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8"), file: join(dir, "cert.pem") };
}

/** An address of this host that is not loopback (wmb talks https to it), if it has one. */
const outsideAddress = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === "IPv4" && !a.internal)?.address;

const IDENTITY = `blake3:${"ab".repeat(32)}`;
const cwd = mkdtempSync(join(tmpdir(), "wmb-hostile-cwd-"));
const anon = () => ({ DOCKER_CONFIG: dockerConfig() });

// ---- memory: sizes the remote chooses ---------------------------------------------------------

describe("a hostile registry cannot choose how much memory a pull uses", () => {
  it("a manifest claiming a 2 GiB spec: refused before the blob is requested (exit 3), flat memory, nothing admitted", async () => {
    const config = { mediaType: SPEC_MEDIA_TYPE, digest: sha256(Buffer.from("spec")), size: GiB2 };
    const layer = { mediaType: ROOTFS_MEDIA_TYPE, digest: sha256(Buffer.from("rootfs")), size: 6 };
    const reg = await peer(registryHandler(forgedArtifact(IDENTITY, config, layer), (req, res, url) => (url.pathname.endsWith(`/blobs/${config.digest}`) ? (endless(res), true) : false)));
    const store = freshStore();
    const r = await measured(cwd, ["pull", "--store", store, `oci://${reg.host}/evil/m:1`], anon());
    expect(r.code, r.stderr).toBe(3);
    expect(oneError(r)).toMatch(/is said to be 2147483648 bytes, more than the \d+ a document may be; it was not fetched/);
    expect(r.peakKb).toBeLessThan(MAX_PEAK_KB);
    expect(reg.requests.map((x) => x.line)).not.toContain(`GET /v2/evil/m/blobs/${config.digest}`);
    expect(blobsIn(store)).toEqual([]);
  }, 120_000);

  for (const where of ["an error body", "a token answer", "a manifest"] as const) {
    it(`an endless body as ${where}: cut off at a few MiB, one sentence, flat memory`, async () => {
      const reg = await peer((req, res, url) => {
        if (where === "a token answer") {
          if (url.pathname === "/token") return endless(res, { headers: { "content-type": "application/json" }, prefix: Buffer.from('{"token":"') });
          if (!req.headers.authorization) return void res.writeHead(401, { "www-authenticate": `Bearer realm="http://${reg.host}/token",service="evil"` }).end();
        }
        if (where === "an error body") return endless(res, { status: 404, headers: { "content-type": "application/json" }, prefix: Buffer.from('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"') });
        endless(res, { headers: { "content-type": MEDIA_INDEX }, prefix: Buffer.from('{"schemaVersion":2,"x":"') });
      });
      const store = freshStore();
      const r = await measured(cwd, ["pull", "--store", store, `oci://${reg.host}/evil/m:1`], anon());
      expect(r.code, r.stderr).toBe(where === "a manifest" ? 3 : 1);
      expect(oneError(r)).toMatch(where === "an error body" ? /answered NOT_FOUND for the manifest evil\/m:1/ : /is longer than the 4194304 bytes it may be/);
      expect(r.peakKb).toBeLessThan(MAX_PEAK_KB);
      expect(blobsIn(store)).toEqual([]);
    }, 120_000);
  }
});

describe("a hostile remote cache cannot choose how much memory a build uses", () => {
  it("a result whose config claims 2 GiB: one warning, the action runs locally, the build succeeds, flat memory", async () => {
    const config = { mediaType: "application/vnd.wmb.action.result.v1+json", digest: sha256(Buffer.from("config")), size: GiB2 };
    const manifest = json({ schemaVersion: 2, mediaType: MEDIA_MANIFEST, artifactType: "application/vnd.wmb.action.result.v1", config, layers: [] });
    const reg = await peer((req, res, url) => {
      if (url.pathname.endsWith(`/blobs/${config.digest}`)) return endless(res);
      if (/\/manifests\/(action-[0-9a-f]{64}|sha256:[0-9a-f]{64})$/.test(url.pathname)) {
        res.writeHead(200, { "content-type": MEDIA_MANIFEST, "content-length": String(manifest.length), "docker-content-digest": sha256(manifest) });
        return void res.end(req.method === "HEAD" ? undefined : manifest);
      }
      res.writeHead(404).end();
    });
    const ws = makeWorkspace({ "BUILD.ts": `export default (w) => { w.package("p").write({ name: "a", out: "a.txt", content: "alpha\\n" }); };\n` });
    const r = await measured(ws, ["build", "--json", "//p:a"], { ...anon(), WMB_REMOTE_CACHE: `oci://${reg.host}/evil/cache` });
    expect(r.code, r.stderr).toBe(0);
    const warnings = r.stderr.split("\n").filter((l) => l.startsWith("warning:"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/the remote result of \/\/p:a is not usable \(.*said to be 2147483648 bytes.*\); running it locally/);
    expect((JSON.parse(r.stdout) as { actions: { label: string; status: string }[] }).actions).toEqual([expect.objectContaining({ label: "//p:a", status: "executed" })]);
    expect(readFileSync(join(ws, "wmb-out/p/a.txt"), "utf8")).toBe("alpha\n");
    expect(r.peakKb).toBeLessThan(MAX_PEAK_KB);
    expect(reg.requests.map((x) => x.line)).not.toContain(`GET /v2/evil/cache/blobs/${config.digest}`);
  }, 120_000);
});

// ---- with the real machine ---------------------------------------------------------------------

describe.skipIf(!registryInstalled)("hostile peers and the sqlite machine", () => {
  let fx: SqliteFixture;
  let honest: TestRegistry;
  let out: string;
  let spec: SealedSpec;
  let kernel: Buffer;
  let rootfs: Buffer;
  let genuine: MachineArtifact;

  beforeAll(async () => {
    [fx, honest] = await Promise.all([sqliteFixture(), startRegistry()]);
    out = join(fx.workspace, "wmb-out/sqlite-cli");
    spec = JSON.parse(readFileSync(join(out, "sqlite-cli.json"), "utf8")) as SealedSpec;
    kernel = readFileSync(join(out, "sqlite-cli.wasm"));
    rootfs = readFileSync(join(out, "sqlite-cli.rootfs.tar"));
    genuine = machineArtifact(spec, readComponent(kernel), sha256(kernel), sha256(rootfs));
  }, 600_000);
  afterAll(async () => honest?.stop());

  const rootfsSha = () => sha256(rootfs);

  for (const how of ["longer", "shorter"] as const) {
    it(`a rootfs ${how} than its descriptor: refused (exit 3), flat memory, nothing admitted`, async () => {
      const reg = await peer(
        registryHandler(artifactDocs(genuine, { [sha256(kernel)]: kernel }), (_req, res, url) => {
          if (!url.pathname.endsWith(`/blobs/${rootfsSha()}`)) return false;
          if (how === "longer") endless(res, { prefix: rootfs });
          else res.writeHead(200, { "content-type": "application/octet-stream" }).end(rootfs.subarray(0, rootfs.length - 100));
          return true;
        }),
      );
      const store = freshStore();
      const r = await measured(cwd, ["pull", "--store", store, `oci://${reg.host}/evil/m:1`], anon());
      expect(r.code, r.stderr).toBe(3);
      expect(oneError(r)).toMatch(how === "longer" ? /goes on past the \d+ bytes it should be/ : /ended after \d+ bytes, short of the \d+ bytes it should be/);
      expect(r.peakKb).toBeLessThan(MAX_PEAK_KB);
      expect(blobsIn(store)).toEqual([]);
      expect(readdirSync(join(store, "cas/tmp"))).toEqual([]);
    }, 120_000);
  }

  it("a spec blob longer than its descriptor: cut off at its size, refused (exit 3)", async () => {
    const specBlob = genuine.blobs.find((b) => b.descriptor.mediaType === SPEC_MEDIA_TYPE)!;
    const reg = await peer(
      registryHandler(artifactDocs(genuine, {}), (_req, res, url) => (url.pathname.endsWith(`/blobs/${specBlob.descriptor.digest}`) ? (endless(res, { prefix: specBlob.bytes }), true) : false)),
    );
    const r = await measured(cwd, ["pull", "--store", freshStore(), `oci://${reg.host}/evil/m:1`], anon());
    expect(r.code, r.stderr).toBe(3);
    expect(oneError(r)).toMatch(/is longer than the \d+ bytes it may be/);
    expect(r.peakKb).toBeLessThan(MAX_PEAK_KB);
  }, 120_000);

  // ---- the sha256 map ----

  it("an index naming another blob of the same size for a blob the store has: the map keeps the blob's own sha256, and a later push is the genuine index", async () => {
    const store = join(mkdtempSync(join(tmpdir(), "wmb-hostile-map-")), "store");
    copyFixtureStore(fx.store, store);
    // Another blob of the rootfs's size, which the attacker has put in the registry the victim pushes to.
    const other = Buffer.from(rootfs);
    other[other.length >> 1] ^= 0x01;
    await new RegistryClient(honest.host).pushBlob("victim/m", sha256(other), other.length, { bytes: other });
    const forged = machineArtifact(spec, readComponent(kernel), sha256(kernel), sha256(other));
    const reg = await peer(registryHandler(artifactDocs(forged, {})));
    const pull = await wmb(cwd, ["pull", "--store", store, `oci://${reg.host}/evil/m:1`], { env: anon() });
    expect(pull.code, pull.stderr).toBe(0);
    // The store has both layers: only the spec is fetched.
    expect(reg.requests.filter((x) => x.line.includes("/blobs/")).map((x) => x.line)).toEqual([`GET /v2/evil/m/blobs/${forged.blobs.find((b) => b.descriptor.mediaType === SPEC_MEDIA_TYPE)!.descriptor.digest}`]);
    const rootfsBlake3 = spec.rootfs_ref.digest.replace(/^blake3:/, "");
    const db = new Database(join(store, "index.sqlite"), { fileMustExist: true, timeout: 30_000 });
    try {
      const row = db.prepare("SELECT sha256 FROM sha256_digests WHERE digest = ?").get(rootfsBlake3) as { sha256: string } | undefined;
      expect(row?.sha256 ?? rootfsSha()).toBe(rootfsSha());
      // A store an older wmb filled from such an index: the push must not believe the map.
      db.prepare("INSERT OR REPLACE INTO sha256_digests (digest, sha256) VALUES (?, ?)").run(rootfsBlake3, sha256(other));
    } finally {
      db.close();
    }
    const push = await wmb(cwd, ["push", "--json", "--store", store, spec.seal.digest, `oci://${honest.host}/victim/m:1`], { env: anon() });
    expect(push.code, push.stderr).toBe(0);
    expect((JSON.parse(push.stdout) as { index: string }).index).toBe(genuine.index.digest);
    const back = await wmb(cwd, ["pull", "--store", freshStore(), `oci://${honest.host}/victim/m@${spec.seal.digest}`], { env: anon() });
    expect(back.code, back.stderr).toBe(0);
  }, 300_000);

  // ---- a spec's sources ----

  it("an oci source outside the reference grammar is refused before any request", async () => {
    const reg = await peer((_req, res) => void res.writeHead(200).end("deleted"));
    const dir = mkdtempSync(join(tmpdir(), "wmb-hostile-spec-"));
    const forged = structuredClone(spec);
    forged.rootfs_ref.sources = [{ oci: `${reg.host}/../../../internal/admin?action=delete&x=@${rootfsSha()}` }];
    writeFileSync(join(dir, "m.json"), JSON.stringify(forged));
    const r = await wmb(cwd, ["inspect", "--store", freshStore(), join(dir, "m.json")], { env: anon() });
    expect(r.code).toBe(3);
    expect(oneError(r)).toMatch(/rootfs_ref\.sources\[0\]\.oci must be .* in the OCI reference grammar/);
    expect(reg.requests).toEqual([]);
  }, 120_000);

  describe("https sources", () => {
    let tls: ReturnType<typeof certificate>;
    beforeAll(() => {
      tls = certificate(["127.0.0.1"]);
    });

    /** `wmb inspect` of the machine with https sources on `source` for kernel and rootfs. */
    const inspectWith = async (source: Peer) => {
      const dir = mkdtempSync(join(tmpdir(), "wmb-hostile-spec-"));
      const forged = structuredClone(spec);
      forged.kernel_ref.sources = [{ https: `https://${source.host}/kernel` }];
      forged.rootfs_ref.sources = [{ https: `https://${source.host}/rootfs` }];
      writeFileSync(join(dir, "m.json"), JSON.stringify(forged));
      const store = freshStore();
      const r = await measured(cwd, ["inspect", "--store", store, join(dir, "m.json")], { ...anon(), NODE_EXTRA_CA_CERTS: tls.file });
      return { r, store };
    };

    it("an endless https source: cut off at the spec's size (exit 3), flat memory, nothing admitted", async () => {
      const source = await peer((_req, res, url) => (url.pathname === "/kernel" ? void res.writeHead(200).end(kernel) : endless(res, { prefix: rootfs })), { tls });
      const { r, store } = await inspectWith(source);
      expect(r.code, r.stderr).toBe(3);
      expect(oneError(r)).toMatch(/the rootfs of .* could not be fetched from any of its sources: .* goes on past the \d+ bytes it should be/);
      expect(r.peakKb).toBeLessThan(MAX_PEAK_KB);
      expect(blobsIn(store)).toHaveLength(1); // the kernel, which was whole
    }, 120_000);

    it("an https source follows a few redirects, never to plain http; the next source is tried, and redirects within https are followed", async () => {
      const plain = await peer((_req, res) => void res.writeHead(200).end(rootfs));
      const source = await peer(
        (_req, res, url) => {
          if (url.pathname === "/kernel") return void res.writeHead(302, { location: "/kernel/1" }).end();
          if (url.pathname === "/kernel/1") return void res.writeHead(200).end(kernel);
          if (url.pathname === "/rootfs/ok") return void res.writeHead(307, { location: "/rootfs/1" }).end();
          if (url.pathname === "/rootfs/1") return void res.writeHead(200).end(rootfs);
          if (url.pathname === "/rootfs") return void res.writeHead(302, { location: `http://${plain.host}/rootfs` }).end();
          const hop = Number(/^\/loop\/(\d+)$/.exec(url.pathname)?.[1] ?? -1);
          if (hop >= 0) return void res.writeHead(302, { location: `/loop/${hop + 1}` }).end();
          res.writeHead(404).end();
        },
        { tls },
      );
      const toHttp = await inspectWith(source);
      expect(toHttp.r.code, toHttp.r.stderr).toBe(1);
      expect(oneError(toHttp.r)).toMatch(new RegExp(`was redirected to http://${plain.host.replace(/\./g, "\\.")}, and wmb follows a redirect only to https`));
      expect(plain.requests).toEqual([]);
      // The same machine, its rootfs behind endless redirects: a few are followed, then refused.
      const dir = mkdtempSync(join(tmpdir(), "wmb-hostile-spec-"));
      const looping = structuredClone(spec);
      looping.kernel_ref.sources = [{ https: `https://${source.host}/kernel` }];
      looping.rootfs_ref.sources = [{ https: `https://${source.host}/loop/0` }];
      writeFileSync(join(dir, "m.json"), JSON.stringify(looping));
      const loop = await wmb(cwd, ["inspect", "--store", freshStore(), join(dir, "m.json")], { env: { ...anon(), NODE_EXTRA_CA_CERTS: tls.file } });
      expect(loop.code, loop.stderr).toBe(1);
      expect(oneError(loop)).toMatch(/was redirected more than 5 times/);
      expect(source.requests.filter((x) => x.line.startsWith("GET /loop/"))).toHaveLength(6);
      // Redirects within https are followed: the machine is whole.
      looping.rootfs_ref.sources = [{ https: `https://${source.host}/loop/3` }, { https: `https://${source.host}/rootfs/ok` }];
      writeFileSync(join(dir, "m.json"), JSON.stringify(looping));
      const ok = await wmb(cwd, ["inspect", "--store", freshStore(), join(dir, "m.json")], { env: { ...anon(), NODE_EXTRA_CA_CERTS: tls.file } });
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toContain(spec.seal.digest);
    }, 120_000);
  });
});

// ---- credentials and the token realm ---------------------------------------------------------------

describe("credentials go only where they are safe", () => {
  const creds = { username: "victim", password: "s3cret-never-sent" };

  it("a loopback registry naming a plain-http token service on another host: refused, nothing sent there", async () => {
    if (!outsideAddress) return;
    const tokens = await peer((_req, res) => void res.writeHead(200, { "content-type": "application/json" }).end('{"token":"t"}'), { address: outsideAddress });
    const reg = await peer((_req, res) => void res.writeHead(401, { "www-authenticate": `Bearer realm="http://${tokens.host}/token",service="evil"` }).end());
    const r = await wmb(cwd, ["pull", "--store", freshStore(), `oci://${reg.host}/acme/m:1`], { env: { DOCKER_CONFIG: dockerConfig(reg.host, creds) } });
    expect(r.code).toBe(1);
    expect(oneError(r)).toMatch(new RegExp(`names the token service http://${tokens.host.replace(/\./g, "\\.")}, which is not https; wmb sends no credentials there`));
    expect(tokens.requests).toEqual([]);
  }, 120_000);

  describe.skipIf(!outsideAddress)("an https registry (on this host's outside address)", () => {
    let tls: ReturnType<typeof certificate>;
    beforeAll(() => {
      tls = certificate([outsideAddress!, "127.0.0.1"]);
    });

    it("naming a plain-http token service on loopback: refused in one sentence, the credentials never sent", async () => {
      const tokens = await peer((_req, res) => void res.writeHead(200, { "content-type": "application/json" }).end('{"token":"t"}'), { address: "127.0.0.2" });
      const reg = await peer((_req, res) => void res.writeHead(401, { "www-authenticate": `Bearer realm="http://${tokens.host}/token",service="evil"` }).end(), { address: outsideAddress, tls });
      const r = await wmb(cwd, ["pull", "--store", freshStore(), `oci://${reg.host}/acme/m:1`], { env: { DOCKER_CONFIG: dockerConfig(reg.host, creds), NODE_EXTRA_CA_CERTS: tls.file } });
      expect(r.code, r.stderr).toBe(1);
      expect(oneError(r)).toMatch(/names the token service http:\/\/127\.0\.0\.2:\d+, which is not https; wmb sends no credentials there/);
      expect(tokens.requests).toEqual([]);
      expect(r.stderr).not.toContain(creds.password);
    }, 120_000);

    it("naming an https token service on another host: used, with one warning for all the tokens it issues", async () => {
      // Each token is good for one request, so every request of the pull fetches a new one.
      const valid = new Set<string>();
      let issued = 0;
      const tokens = await peer(
        (_req, res) => {
          const token = `t-${++issued}`;
          valid.add(token);
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token }));
        },
        { tls },
      );
      const config = { mediaType: SPEC_MEDIA_TYPE, digest: sha256(Buffer.from("spec")), size: GiB2 };
      const docs = forgedArtifact(IDENTITY, config, { mediaType: ROOTFS_MEDIA_TYPE, digest: sha256(Buffer.from("rootfs")), size: 6 });
      const serve = registryHandler(docs);
      const reg = await peer(
        (req, res, url) => {
          const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
          if (!token || !valid.delete(token)) return void res.writeHead(401, { "www-authenticate": `Bearer realm="https://${tokens.host}/token",service="evil"` }).end();
          serve(req, res, url);
        },
        { address: outsideAddress, tls },
      );
      const pull = await wmb(cwd, ["pull", "--store", freshStore(), `oci://${reg.host}/acme/m:1`], { env: { DOCKER_CONFIG: dockerConfig(reg.host, creds), NODE_EXTRA_CA_CERTS: tls.file } });
      expect(pull.code, pull.stderr).toBe(3);
      expect(oneError(pull)).toMatch(/said to be 2147483648 bytes/);
      expect(tokens.requests.length).toBeGreaterThanOrEqual(3);
      for (const t of tokens.requests) expect(t.authorization).toBe(`Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`);
      const warnings = pull.stderr.split("\n").filter((l) => l.startsWith("warning:"));
      expect(warnings).toEqual([expect.stringMatching(new RegExp(`sends wmb to ${tokens.host.replace(/\./g, "\\.")} for its tokens, so your credentials for ${reg.host.replace(/\./g, "\\.")} go there too`))]);
    }, 120_000);
  });
});
