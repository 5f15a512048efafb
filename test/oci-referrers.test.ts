// OCI 1.1 referrers (src/remote/oci/referrers.ts) against a real distribution 2.8 (no referrers
// API: the referrers tag schema) and against a small server that has the API: envelopes attached
// as their own manifests with artifactType and subject, listed back; concurrent writers of one
// referrers tag lose nothing; an index entry about another manifest is skipped.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { registryInstalled, startRegistry, type TestRegistry } from "./helpers/registry.ts";
import { MEDIA_INDEX, MEDIA_MANIFEST, RegistryClient, sha256Of } from "../src/remote/oci/client.ts";
import { attachEnvelope, EMPTY_CONFIG, listReferrers, referrerEnvelopes, referrersTag } from "../src/remote/oci/referrers.ts";

const SIG = "application/vnd.wmb.test.signature.v1";
const OTHER = "application/vnd.wmb.test.other.v1";

async function pushSubject(client: RegistryClient, repository: string, text: string): Promise<{ mediaType: string; digest: string; size: number }> {
  const config = new TextEncoder().encode(JSON.stringify({ text }));
  await client.pushBlob(repository, sha256Of(config), config.length, { bytes: config });
  const manifest = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_MANIFEST, config: { mediaType: "application/vnd.wmb.test.config+json", digest: sha256Of(config), size: config.length }, layers: [] }));
  const digest = await client.putManifest(repository, `subject-${text}`, manifest, MEDIA_MANIFEST);
  return { mediaType: MEDIA_MANIFEST, digest, size: manifest.length };
}

const envelope = (n: number | string) => new TextEncoder().encode(JSON.stringify({ payloadType: "t", payload: Buffer.from(`payload ${n}`).toString("base64"), signatures: [{ keyid: "k", sig: "AA==" }] }));

describe.skipIf(!registryInstalled)("referrers through the tag schema (distribution 2.8)", () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => reg?.stop());

  it("an envelope becomes a manifest with artifactType and subject, listed by the sha256-<hex> tag", async () => {
    const client = new RegistryClient(reg.host);
    const subject = await pushSubject(client, "t/one", "a");
    const d1 = await attachEnvelope(client, "t/one", subject, SIG, envelope(1), { annotations: { "dev.wmb.signer": "k" }, settleMs: () => 5 });
    const d2 = await attachEnvelope(client, "t/one", subject, OTHER, envelope(2), { settleMs: () => 5 });
    const tagged = await client.manifest("t/one", referrersTag(subject.digest));
    const index = JSON.parse(tagged.bytes.toString("utf8"));
    expect(index.mediaType).toBe(MEDIA_INDEX);
    expect(index.manifests.map((m: { digest: string; artifactType: string }) => [m.digest, m.artifactType])).toEqual([
      [d1, SIG],
      [d2, OTHER],
    ]);
    const m = JSON.parse((await client.manifest("t/one", d1)).bytes.toString("utf8"));
    expect(m).toMatchObject({ artifactType: SIG, config: EMPTY_CONFIG, subject, layers: [{ mediaType: "application/vnd.dsse.envelope.v1+json" }] });
    expect((await listReferrers(client, "t/one", subject.digest, SIG)).map((r) => r.digest)).toEqual([d1]);
    // The registry has no referrers API: wmb asked, got 404, and read the tag.
    await vi.waitFor(() => expect(reg.requests().some((r) => r.path === `/v2/t/one/referrers/${subject.digest}` && r.status === 404)).toBe(true));
    const { envelopes } = await referrerEnvelopes(client, "t/one", subject.digest, SIG);
    expect(envelopes.map((e) => e.envelope.toString())).toEqual([Buffer.from(envelope(1)).toString()]);
    expect(envelopes[0]!.annotations).toEqual({ "dev.wmb.signer": "k" });
    // Attaching the same envelope again adds no second entry.
    await attachEnvelope(client, "t/one", subject, SIG, envelope(1), { annotations: { "dev.wmb.signer": "k" }, settleMs: () => 5 });
    expect(await listReferrers(client, "t/one", subject.digest)).toHaveLength(2);
  });

  it("six writers attaching to one subject at once: every referrer is in the tag afterwards", async () => {
    const client = new RegistryClient(reg.host);
    const subject = await pushSubject(client, "t/race", "b");
    const digests = await Promise.all([0, 1, 2, 3, 4, 5].map((n) => attachEnvelope(new RegistryClient(reg.host), "t/race", subject, SIG, envelope(n))));
    expect(new Set((await listReferrers(client, "t/race", subject.digest)).map((r) => r.digest))).toEqual(new Set(digests));
  });

  it("an entry a registry writer lists that is about another manifest is skipped, not read", async () => {
    const client = new RegistryClient(reg.host);
    const subject = await pushSubject(client, "t/forged", "c");
    const other = await pushSubject(client, "t/forged", "d");
    const elsewhere = await attachEnvelope(client, "t/forged", other, SIG, envelope("other"), { settleMs: () => 5 });
    const own = await attachEnvelope(client, "t/forged", subject, SIG, envelope("own"), { settleMs: () => 5 });
    const tag = referrersTag(subject.digest);
    const index = JSON.parse((await client.manifest("t/forged", tag)).bytes.toString("utf8"));
    const foreign = JSON.parse((await client.manifest("t/forged", referrersTag(other.digest))).bytes.toString("utf8")).manifests[0];
    index.manifests.unshift(foreign);
    await client.putManifest("t/forged", tag, new TextEncoder().encode(JSON.stringify(index)), MEDIA_INDEX);
    const { envelopes, skipped } = await referrerEnvelopes(client, "t/forged", subject.digest, SIG);
    expect(envelopes.map((e) => e.digest)).toEqual([own]);
    expect(skipped).toEqual([`${elsewhere} (about another manifest)`]);
  });
});

describe("referrers through the OCI 1.1 referrers API", () => {
  let server: ReturnType<typeof createServer>;
  let host: string;
  const manifests = new Map<string, Buffer>();
  const blobs = new Map<string, Buffer>();
  const paths: string[] = [];

  beforeAll(async () => {
    // Just enough of a registry with the referrers API: it answers OCI-Subject and keeps the list.
    server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const body = Buffer.concat(chunks);
      const url = new URL(req.url!, "http://x");
      paths.push(`${req.method} ${url.pathname}`);
      let m: RegExpMatchArray | null;
      if ((m = url.pathname.match(/^\/v2\/r\/blobs\/(sha256:[0-9a-f]{64})$/))) {
        const b = blobs.get(m[1]!);
        if (!b) return res.writeHead(404).end();
        res.writeHead(200, { "content-length": b.length });
        return res.end(req.method === "HEAD" ? undefined : b);
      }
      if (url.pathname === "/v2/r/blobs/uploads/" && req.method === "POST") return res.writeHead(202, { location: "/v2/r/blobs/uploads/1" }).end();
      if (url.pathname === "/v2/r/blobs/uploads/1" && req.method === "PUT") {
        blobs.set(url.searchParams.get("digest")!, body);
        return res.writeHead(201).end();
      }
      if ((m = url.pathname.match(/^\/v2\/r\/manifests\/(.+)$/))) {
        if (req.method === "PUT") {
          manifests.set(m[1]!, body);
          manifests.set(sha256Of(body), body);
          const subject = (JSON.parse(body.toString()) as { subject?: { digest: string } }).subject;
          return res.writeHead(201, subject ? { "oci-subject": subject.digest } : {}).end();
        }
        const b = manifests.get(m[1]!);
        if (!b) return res.writeHead(404).end();
        return res.writeHead(200, { "content-type": MEDIA_MANIFEST, "docker-content-digest": sha256Of(b) }).end(b);
      }
      if ((m = url.pathname.match(/^\/v2\/r\/referrers\/(sha256:[0-9a-f]{64})$/))) {
        const list = [...manifests.entries()]
          .filter(([k]) => k.startsWith("sha256:"))
          .map(([digest, b]) => ({ digest, b, doc: JSON.parse(b.toString()) as { subject?: { digest: string }; artifactType?: string } }))
          .filter((x) => x.doc.subject?.digest === m![1])
          .map((x) => ({ mediaType: MEDIA_MANIFEST, digest: x.digest, size: x.b.length, artifactType: x.doc.artifactType }));
        return res.writeHead(200, { "content-type": MEDIA_INDEX }).end(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_INDEX, manifests: list }));
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("a registry that answers OCI-Subject gets no referrers tag, and is asked through its API", async () => {
    const client = new RegistryClient(host);
    const subject = await pushSubject(client, "r", "a");
    const d = await attachEnvelope(client, "r", subject, SIG, envelope(1));
    expect(manifests.has(referrersTag(subject.digest))).toBe(false);
    const { envelopes } = await referrerEnvelopes(client, "r", subject.digest, SIG);
    expect(envelopes.map((e) => e.digest)).toEqual([d]);
    expect(paths).toContain(`GET /v2/r/referrers/${subject.digest}`);
    expect(paths).not.toContain(`GET /v2/r/manifests/${referrersTag(subject.digest)}`);
  });
});
