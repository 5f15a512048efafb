// Independent rebuilds (#25 item 5) in a real registry: CI pushes //examples/wordcount:sealed
// signed; another clone runs `wmb verify oci://… --attest` (every action run there, a fresh
// store) and attaches a signed rebuild attestation; `pull`/`run --require-rebuilds N` count
// distinct trusted rebuilders other than the pusher. Attacks: an attestation for another
// identity, N attestations signed by one key, the pusher attesting itself, an untrusted
// rebuilder; a clone whose sources differ attests nothing and names the first divergent action.
import { mkdtempSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { wmb } from "./helpers/cli.ts";
import { copyFixtureStore, copyWorkspace, sqliteFixture } from "./helpers/sqlite-fixture.ts";
import { oneSentence, testKey } from "./helpers/test-keys.ts";
import { registryInstalled, startRegistry, type TestRegistry } from "./helpers/registry.ts";
import { readSigningKey } from "../src/trust/keys.ts";
import { RegistryClient } from "../src/remote/oci/client.ts";
import { listReferrers } from "../src/remote/oci/referrers.ts";
import { attachStatement, REBUILD_ARTIFACT_TYPE } from "../src/remote/machine-trust.ts";
import { rebuildAttestation } from "../src/trust/statements.ts";

const freshStore = () => join(mkdtempSync(join(tmpdir(), "wmb-trust-rebuild-")), "store");



describe.skipIf(!registryInstalled)("independent rebuilds of a pushed machine", () => {
  let reg: TestRegistry;
  const ci = testKey("ci");
  const r1 = testKey("rebuilder-1");
  const r2 = testKey("rebuilder-2");
  const rogue = testKey("rogue");
  const env = (extra: Record<string, string> = {}) => ({ DOCKER_CONFIG: mkdtempSync(join(tmpdir(), "wmb-docker-")), ...extra });
  const repo = "acme/wordcount";
  let ref: string;
  let identity: string;
  let ciStore: string;

  beforeAll(async () => {
    const [fx, r] = await Promise.all([sqliteFixture(), startRegistry()]);
    reg = r;
    ref = `oci://${reg.host}/${repo}:1`;
    ciStore = freshStore();
    copyFixtureStore(fx.store, ciStore);
    const pushed = await wmb(copyWorkspace(), ["push", "--json", "--store", ciStore, "--signing-key", ci.file, "//examples/wordcount:sealed", ref], { env: env() });
    expect(pushed.code, pushed.stderr).toBe(0);
    identity = JSON.parse(pushed.stdout).identity;
  }, 900_000);
  afterAll(async () => reg?.stop());

  const trustAll = () => env({ WMB_TRUSTED_KEYS: [ci.pub, r1.pub, r2.pub].join(",") });

  it("verify --attest rebuilds it with every action run here and attests it; --require-rebuilds counts the rebuilder", async () => {
    const before = await wmb(copyWorkspace(), ["pull", "--store", freshStore(), "--require-rebuilds", "1", ref], { env: trustAll() });
    expect(before.code).toBe(3);
    expect(oneSentence(before)).toBe(
      `error: ${ref} (${identity}) has none of the 1 independent rebuild required: distinct keys trusted by WMB_TRUSTED_KEYS, other than its signers (ci), attesting the same identity; nothing was admitted or run.`,
    );
    const ws = copyWorkspace();
    const v = await wmb(ws, ["verify", "--json", "--store", freshStore(), "--attest", "--signing-key", r1.file, ref], { env: env() });
    expect(v.code, v.stderr).toBe(0);
    const report = JSON.parse(v.stdout) as { identical: boolean; executed: number; label: string; rebuilder: string; attestation: string };
    expect(report).toMatchObject({ identical: true, label: "//examples/wordcount:sealed", rebuilder: "rebuilder-1", attestation: expect.stringMatching(/^sha256:/) });
    expect(report.executed).toBeGreaterThan(3);
    const after = await wmb(copyWorkspace(), ["pull", "--store", freshStore(), "--require-rebuilds", "1", ref], { env: trustAll() });
    expect(after.code, after.stderr).toBe(0);
    expect(after.stderr).toMatch(/signed by ci, rebuilt by rebuilder-1\n$/);
    const inspected = await wmb(copyWorkspace(), ["inspect", "--store", freshStore(), ref], { env: trustAll() });
    expect(inspected.stdout).toMatch(new RegExp(`^rebuild +by rebuilder-1, verified — rebuilt ${identity} from //examples/wordcount:sealed on `, "m"));
    expect(inspected.stdout).toMatch(/^trust +keys from WMB_TRUSTED_KEYS: signed by ci, 1 independent rebuild \(rebuilder-1\)$/m);
  }, 600_000);

  it("attestations for another identity, many by one key, by the pusher or by an untrusted key add no rebuild", async () => {
    const client = new RegistryClient(reg.host);
    const digest = (await client.manifestDigest(repo, "1"))!;
    const index = await client.manifest(repo, digest);
    const at = { client, repository: repo, digest, size: index.bytes.length };
    let n = 0;
    // Each attestation its own bytes (another rebuiltOn): the same one attached twice is one referrer.
    const attest = (signer: string, name: string, id: string) =>
      attachStatement(at, REBUILD_ARTIFACT_TYPE, rebuildAttestation({ name: "wordcount", identity: id, label: "//examples/wordcount:sealed", rebuilder: name, wmbVersion: "0.1.0", rebuiltOn: new Date(Date.UTC(2026, 0, 1) + ++n * 1000) }), readSigningKey(signer));
    await attest(r2.file, "rebuilder-2", `blake3:${"0".repeat(64)}`); // another identity
    for (let i = 0; i < 3; i++) await attest(r1.file, "rebuilder-1", identity); // one key, many times
    await attest(ci.file, "ci", identity); // the pusher
    await attest(rogue.file, "rogue", identity); // not trusted
    expect((await listReferrers(client, repo, digest, REBUILD_ARTIFACT_TYPE)).length).toBeGreaterThanOrEqual(6);
    const two = await wmb(copyWorkspace(), ["run", "--store", freshStore(), "--require-rebuilds", "2", ref], { env: trustAll() });
    expect(two.code).toBe(3);
    expect(two.stdout).toBe("");
    expect(oneSentence(two)).toMatch(/has only 1 \(rebuilder-1\) of the 2 independent rebuilds required/);
    // N rebuilds signed by one key are one; rebuilder-2's genuine attestation makes two.
    await attest(r2.file, "rebuilder-2", identity);
    const ok = await wmb(copyWorkspace(), ["pull", "--store", freshStore(), "--require-rebuilds", "2", ref], { env: trustAll() });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/rebuilt by rebuilder-1, rebuilder-2\n$/);
  });

  it("a clone whose sources differ attests nothing and names the first divergent action", async () => {
    const client = new RegistryClient(reg.host);
    const digest = (await client.manifestDigest(repo, "1"))!;
    const count = async () => (await listReferrers(client, repo, digest, REBUILD_ARTIFACT_TYPE)).length;
    const before = await count();
    const ws = copyWorkspace();
    const c = join(ws, "examples/wordcount/wordcount.c");
    writeFileSync(c, readFileSync(c, "utf8").replace('printf("argv0 %s\\n"', 'printf("argv[0] %s\\n"'));
    const v = await wmb(ws, ["verify", "--store", freshStore(), "--attest", "--signing-key", r2.file, ref], { env: env() });
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/DIFFERS: nothing was attested\. First divergent action: \/\/examples\/wordcount:wasm_wordcount \(key here [0-9a-f]{64}, the provenance says [0-9a-f]{64}\)\./);
    expect(await count()).toBe(before);
  }, 600_000);
});
