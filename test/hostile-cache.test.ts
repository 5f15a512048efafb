// A remote cache (a real docker-registry on 127.0.0.1) holding results no honest client uploads:
// results declaring they were made without a sandbox, or none at all, and a sealed spec of
// another machine under //sqlite-cli:sealed's key. Each is a miss with one warning naming its
// target, and the action runs locally; the rest of the cache still serves.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHAIN_WORKSPACE, makeWorkspace, wmb, type CliResult } from "./helpers/cli.ts";
import { registryInstalled, startRegistry, type TestRegistry } from "./helpers/registry.ts";
import { resealedMachine } from "./helpers/resealed-machine.ts";
import { copyWorkspace, sqliteFixture, type SqliteFixture } from "./helpers/sqlite-fixture.ts";
import { probeBwrap } from "../src/sandbox-bwrap.ts";
import { hashBytes, type ActionKey } from "../src/digest.ts";
import { publishResult, type RemoteResult } from "../src/remote/action-cache.ts";
import { RegistryClient, sha256Of } from "../src/remote/oci/client.ts";
import type { SealedSpec } from "../src/formats/machine-spec.ts";

const bwrapWorks = (await probeBwrap()).ok;

interface BuildJson {
  actions: { label: string; key: string; status: string; outputs?: Record<string, string> }[];
}

function parse(r: CliResult): BuildJson {
  if (r.code !== 0) throw new Error(`wmb exited ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as BuildJson;
}

/** Warnings, less the one every build with remote hits and no trusted keys gives (#25). */
const warnings = (r: CliResult) => r.stderr.split("\n").filter((l) => l.startsWith("warning:") && !/unauthenticated: no trusted keys are configured/.test(l));
const statuses = (b: BuildJson) => Object.fromEntries(b.actions.map((a) => [a.label, a.status]));
const freshStore = () => join(mkdtempSync(join(tmpdir(), "wmb-hostile-store-")), "store");

/** Push `files` (output path -> bytes) as the result of `key`, saying what the attacker likes. */
async function poison(client: RegistryClient, repository: string, key: string, label: string, files: Record<string, Uint8Array>, extra: Partial<RemoteResult>): Promise<void> {
  const outputs: RemoteResult["outputs"] = {};
  const layers = [];
  for (const [path, bytes] of Object.entries(files)) {
    const sha256 = sha256Of(bytes);
    await client.pushBlob(repository, sha256, bytes.length, { bytes });
    const blake3 = hashBytes(bytes);
    outputs[path] = { blake3, sha256, size: bytes.length, executable: false };
    layers.push({ mediaType: "application/octet-stream", digest: sha256, size: bytes.length, annotations: { "dev.wmb.blake3": blake3 } });
  }
  await publishResult(client, repository, { action_key: key as ActionKey, label, rule: "any@1", key_inputs: "{}", outputs, ...extra }, layers);
}

describe.skipIf(!registryInstalled)("a remote cache holding results no honest client uploads", () => {
  let reg: TestRegistry;
  let fx: SqliteFixture;
  const env = (url: string) => ({ WMB_REMOTE_CACHE: url, DOCKER_CONFIG: mkdtempSync(join(tmpdir(), "wmb-docker-")) });

  beforeAll(async () => {
    [fx, reg] = await Promise.all([sqliteFixture(), startRegistry()]);
  }, 900_000);
  afterAll(async () => reg?.stop());

  it.skipIf(!bwrapWorks)("a result made without a sandbox, or saying nothing of one, is a miss with one warning: built here", async () => {
    const files = CHAIN_WORKSPACE;
    const repository = "team/unsandboxed";
    const cache = `oci://${reg.host}/${repository}`;
    const wsA = makeWorkspace(files);
    const honest = parse(await wmb(wsA, ["build", "--json", "//p:c"]));
    const key = (l: string) => honest.actions.find((a) => a.label === l)!.key;
    // Before A uploads (the first result of a key stays): //p:b made "unsandboxed", with other
    // bytes, and //p:a saying nothing of how it was made.
    const client = new RegistryClient(reg.host);
    await poison(client, repository, key("//p:b"), "//p:b", { "b.txt": new TextEncoder().encode("made on some host\n") }, { sandbox: "none" });
    await poison(client, repository, key("//p:a"), "//p:a", { "a.txt": new TextEncoder().encode("alpha\n") }, {});
    expect(parse(await wmb(wsA, ["build", "--json", "--remote-upload", "//p:c"], { env: env(cache) })).actions.length).toBe(3);

    const wsB = makeWorkspace(files);
    const r = await wmb(wsB, ["build", "--json", "//p:c"], { env: env(cache) });
    const b = parse(r);
    expect(statuses(b)).toEqual({ "//p:a": "executed", "//p:b": "executed", "//p:c": "remote" });
    expect(readFileSync(join(wsB, "wmb-out/p/c.txt"), "utf8")).toBe("ALPHA\nALPHA\n");
    expect(warnings(r)).toHaveLength(2);
    expect(warnings(r).filter((w) => w.includes("//p:b"))).toEqual([
      `warning: the remote result of //p:b was made without a sandbox (sandbox: "none"), so it may depend on the host that made it; running it locally.`,
    ]);
    expect(warnings(r).filter((w) => w.includes("//p:a"))).toEqual([`warning: the remote result of //p:a names no sandbox results are shared from (sandbox: null); running it locally.`]);
  }, 120_000);

  it("a sealed spec of another machine under //sqlite-cli:sealed's key is a miss with one warning: sealed here, and run runs sqlite-cli", async () => {
    const repository = "acme/poisoned-machine";
    const cache = `oci://${reg.host}/${repository}`;
    const a = parse(await wmb(fx.workspace, ["build", "--json", "--store", fx.store, "//sqlite-cli:sealed"]));
    const sealedKey = a.actions.find((x) => x.label === "//sqlite-cli:sealed")!.key;
    // Another machine (its spec names "wordcount"), validly sealed, with the target's file names.
    const other = resealedMachine(join(fx.workspace, "wmb-out/sqlite-cli"), "sqlite-cli", (s: SealedSpec) => {
      s.name = "wordcount";
    });
    const dir = join(other, "..");
    await poison(
      new RegistryClient(reg.host),
      repository,
      sealedKey,
      "//sqlite-cli:sealed",
      Object.fromEntries(["sqlite-cli.json", "sqlite-cli.wasm", "sqlite-cli.rootfs.tar"].map((f) => [f, readFileSync(join(dir, f))])),
      { sandbox: "in-process" },
    );
    // Every other result of the closure, honestly.
    parse(await wmb(fx.workspace, ["build", "--json", "--store", fx.store, "--remote-upload", "//sqlite-cli:sealed"], { env: env(cache) }));

    const b = copyWorkspace();
    const store = freshStore();
    const r = await wmb(b, ["build", "--json", "--store", store, "//sqlite-cli:sealed"], { env: env(cache) });
    const built = parse(r);
    expect(Object.entries(statuses(built)).filter(([, s]) => s !== "remote")).toEqual([["//sqlite-cli:sealed", "executed"]]);
    expect(warnings(r)).toEqual([`warning: the remote result of //sqlite-cli:sealed is a sealed spec of the machine "wordcount", not of "sqlite-cli", the target's; running it locally.`]);
    const spec = JSON.parse(readFileSync(join(b, "wmb-out/sqlite-cli/sqlite-cli.json"), "utf8")) as SealedSpec;
    expect(spec.name).toBe("sqlite-cli");
    expect(built.actions.find((x) => x.label === "//sqlite-cli:sealed")!.outputs).toEqual(a.actions.find((x) => x.label === "//sqlite-cli:sealed")!.outputs);
    const run = await wmb(b, ["run", "--store", store, "//sqlite-cli:sealed", "--", "-version"], { env: env(cache) });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^3\.\d+\.\d+ /);
    expect(warnings(run)).toEqual([]);
  }, 600_000);
});
