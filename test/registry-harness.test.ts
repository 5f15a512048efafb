// Self-test of test/helpers/registry.ts: each auth mode of the real docker-registry answers as a
// registry client expects, an authorized blob upload works, and stop() leaves nothing behind.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { registryInstalled, startRegistry, type TestRegistry } from "./helpers/registry.ts";

const started: TestRegistry[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((r) => r.stop()));
});

async function start(auth: "none" | "basic" | "token"): Promise<TestRegistry> {
  const reg = await startRegistry({ auth });
  started.push(reg);
  return reg;
}

const basicAuth = (u: string, p: string) => "Basic " + Buffer.from(`${u}:${p}`).toString("base64");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** POST an upload, PUT the body with ?digest=, HEAD the blob; returns the HEAD status and the digest hex. */
async function pushBlob(reg: TestRegistry, authorization: string | undefined, body: Uint8Array, repo = "acme/t") {
  const headers: Record<string, string> = authorization ? { authorization } : {};
  const hex = sha256(body);
  const post = await fetch(`http://${reg.host}/v2/${repo}/blobs/uploads/`, { method: "POST", headers });
  expect(post.status).toBe(202);
  const location = new URL(post.headers.get("location")!, `http://${reg.host}`);
  location.searchParams.set("digest", `sha256:${hex}`);
  const put = await fetch(location, { method: "PUT", headers: { ...headers, "content-type": "application/octet-stream" }, body });
  expect(put.status).toBe(201);
  expect(put.headers.get("docker-content-digest")).toBe(`sha256:${hex}`);
  const head = await fetch(`http://${reg.host}/v2/${repo}/blobs/sha256:${hex}`, { method: "HEAD", headers });
  return { status: head.status, hex };
}

/** Resolves true if the port accepts a TCP connection. */
function accepts(host: string): Promise<boolean> {
  const [h, p] = host.split(":");
  return new Promise((resolve) => {
    const sock = connect(Number(p), h!);
    sock.once("connect", () => (sock.destroy(), resolve(true)));
    sock.once("error", () => resolve(false));
  });
}

async function expectStopped(reg: TestRegistry) {
  await reg.stop();
  expect(await accepts(reg.host)).toBe(false);
  if (reg.tokenRealm) expect(await accepts(new URL(reg.tokenRealm).host)).toBe(false);
  expect(existsSync(reg.storageRoot)).toBe(false);
}

describe.skipIf(!registryInstalled)("test registry harness", () => {
  it("none: open registry, blob lands under storageRoot, requests() logs it", async () => {
    const reg = await start("none");
    expect(reg.host).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(reg.credentials).toBeUndefined();
    expect(reg.tokenRealm).toBeUndefined();
    expect((await fetch(`http://${reg.host}/v2/`)).status).toBe(200);

    const body = new TextEncoder().encode("hello registry\n");
    const { status, hex } = await pushBlob(reg, undefined, body);
    expect(status).toBe(200);
    // The documented on-disk layout tests rely on to corrupt blobs.
    const data = `${reg.storageRoot}/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
    expect(readFileSync(data, "utf8")).toBe("hello registry\n");

    // Startup probes are not counted; the GET /v2/ above is the first request.
    const reqs = reg.requests();
    expect(reqs[0]).toEqual({ method: "GET", path: "/v2/", status: 200 });
    expect(reqs).toContainEqual({ method: "POST", path: "/v2/acme/t/blobs/uploads/", status: 202 });
    expect(reqs.some((r) => r.method === "PUT" && r.path.startsWith("/v2/acme/t/blobs/uploads/") && r.status === 201)).toBe(true);
    expect(reqs.at(-1)).toEqual({ method: "HEAD", path: `/v2/acme/t/blobs/sha256:${hex}`, status: 200 });
    expect(reg.tokensIssued()).toBe(0);

    await expectStopped(reg);
  });

  it("basic: Basic challenge, wrong password refused, right one uploads", async () => {
    const reg = await start("basic");
    const { username, password } = reg.credentials!;
    const anon = await fetch(`http://${reg.host}/v2/`);
    expect(anon.status).toBe(401);
    expect(anon.headers.get("www-authenticate")).toMatch(/^Basic realm="wmb-test"/);
    expect((await fetch(`http://${reg.host}/v2/`, { headers: { authorization: basicAuth(username, password + "x") } })).status).toBe(401);
    expect((await fetch(`http://${reg.host}/v2/`, { headers: { authorization: basicAuth(username, password) } })).status).toBe(200);

    const { status, hex } = await pushBlob(reg, basicAuth(username, password), new TextEncoder().encode("basic blob"));
    expect(status).toBe(200);
    // 401s are in the access log too.
    expect(reg.requests().filter((r) => r.status === 401)).toHaveLength(2);
    expect(reg.requests()).toContainEqual({ method: "HEAD", path: `/v2/acme/t/blobs/sha256:${hex}`, status: 200 });

    await expectStopped(reg);
  });

  it("token: Bearer challenge, token server checks credentials, registry enforces the grant", async () => {
    const reg = await start("token");
    const { username, password } = reg.credentials!;
    expect(reg.tokenRealm).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/token$/);

    const anon = await fetch(`http://${reg.host}/v2/`);
    expect(anon.status).toBe(401);
    expect(anon.headers.get("www-authenticate")).toBe(`Bearer realm="${reg.tokenRealm}",service="wmb-test-registry"`);

    const tokenUrl = (scope: string) => `${reg.tokenRealm}?service=wmb-test-registry&scope=${encodeURIComponent(scope)}`;
    const getToken = async (scope: string, authorization?: string) => {
      const res = await fetch(tokenUrl(scope), { headers: authorization ? { authorization } : {} });
      expect(res.status).toBe(200);
      const json = (await res.json()) as { token: string; access_token: string; expires_in: number; issued_at: string };
      expect(json.access_token).toBe(json.token);
      expect(json.expires_in).toBe(300);
      return json.token;
    };

    // Wrong credentials: the token server itself refuses.
    const wrong = await fetch(tokenUrl("repository:acme/t:pull,push"), { headers: { authorization: basicAuth(username, "nope") } });
    expect(wrong.status).toBe(401);
    expect(reg.tokensIssued()).toBe(0);

    // Anonymous: a token with no access, which the registry rejects for repository operations.
    const anonToken = await getToken("repository:acme/t:pull,push");
    const denied = await fetch(`http://${reg.host}/v2/acme/t/blobs/uploads/`, { method: "POST", headers: { authorization: `Bearer ${anonToken}` } });
    expect(denied.status).toBe(401);
    // The order of the actions in the challenge's scope varies between requests (a Go map).
    expect(denied.headers.get("www-authenticate")).toMatch(
      /^Bearer realm=".*",service="wmb-test-registry",scope="repository:acme\/t:(pull,push|push,pull)",error="insufficient_scope"$/,
    );

    // Pull-only grant cannot push; tampering with the claims breaks the signature.
    const pullOnly = await getToken("repository:acme/t:pull", basicAuth(username, password));
    expect((await fetch(`http://${reg.host}/v2/acme/t/blobs/uploads/`, { method: "POST", headers: { authorization: `Bearer ${pullOnly}` } })).status).toBe(401);
    const [h, c, s] = pullOnly.split(".");
    const claims = JSON.parse(Buffer.from(c!, "base64url").toString());
    claims.access[0].actions.push("push");
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${s}`;
    expect((await fetch(`http://${reg.host}/v2/acme/t/blobs/uploads/`, { method: "POST", headers: { authorization: `Bearer ${forged}` } })).status).toBe(401);

    // Valid credentials and scope: a real upload.
    const token = await getToken("repository:acme/t:pull,push", basicAuth(username, password));
    expect(reg.tokensIssued()).toBe(3);
    const { status, hex } = await pushBlob(reg, `Bearer ${token}`, new TextEncoder().encode("token blob"));
    expect(status).toBe(200);
    expect(reg.requests()).toContainEqual({ method: "HEAD", path: `/v2/acme/t/blobs/sha256:${hex}`, status: 200 });

    await expectStopped(reg);
  });

  it.skipIf(!existsSync("/usr/bin/skopeo"))("token: skopeo logs in through the token server and lists a pushed tag", async () => {
    const reg = await start("token");
    const { username, password } = reg.credentials!;
    const res = await fetch(`${reg.tokenRealm}?service=wmb-test-registry&scope=repository:acme/t:pull,push`, {
      headers: { authorization: basicAuth(username, password) },
    });
    const bearer = `Bearer ${((await res.json()) as { token: string }).token}`;

    // A minimal OCI image: one layer, one config, a manifest tagged "v1".
    const layer = await pushBlob(reg, bearer, new TextEncoder().encode("layer bytes"));
    const configBytes = new TextEncoder().encode(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
    const config = await pushBlob(reg, bearer, configBytes);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: `sha256:${config.hex}`, size: configBytes.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: `sha256:${layer.hex}`, size: 11 }],
    });
    const put = await fetch(`http://${reg.host}/v2/acme/t/manifests/v1`, {
      method: "PUT",
      headers: { authorization: bearer, "content-type": "application/vnd.oci.image.manifest.v1+json" },
      body: manifest,
    });
    expect(put.status).toBe(201);

    const issuedBefore = reg.tokensIssued();
    const { stdout } = await promisify(execFile)("/usr/bin/skopeo", [
      "list-tags",
      "--tls-verify=false",
      "--creds",
      `${username}:${password}`,
      `docker://${reg.host}/acme/t`,
    ]);
    expect(JSON.parse(stdout).Tags).toEqual(["v1"]);
    expect(reg.tokensIssued()).toBeGreaterThan(issuedBefore);
  });
});
