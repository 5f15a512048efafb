// Signed results in a remote cache (#25), in a real registry (Debian's docker-registry) with
// several clones and keys: CI uploads with --signing-key; a clone trusting CI's key takes them,
// one trusting another key runs everything and says why in one line; a registry writer who
// rewrites a result (unsigned, signed by its own key, with a signature copied from another
// result, with CI's signature over other bytes) gets a miss, and the action runs here; a key
// removed from the trusted list stops serving what it signed, also from what the store
// remembered; a remote hit is never served as a local result (--no-remote-cache afterwards).
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHAIN_WORKSPACE, makeWorkspace, wmb, type CliResult } from "./helpers/cli.ts";
import { copyFixtureStore, copyWorkspace, sqliteFixture, type SqliteFixture } from "./helpers/sqlite-fixture.ts";
import { testKey } from "./helpers/test-keys.ts";
import { registryInstalled, startRegistry, type TestRegistry } from "./helpers/registry.ts";
import { probeBwrap } from "../src/sandbox-bwrap.ts";
import { hashBytes, type ActionKey } from "../src/digest.ts";
import { actionTag, publishResult, type RemoteResult } from "../src/remote/action-cache.ts";
import { MEDIA_MANIFEST, RegistryClient, sha256Of } from "../src/remote/oci/client.ts";
import { attachEnvelope, referrerEnvelopes } from "../src/remote/oci/referrers.ts";
import { RESULT_SIGNATURE_ARTIFACT_TYPE, signResult } from "../src/remote/result-signatures.ts";
import { readSigningKey } from "../src/trust/keys.ts";
import { encodeEnvelope, parseEnvelope } from "../src/trust/dsse.ts";

const bwrapWorks = (await probeBwrap()).ok;

interface BuildJson {
  counts: Record<string, number>;
  remote?: { signed: number; ignored_unsigned_or_untrusted: number; authenticated: boolean; uploaded: number };
  actions: { label: string; key: string; status: string; outputs?: Record<string, string> }[];
}

function parse(r: CliResult): BuildJson {
  if (r.code !== 0) throw new Error(`wmb exited ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as BuildJson;
}

const warnings = (r: CliResult) => r.stderr.split("\n").filter((l) => l.startsWith("warning:"));
const statuses = (b: BuildJson) => Object.fromEntries(b.actions.map((a) => [a.label, a.status]));
const freshStore = () => join(mkdtempSync(join(tmpdir(), "wmb-trust-store-")), "store");

const FILES = CHAIN_WORKSPACE;

describe.skipIf(!registryInstalled)("signed results in a remote cache", () => {
  let reg: TestRegistry;
  const ci = testKey("ci");
  const other = testKey("other");
  const rogue = testKey("rogue");
  const env = (repo: string, extra: Record<string, string> = {}) => ({ WMB_REMOTE_CACHE: `oci://${reg.host}/${repo}`, DOCKER_CONFIG: mkdtempSync(join(tmpdir(), "wmb-docker-")), ...extra });

  beforeAll(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => reg?.stop());

  describe.skipIf(!bwrapWorks)("with a small graph", () => {
    /** CI builds and uploads, signing with `signer`; returns its summary. */
    async function ciUpload(repo: string, signer?: string, extra: Record<string, string> = {}): Promise<BuildJson> {
      const ws = makeWorkspace(FILES);
      return parse(await wmb(ws, ["build", "--json", "--remote-upload", ...(signer ? ["--signing-key", signer] : []), "//p:c"], { env: env(repo, extra) }));
    }

    it("a clone trusting CI's key takes CI's signed results; one trusting only another key runs them all and says why once", async () => {
      const a = await ciUpload("t/signed", ci.file);
      expect(a.remote).toMatchObject({ uploaded: 3, signed: 3 });
      const trusting = await wmb(makeWorkspace(FILES), ["build", "--json", "//p:c"], { env: env("t/signed", { WMB_TRUSTED_KEYS: ci.pub }) });
      expect(parse(trusting).counts).toMatchObject({ remote: 3, executed: 0 });
      expect(parse(trusting).remote).toMatchObject({ authenticated: true, ignored_unsigned_or_untrusted: 0 });
      expect(warnings(trusting)).toEqual([]);

      const ws = makeWorkspace(FILES);
      const r = await wmb(ws, ["build", "--json", "--trusted-key", other.pub, "//p:c"], { env: env("t/signed") });
      expect(parse(r).counts).toMatchObject({ remote: 0, executed: 3, cached: 0 });
      expect(warnings(r)).toEqual([
        "warning: 3 remote results were ignored and built here, not signed by a key trusted by --trusted-key: 3 signed only by a key not trusted here (ci).",
      ]);
      expect(readFileSync(join(ws, "wmb-out/p/c.txt"), "utf8")).toBe("ALPHA\nALPHA\n");
    });

    it("unsigned results are a miss for a clone with trusted keys, and unauthenticated (said once) for one without", async () => {
      await ciUpload("t/unsigned");
      const r = await wmb(makeWorkspace(FILES), ["build", "--json", "//p:c"], { env: env("t/unsigned", { WMB_TRUSTED_KEYS: ci.pub }) });
      expect(statuses(parse(r))).toEqual({ "//p:a": "executed", "//p:b": "executed", "//p:c": "executed" });
      expect(warnings(r)).toEqual(["warning: 3 remote results were ignored and built here, not signed by a key trusted by WMB_TRUSTED_KEYS: 3 unsigned."]);
      const open = await wmb(makeWorkspace(FILES), ["build", "--json", "//p:c"], { env: env("t/unsigned") });
      expect(parse(open).counts).toMatchObject({ remote: 3 });
      expect(warnings(open).filter((w) => w.includes("unauthenticated"))).toHaveLength(1);
      // CI, trusting its own key, builds them again and signs the results already there (they
      // are the ones it made); it never signs a hit it took.
      const signing = await ciUpload("t/unsigned", ci.file, { WMB_TRUSTED_KEYS: ci.pub });
      expect(signing.remote).toMatchObject({ uploaded: 0, signed: 3 });
      expect(parse(await wmb(makeWorkspace(FILES), ["build", "--json", "//p:c"], { env: env("t/unsigned", { WMB_TRUSTED_KEYS: ci.pub }) })).counts).toMatchObject({ remote: 3, executed: 0 });
    });

    it("a registry writer rewriting //p:c's result: unsigned, self-signed, a signature copied from //p:b, CI's signature over other bytes: each a miss, built here", async () => {
      const repo = "t/attacked";
      const a = await ciUpload(repo, ci.file);
      const keyOf = (l: string) => a.actions.find((x) => x.label === l)!.key as ActionKey;
      const client = new RegistryClient(reg.host);
      const poisonBytes = new TextEncoder().encode("PWNED BY THE CACHE\n");
      const sha = sha256Of(poisonBytes);
      await client.pushBlob(repo, sha, poisonBytes.length, { bytes: poisonBytes });
      const poisoned: RemoteResult = {
        action_key: keyOf("//p:c"),
        label: "//p:c",
        rule: "run@1",
        key_inputs: "{}",
        sandbox: "bwrap",
        outputs: { "c.txt": { blake3: hashBytes(poisonBytes), sha256: sha, size: poisonBytes.length, executable: false } },
      };
      const layers = [{ mediaType: "application/octet-stream", digest: sha, size: poisonBytes.length, annotations: { "dev.wmb.blake3": hashBytes(poisonBytes) } }];
      // CI's genuine signature of //p:b, to copy.
      const bManifest = await client.manifestDigest(repo, actionTag(keyOf("//p:b")));
      const [bSignature] = (await referrerEnvelopes(client, repo, bManifest!, RESULT_SIGNATURE_ARTIFACT_TYPE)).envelopes;
      // CI's genuine signature of //p:c, its payload swapped for the poisoned result's fingerprint.
      const cManifest = await client.manifestDigest(repo, actionTag(keyOf("//p:c")));
      const [cSignature] = (await referrerEnvelopes(client, repo, cManifest!, RESULT_SIGNATURE_ARTIFACT_TYPE)).envelopes;
      const overOther = parseEnvelope(cSignature!.envelope, "c");
      overOther.payload = parseEnvelope(signResult(readSigningKey(rogue.file), keyOf("//p:c"), poisoned), "p").payload;

      const attacks: [string, Uint8Array | undefined, string][] = [
        ["unsigned", undefined, "1 unsigned"],
        ["self-signed", signResult(readSigningKey(rogue.file), keyOf("//p:c"), poisoned), "1 signed only by a key not trusted here (rogue)"],
        ["copied", bSignature!.envelope, `1 with a bad signature (first: //p:c: the signature is for action key ${keyOf("//p:b")}, not ${keyOf("//p:c")})`],
        ["over other bytes", encodeEnvelope(overOther), "1 with a bad signature (first: //p:c: claiming ci)"],
      ];
      for (const [, envelope, said] of attacks) {
        const manifest = await publishResult(client, repo, { ...poisoned, key_inputs: `{"attack":${JSON.stringify(said)}}` }, layers);
        if (envelope) await attachEnvelope(client, repo, { mediaType: MEDIA_MANIFEST, ...manifest }, RESULT_SIGNATURE_ARTIFACT_TYPE, envelope, { settleMs: () => 5 });
        const ws = makeWorkspace(FILES);
        const r = await wmb(ws, ["build", "--json", "//p:c"], { env: env(repo, { WMB_TRUSTED_KEYS: ci.pub }) });
        expect(statuses(parse(r))).toEqual({ "//p:a": "remote", "//p:b": "remote", "//p:c": "executed" });
        expect(warnings(r)).toEqual([`warning: 1 remote result was ignored and built here, not signed by a key trusted by WMB_TRUSTED_KEYS: ${said}.`]);
        expect(readFileSync(join(ws, "wmb-out/p/c.txt"), "utf8")).toBe("ALPHA\nALPHA\n");
      }
    });

    it("a hit is never a local result: a poisoned hit taken without trusted keys is not served by --no-remote-cache, nor once keys are trusted", async () => {
      const repo = "t/remembered";
      const a = await ciUpload(repo, ci.file);
      const cKey = a.actions.find((x) => x.label === "//p:c")!.key as ActionKey;
      const client = new RegistryClient(reg.host);
      const poison = new TextEncoder().encode("PWNED BY THE CACHE\n");
      const sha = sha256Of(poison);
      await client.pushBlob(repo, sha, poison.length, { bytes: poison });
      await publishResult(
        client,
        repo,
        { action_key: cKey, label: "//p:c", rule: "run@1", key_inputs: "{}", sandbox: "bwrap", outputs: { "c.txt": { blake3: hashBytes(poison), sha256: sha, size: poison.length, executable: false } } },
        [{ mediaType: "application/octet-stream", digest: sha, size: poison.length, annotations: { "dev.wmb.blake3": hashBytes(poison) } }],
      );
      const ws = makeWorkspace(FILES);
      const store = freshStore();
      // Without trusted keys the poisoned result is taken (and said to be unauthenticated).
      const open = await wmb(ws, ["build", "--json", "--store", store, "//p:c"], { env: env(repo) });
      expect(parse(open).counts).toMatchObject({ remote: 3 });
      expect(readFileSync(join(ws, "wmb-out/p/c.txt"), "utf8")).toBe("PWNED BY THE CACHE\n");
      // Without the remote, nothing the remote said is served: everything runs here.
      const local = await wmb(ws, ["build", "--json", "--store", store, "--no-remote-cache", "//p:c"]);
      expect(statuses(parse(local))).toEqual({ "//p:a": "executed", "//p:b": "executed", "//p:c": "executed" });
      expect(readFileSync(join(ws, "wmb-out/p/c.txt"), "utf8")).toBe("ALPHA\nALPHA\n");
      // A second clone that took the poison remembers it; trusting CI's key, it asks again and refuses it.
      const ws2 = makeWorkspace(FILES);
      const store2 = freshStore();
      parse(await wmb(ws2, ["build", "--json", "--store", store2, "//p:c"], { env: env(repo) }));
      const trusting = await wmb(ws2, ["build", "--json", "--store", store2, "//p:c"], { env: env(repo, { WMB_TRUSTED_KEYS: ci.pub }) });
      expect(statuses(parse(trusting))).toEqual({ "//p:a": "remote", "//p:b": "remote", "//p:c": "executed" });
      expect(readFileSync(join(ws2, "wmb-out/p/c.txt"), "utf8")).toBe("ALPHA\nALPHA\n");
    });

    it("a key removed from the trusted list stops serving what it signed, also what the store remembered", async () => {
      const repo = "t/rotated";
      await ciUpload(repo, ci.file);
      const ws = makeWorkspace(FILES);
      const store = freshStore();
      // Rotation: both keys trusted, then CI's old key removed.
      expect(parse(await wmb(ws, ["build", "--json", "--store", store, "//p:c"], { env: env(repo, { WMB_TRUSTED_KEYS: `${other.pub},${ci.pub}` }) })).counts).toMatchObject({ remote: 3 });
      const before = reg.requests().length;
      expect(parse(await wmb(ws, ["build", "--json", "--store", store, "//p:c"], { env: env(repo, { WMB_TRUSTED_KEYS: ci.pub }) })).counts).toMatchObject({ remote: 3 });
      // Remembered with their signatures, checked again here: the registry was asked nothing.
      expect(reg.requests().length).toBe(before);
      const removed = await wmb(ws, ["build", "--json", "--store", store, "//p:c"], { env: env(repo, { WMB_TRUSTED_KEYS: other.pub }) });
      expect(parse(removed).counts).toMatchObject({ remote: 0, executed: 3 });
      expect(warnings(removed)).toEqual(["warning: 3 remote results were ignored and built here, not signed by a key trusted by WMB_TRUSTED_KEYS: 3 signed only by a key not trusted here (ci)."]);
    });
  });

  it("done when: a fresh clone trusting CI's key builds //sqlite-cli:sealed executing nothing; trusting only another key, it executes them all and says why", async () => {
    const fx: SqliteFixture = await sqliteFixture();
    const repo = "acme/signed-cache";
    // Private copies of the shared store and workspace: what other suites do to theirs meanwhile
    // cannot change what this build uploads.
    const store = freshStore();
    copyFixtureStore(fx.store, store);
    const upload = await wmb(copyWorkspace(), ["build", "--json", "--store", store, "--remote-upload", "--signing-key", ci.file, "//sqlite-cli:sealed"], { env: env(repo) });
    const a = parse(upload);
    expect(a.remote!.signed, `${JSON.stringify(a.remote)}\n${upload.stderr}`).toBe(a.actions.length);
    const trusting = await wmb(copyWorkspace(), ["build", "--json", "--store", freshStore(), "//sqlite-cli:sealed"], { env: env(repo, { WMB_TRUSTED_KEYS: ci.pub }) });
    expect(parse(trusting).counts).toMatchObject({ executed: 0, remote: a.actions.length });
    expect(warnings(trusting)).toEqual([]);
    const untrusting = await wmb(copyWorkspace(), ["build", "--json", "--store", freshStore(), "//sqlite-cli:sealed"], { env: env(repo, { WMB_TRUSTED_KEYS: other.pub }) });
    const n = a.actions.filter((x) => x.status !== "skipped").length;
    expect(parse(untrusting).counts).toMatchObject({ executed: n, remote: 0 });
    // Each action asked the remote once (a dependent's key is known only once its input is built).
    expect(warnings(untrusting)).toEqual([`warning: ${n} remote results were ignored and built here, not signed by a key trusted by WMB_TRUSTED_KEYS: ${n} signed only by a key not trusted here (ci).`]);
  }, 900_000);
});
