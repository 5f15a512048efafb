// Signed machines and their provenance in a real registry (#25 items 3-4): `push --signing-key`
// attaches a signature over identity + index digest and a SLSA provenance; `pull`, `run oci://…`
// and `inspect oci://…` with trusted keys refuse (exit 3, one sentence naming the signers found)
// a machine no trusted key signed, also one an attacker re-pushed under the signed tag (unsigned,
// signed by its own key, or with CI's signature copied onto it); --allow-unsigned says so loudly;
// inspect lists signatures, provenance and rebuilds.
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { wmb } from "./helpers/cli.ts";
import { sqliteFixture, type SqliteFixture } from "./helpers/sqlite-fixture.ts";
import { oneSentence, testKey } from "./helpers/test-keys.ts";
import { registryInstalled, startRegistry, type TestRegistry } from "./helpers/registry.ts";
import { resealedMachine } from "./helpers/resealed-machine.ts";
import { MEDIA_INDEX, RegistryClient } from "../src/remote/oci/client.ts";
import { attachEnvelope, referrerEnvelopes } from "../src/remote/oci/referrers.ts";
import { MACHINE_SIGNATURE_ARTIFACT_TYPE } from "../src/remote/machine-trust.ts";
import type { SealedSpec } from "../src/formats/machine-spec.ts";
import { Store } from "../store/store.ts";

const freshStore = () => join(mkdtempSync(join(tmpdir(), "wmb-trust-machine-")), "store");
/** The signers a store recorded for a machine (store version 8), as [key, public key, how, index]. */
async function signersIn(dir: string, identity: string): Promise<string[][]> {
  const store = await Store.open(dir);
  try {
    return store.machineSigners(identity).map((s) => [s.keyName, s.publicKey, s.how, s.index]);
  } finally {
    store.close();
  }
}
const blobs = (store: string) => (existsSync(join(store, "cas")) ? readdirSync(join(store, "cas"), { recursive: true }).map(String).filter((p) => /^[0-9a-f]{2}\/[0-9a-f]+$/.test(p)) : []);



describe.skipIf(!registryInstalled)("signed machines in an OCI registry", () => {
  let fx: SqliteFixture;
  let reg: TestRegistry;
  const ci = testKey("ci");
  const other = testKey("other");
  const rogue = testKey("rogue");
  const env = (extra: Record<string, string> = {}) => ({ DOCKER_CONFIG: mkdtempSync(join(tmpdir(), "wmb-docker-")), ...extra });
  let pushed: { identity: string; index: string; signature: string; provenance: string; signed_by: string };
  let tagRef: string;

  beforeAll(async () => {
    [fx, reg] = await Promise.all([sqliteFixture(), startRegistry()]);
    tagRef = `oci://${reg.host}/acme/sqlite-cli:3`;
    const r = await wmb(fx.workspace, ["push", "--json", "--store", fx.store, "--signing-key", ci.file, "//sqlite-cli:sealed", tagRef], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    pushed = JSON.parse(r.stdout);
  }, 900_000);
  afterAll(async () => reg?.stop());

  it("push signs the machine and attaches its provenance; a store trusting CI's key pulls it, one trusting another key refuses it, --allow-unsigned says so loudly", async () => {
    expect(pushed).toMatchObject({ signed_by: "ci", signature: expect.stringMatching(/^sha256:/), provenance: expect.stringMatching(/^sha256:/) });
    const ok = await wmb(fx.workspace, ["pull", "--store", freshStore(), tagRef], { env: env({ WMB_TRUSTED_KEYS: ci.pub }) });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trim()).toBe(pushed.identity);
    expect(ok.stderr).toMatch(/signed by ci\n$/);

    const store = freshStore();
    const refused = await wmb(fx.workspace, ["pull", "--store", store, tagRef], { env: env({ WMB_TRUSTED_KEYS: other.pub }) });
    expect(refused.code).toBe(3);
    expect(oneSentence(refused)).toBe(
      `error: ${tagRef} (${pushed.identity}) is not signed by a key trusted by WMB_TRUSTED_KEYS: signed by ci (not trusted here); nothing was admitted or run (--allow-unsigned takes it anyway).`,
    );
    expect(blobs(store)).toEqual([]);

    const loud = await wmb(fx.workspace, ["pull", "--store", store, "--allow-unsigned", tagRef], { env: env({ WMB_TRUSTED_KEYS: other.pub }) });
    expect(loud.code, loud.stderr).toBe(0);
    expect(loud.stderr).toMatch(/^warning: !!! .* is not signed by a key trusted by WMB_TRUSTED_KEYS: signed by ci \(not trusted here\); taking it anyway because of --allow-unsigned/);
  });

  it("the store records the signers whose signature verified at a pull (never an untrusted one), and the pusher's own key", async () => {
    const repo = "acme/cosigned";
    const ref = `oci://${reg.host}/${repo}:3`;
    const push = await wmb(fx.workspace, ["push", "--json", "--store", fx.store, "--signing-key", ci.file, "//sqlite-cli:sealed", ref], { env: env() });
    expect(push.code, push.stderr).toBe(0);
    const { index } = JSON.parse(push.stdout) as { index: string };
    expect(await signersIn(fx.store, pushed.identity)).toContainEqual(["ci", ci.pub, "push", index]);
    // rogue signs the same machine too; the puller trusts ci and other (which signed nothing).
    const client = new RegistryClient(reg.host);
    const manifest = await client.manifest(repo, index);
    const { signMachine } = await import("../src/remote/machine-trust.ts");
    const { readSigningKey } = await import("../src/trust/keys.ts");
    await signMachine({ client, repository: repo, digest: index, size: manifest.bytes.length }, { name: "sqlite-cli", identity: pushed.identity }, readSigningKey(rogue.file));
    const store = freshStore();
    const pulled = await wmb(fx.workspace, ["pull", "--store", store, "--trusted-key", ci.pub, "--trusted-key", other.pub, ref], { env: env() });
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(await signersIn(store, pushed.identity)).toEqual([["ci", ci.pub, "pull", index]]);
    // A pull that takes it unsigned (--allow-unsigned), or one without trusted keys, records nobody.
    const loose = freshStore();
    expect((await wmb(fx.workspace, ["pull", "--store", loose, "--trusted-key", other.pub, "--allow-unsigned", ref], { env: env() })).code).toBe(0);
    expect((await wmb(fx.workspace, ["pull", "--store", loose, ref], { env: env() })).code).toBe(0);
    expect(await signersIn(loose, pushed.identity)).toEqual([]);
  });

  it("run and inspect of an oci:// machine refuse it before anything runs; inspect lists its signature and provenance", async () => {
    const run = await wmb(fx.workspace, ["run", "--store", freshStore(), "--trusted-key", other.pub, tagRef, "--", "-version"], { env: env() });
    expect(run.code).toBe(3);
    expect(run.stdout).toBe("");
    expect(oneSentence(run)).toMatch(/is not signed by a key trusted by --trusted-key: signed by ci \(not trusted here\)/);
    const inspected = await wmb(fx.workspace, ["inspect", "--json", "--store", freshStore(), "--trusted-key", ci.pub, tagRef], { env: env() });
    expect(inspected.code, inspected.stderr).toBe(0);
    const info = JSON.parse(inspected.stdout) as {
      signed_by: string[];
      rebuilt_by: string[];
      attestations: { kind: string; valid_signers: string[]; verified: boolean; statement: { subject: { name: string }[]; predicate: Record<string, any> } }[];
    };
    expect(info.signed_by).toEqual(["ci"]);
    expect(info.rebuilt_by).toEqual([]);
    expect(info.attestations.map((a) => [a.kind, a.valid_signers, a.verified])).toEqual([
      ["signature", ["ci"], true],
      ["provenance", ["ci"], true],
    ]);
    const prov = info.attestations[1]!.statement;
    expect(prov.subject.map((s) => s.name)).toEqual(["sqlite-cli.wasm", "sqlite-cli"]);
    const def = prov.predicate.buildDefinition;
    expect(def.externalParameters.label).toBe("//sqlite-cli:sealed");
    expect(def.resolvedDependencies[0].uri).toBe("BUILD.ts");
    const uris = def.resolvedDependencies.map((d: { uri: string }) => d.uri);
    expect(uris).toContain("sqlite-cli/spec.template.json");
    expect(uris.some((u: string) => u.startsWith("npm:sqlite3@"))).toBe(true);
    for (const d of def.resolvedDependencies) expect(d.digest.blake3).toMatch(/^[0-9a-f]{64}$/);
    expect(def.internalParameters.toolchain).toMatchObject({ kind: "hermetic", digest: { blake3: expect.stringMatching(/^[0-9a-f]{64}$/) } });
    const byproducts = prov.predicate.runDetails.byproducts as { name: string; annotations: { sandbox: string } }[];
    expect(byproducts.map((b) => b.name)).toContain("//sqlite-cli:wasm_sqlite3");
    expect(new Set(byproducts.map((b) => b.annotations.sandbox))).not.toContain(undefined);
    // Without trusted keys, the same listing, said to be unverified.
    const open = await wmb(fx.workspace, ["inspect", "--store", freshStore(), tagRef], { env: env() });
    expect(open.stdout).toMatch(/^trust +no trusted keys configured: what follows is unverified$/m);
    expect(open.stdout).toMatch(/^signature +claims ci: not verified: no trusted keys configured/m);
    expect(open.stdout).toMatch(/^provenance +claims ci: .* — \/\/sqlite-cli:sealed, \d+ inputs, wmb \d/m);
    expect(open.stdout).toMatch(/^rebuild +\(none\)$/m);
  });

  it("a machine an attacker re-pushes under the signed tag (unsigned, self-signed, CI's signature copied onto it) is refused, naming the signers", async () => {
    const repo = "acme/attacked";
    const ref = `oci://${reg.host}/${repo}:3`;
    expect((await wmb(fx.workspace, ["push", "--store", fx.store, "--signing-key", ci.file, "//sqlite-cli:sealed", ref], { env: env() })).code).toBe(0);
    const client = new RegistryClient(reg.host);
    const genuineIndex = (await client.manifestDigest(repo, "3"))!;
    const [ciSignature] = (await referrerEnvelopes(client, repo, genuineIndex, MACHINE_SIGNATURE_ARTIFACT_TYPE)).envelopes;
    // Another machine, validly sealed, pushed over the tag.
    const evil = resealedMachine(join(fx.workspace, "wmb-out/sqlite-cli"), "sqlite-cli", (s: SealedSpec) => {
      s.version = "evil";
    });
    const trusting = env({ WMB_TRUSTED_KEYS: ci.pub });
    expect((await wmb(fx.workspace, ["push", "--store", freshStore(), evil, ref], { env: env() })).code).toBe(0);
    const unsigned = await wmb(fx.workspace, ["pull", "--store", freshStore(), ref], { env: trusting });
    expect(unsigned.code).toBe(3);
    expect(oneSentence(unsigned)).toMatch(/is not signed by a key trusted by WMB_TRUSTED_KEYS: it carries no signature; nothing was admitted or run/);

    expect((await wmb(fx.workspace, ["push", "--store", freshStore(), "--signing-key", rogue.file, evil, ref], { env: env() })).code).toBe(0);
    const self = await wmb(fx.workspace, ["pull", "--store", freshStore(), ref], { env: trusting });
    expect(self.code).toBe(3);
    expect(oneSentence(self)).toMatch(/: signed by rogue \(not trusted here\); nothing was admitted/);

    const evilIndex = (await client.manifestDigest(repo, "3"))!;
    const index = await client.manifest(repo, evilIndex);
    await attachEnvelope(client, repo, { mediaType: MEDIA_INDEX, digest: evilIndex, size: index.bytes.length }, MACHINE_SIGNATURE_ARTIFACT_TYPE, ciSignature!.envelope, { settleMs: () => 5 });
    const store = freshStore();
    const copied = await wmb(fx.workspace, ["pull", "--store", store, ref], { env: trusting });
    expect(copied.code).toBe(3);
    expect(oneSentence(copied)).toContain(`signed by rogue (not trusted here); ci (the signature is for the index ${genuineIndex}, not ${evilIndex})`);
    expect(blobs(store)).toEqual([]);
    // The genuine machine, by its identity, still pulls.
    const genuine = await wmb(fx.workspace, ["pull", "--store", store, `oci://${reg.host}/${repo}@${pushed.identity}`], { env: trusting });
    expect(genuine.code, genuine.stderr).toBe(0);
  });
});
