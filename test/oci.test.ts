// Sealed machines in a real OCI registry (Debian's docker-registry, started here on 127.0.0.1):
// push, pull into another store, run by tag, by identity and from a spec that names only
// registry sources; an independent client (skopeo) reads what wmb pushed; tampered bytes in the
// registry's storage are refused; every failure is one sentence and leaves the store as it was.
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { wmb, type CliResult } from "./helpers/cli.ts";
import { sqliteFixture, type SqliteFixture } from "./helpers/sqlite-fixture.ts";
import { registryInstalled, startRegistry, type TestRegistry } from "./helpers/registry.ts";

const skopeo = existsSync("/usr/bin/skopeo");

/** A store directory that does not exist yet. */
function freshStore(): string {
  return join(mkdtempSync(join(tmpdir(), "wmb-oci-store-")), "store");
}

/** A docker config directory: empty (anonymous), or with credentials for `host`. */
function dockerConfig(host?: string, username?: string, password?: string): string {
  const dir = mkdtempSync(join(tmpdir(), "wmb-docker-config-"));
  const auths = host ? { [host]: { auth: Buffer.from(`${username}:${password}`).toString("base64") } } : {};
  writeFileSync(join(dir, "config.json"), JSON.stringify({ auths }));
  return dir;
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Everything a store holds on disk, to prove a failure admitted nothing. */
function storeContents(store: string): string[] {
  if (!existsSync(store)) return [];
  const cas = join(store, "cas");
  const blobs = existsSync(cas) ? readdirSync(cas, { recursive: true }).map(String) : [];
  return blobs.filter((p) => /^[0-9a-f]{2}\/[0-9a-f]+$/.test(p)).sort();
}

function oneSentence(r: CliResult): string {
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  return lines[0]!;
}

describe.skipIf(!registryInstalled)("sealed machines in an OCI registry", () => {
  let fx: SqliteFixture;
  let reg: TestRegistry;
  let identity: string;
  let out: string;
  const anon = { DOCKER_CONFIG: dockerConfig() };
  const cli = (args: string[], store: string, env: Record<string, string> = anon) => wmb(fx.workspace, [args[0]!, "--store", store, ...args.slice(1)], { env });

  beforeAll(async () => {
    [fx, reg] = await Promise.all([sqliteFixture(), startRegistry()]);
    out = join(fx.workspace, "wmb-out/sqlite-cli");
    const inspect = await cli(["inspect", "--json", "//sqlite-cli:sealed"], fx.store);
    identity = (JSON.parse(inspect.stdout) as { identity: string }).identity;
  }, 600_000);
  afterAll(async () => reg?.stop());

  it("push, pull into a fresh store, run: the same identity and the same output as the local run", async () => {
    const ref = `oci://${reg.host}/acme/sqlite-cli:3.52.0`;
    const push = await cli(["push", "//sqlite-cli:sealed", ref], fx.store);
    expect(push.stderr).toMatch(/uploaded 4 of 4 blobs/);
    expect(push.stdout.trim()).toBe(identity);
    const store = freshStore();
    const pull = await cli(["pull", ref], store);
    expect(pull.code).toBe(0);
    expect(pull.stdout.trim()).toBe(identity);
    const sql = ["-batch", ":memory:", "select sqlite_version(), 6*7;"];
    const [local, remote] = await Promise.all([cli(["run", "//sqlite-cli:sealed", "--", ...sql], fx.store), cli(["run", ref, "--", ...sql], store)]);
    expect(remote.code).toBe(0);
    expect(remote.stdout).toBe(local.stdout);
    expect(remote.stdout).toMatch(/\b42\b/);
    // The pulling store remembers where the machine came from; the identity is unchanged.
    const inspect = JSON.parse((await cli(["inspect", "--json", identity], store)).stdout) as { identity: string; kernel: { sources: { oci?: string }[] } };
    expect(inspect.identity).toBe(identity);
    expect(inspect.kernel.sources).toEqual([{ oci: `${reg.host}/acme/sqlite-cli@sha256:${sha256Hex(readFileSync(join(out, "sqlite-cli.wasm")))}` }]);
  }, 300_000);

  it("re-push uploads nothing, and the pulled store pushes the same index digest", async () => {
    const ref = `oci://${reg.host}/acme/sqlite-cli:again`;
    const first = JSON.parse((await cli(["push", "--json", "//sqlite-cli:sealed", ref], fx.store)).stdout) as { index: string; uploaded: number };
    const again = JSON.parse((await cli(["push", "--json", "//sqlite-cli:sealed", ref], fx.store)).stdout) as { index: string; uploaded: number };
    expect(again).toMatchObject({ index: first.index, uploaded: 0 });
    const store = freshStore();
    expect((await cli(["pull", ref], store)).code).toBe(0);
    // From the other store, by identity, into another repository: every digest the same.
    const moved = JSON.parse((await cli(["push", "--json", identity, `oci://${reg.host}/elsewhere/copy:1`], store)).stdout) as { index: string; uploaded: number };
    expect(moved.index).toBe(first.index);
    const raw = await fetch(`http://${reg.host}/v2/elsewhere/copy/manifests/1`, { headers: { accept: "application/vnd.oci.image.index.v1+json" } });
    expect(`sha256:${sha256Hex(new Uint8Array(await raw.arrayBuffer()))}`).toBe(first.index);
  }, 300_000);

  it("resolves @blake3:<identity>; a warm run makes no blob request (none at all by identity, one manifest by tag)", async () => {
    const tagRef = `oci://${reg.host}/acme/warm:1`;
    expect((await cli(["push", "//sqlite-cli:sealed", tagRef], fx.store)).code).toBe(0);
    const store = freshStore();
    const byIdentity = `oci://${reg.host}/acme/warm@${identity}`;
    const first = await cli(["run", byIdentity, "--", "-version"], store);
    expect(first.code).toBe(0);
    const before = reg.requests().length;
    expect((await cli(["run", byIdentity, "--", "-version"], store)).stdout).toBe(first.stdout);
    expect(reg.requests().slice(before)).toEqual([]);
    expect((await cli(["run", tagRef, "--", "-version"], store)).stdout).toBe(first.stdout);
    expect(reg.requests().slice(before).map((r) => `${r.method} ${r.path}`)).toEqual(["GET /v2/acme/warm/manifests/1"]);
  }, 300_000);

  it("runs a spec file whose blobs are only in the registry: fetched from its oci sources and verified", async () => {
    expect((await cli(["push", "//sqlite-cli:sealed", `oci://${reg.host}/acme/sources:1`], fx.store)).code).toBe(0);
    const spec = JSON.parse(readFileSync(join(out, "sqlite-cli.json"), "utf8")) as Record<string, { sources: unknown[] }>;
    const at = (file: string) => [{ oci: `${reg.host}/acme/sources@sha256:${sha256Hex(readFileSync(join(out, file)))}` }];
    spec.kernel_ref!.sources = at("sqlite-cli.wasm");
    spec.rootfs_ref!.sources = at("sqlite-cli.rootfs.tar");
    const dir = mkdtempSync(join(tmpdir(), "wmb-oci-spec-"));
    writeFileSync(join(dir, "sqlite-cli.json"), JSON.stringify(spec));
    const store = freshStore();
    const r = await cli(["run", join(dir, "sqlite-cli.json"), "--", ":memory:", "select 6*7;"], store);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\b42\b/);
    // A source that serves other bytes is refused (exit 3) and nothing is admitted.
    spec.kernel_ref!.sources = at("sqlite-cli.rootfs.tar");
    writeFileSync(join(dir, "sqlite-cli.json"), JSON.stringify(spec));
    const other = freshStore();
    const bad = await cli(["run", join(dir, "sqlite-cli.json"), "--", "-version"], other);
    expect(bad.code).toBe(3);
    expect(oneSentence(bad)).toMatch(/could not be fetched from any of its sources/);
    expect(storeContents(other)).toEqual([]);
  }, 300_000);

  it.skipIf(!skopeo)("an independent client reads it: skopeo copies the component manifest byte for byte", async () => {
    const ref = `${reg.host}/acme/sqlite-cli:skopeo`;
    expect((await cli(["push", "//sqlite-cli:sealed", `oci://${ref}`], fx.store)).code).toBe(0);
    const raw = spawnSync("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${ref}`], { encoding: "utf8" });
    expect(raw.status).toBe(0);
    const index = JSON.parse(raw.stdout) as { artifactType: string; manifests: { digest: string; annotations: Record<string, string> }[]; annotations: Record<string, string> };
    expect(index.artifactType).toBe("application/vnd.wmb.machine.v1");
    expect(index.annotations["dev.wmb.identity"]).toBe(identity);
    const component = index.manifests.find((m) => m.annotations["dev.wmb.role"] === "component")!;
    const dir = join(mkdtempSync(join(tmpdir(), "wmb-skopeo-")), "out");
    const copy = spawnSync("skopeo", ["copy", "--src-tls-verify=false", `docker://${reg.host}/acme/sqlite-cli@${component.digest}`, `dir:${dir}`], { encoding: "utf8" });
    expect(copy.status).toBe(0);
    const kernel = readFileSync(join(out, "sqlite-cli.wasm"));
    expect(readFileSync(join(dir, sha256Hex(kernel))).equals(kernel)).toBe(true);
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as { config: { mediaType: string }; layers: { mediaType: string }[] };
    expect(manifest.config.mediaType).toBe("application/vnd.wasm.config.v0+json");
    expect(manifest.layers.map((l) => l.mediaType)).toEqual(["application/wasm"]);
  }, 300_000);

  it("unknown repository, unknown tag, registry down: one sentence each, non-zero exit, the store unchanged", async () => {
    const store = freshStore();
    const unknownRepo = await cli(["pull", `oci://${reg.host}/nobody/here:1`], store);
    expect(unknownRepo.code).toBe(1);
    expect(oneSentence(unknownRepo)).toMatch(/answered (NAME_UNKNOWN|MANIFEST_UNKNOWN).*nobody\/here/);
    const unknownTag = await cli(["pull", `oci://${reg.host}/acme/sqlite-cli:no-such-tag`], store);
    expect(unknownTag.code).toBe(1);
    expect(oneSentence(unknownTag)).toMatch(/MANIFEST_UNKNOWN.*no-such-tag.*check the tag/);
    const down = await startRegistry();
    await down.stop();
    const unreachable = await cli(["run", `oci://${down.host}/acme/x:1`, "--", "-version"], store);
    expect(unreachable.code).toBe(1);
    expect(oneSentence(unreachable)).toMatch(new RegExp(`Cannot reach ${down.host.replace(/\./g, "\\.")} \\(ECONNREFUSED\\)`));
    const badRef = await cli(["pull", "oci://127.0.0.1/Upper/case:1"], store);
    expect(badRef.code).toBe(2);
    expect(storeContents(store)).toEqual([]);
  }, 120_000);

  it("a blob corrupted in the registry's storage is refused with exit 3, and nothing is admitted", async () => {
    const own = await startRegistry();
    try {
      expect((await cli(["push", "//sqlite-cli:sealed", `oci://${own.host}/acme/sqlite-cli:1`], fx.store)).code).toBe(0);
      const rootfs = sha256Hex(readFileSync(join(out, "sqlite-cli.rootfs.tar")));
      const data = join(own.storageRoot, "docker/registry/v2/blobs/sha256", rootfs.slice(0, 2), rootfs, "data");
      const bytes = readFileSync(data);
      bytes[bytes.length >> 1] ^= 0x01;
      writeFileSync(data, bytes);
      const store = freshStore();
      const r = await cli(["pull", `oci://${own.host}/acme/sqlite-cli:1`], store);
      expect(r.code).toBe(3);
      expect(oneSentence(r)).toMatch(new RegExp(`blob acme/sqlite-cli@sha256:${rootfs} .*hashes to sha256:.*nothing was admitted`));
      expect(storeContents(store)).toEqual([]);
    } finally {
      await own.stop();
    }
  }, 300_000);

  for (const auth of ["basic", "token"] as const) {
    it(`${auth} auth: credentials from the docker config push and pull; wrong or missing ones fail in one sentence that holds no secret`, async () => {
      const own = await startRegistry({ auth });
      try {
        const { username, password } = own.credentials!;
        const ref = `oci://${own.host}/team/sqlite-cli:1`;
        const good = { DOCKER_CONFIG: dockerConfig(own.host, username, password) };
        const push = await cli(["push", "//sqlite-cli:sealed", ref], fx.store, good);
        expect(push.stderr).toMatch(/uploaded 4 of 4 blobs/);
        const store = freshStore();
        const pull = await cli(["pull", ref], store, good);
        expect(pull.stdout.trim()).toBe(identity);
        if (auth === "token") expect(own.tokensIssued()).toBeGreaterThan(0);

        const wrongPassword = `${password}-wrong`;
        const other = freshStore();
        const wrong = await cli(["pull", ref], other, { DOCKER_CONFIG: dockerConfig(own.host, username, wrongPassword) });
        expect(wrong.code).toBe(1);
        expect(oneSentence(wrong)).toMatch(auth === "basic" ? /UNAUTHORIZED/ : /refused the credentials from .*config\.json/);
        const none = await cli(["pull", ref], other);
        expect(none.code).toBe(1);
        expect(oneSentence(none)).toMatch(auth === "basic" ? /needs credentials; log in with `docker login/ : /refused anonymous access|UNAUTHORIZED/);
        for (const r of [push, pull, wrong, none]) {
          for (const secret of [password, wrongPassword, Buffer.from(`${username}:${password}`).toString("base64")]) {
            expect(r.stdout + r.stderr).not.toContain(secret);
          }
        }
        expect(storeContents(other)).toEqual([]);
      } finally {
        await own.stop();
      }
    }, 300_000);
  }
});
