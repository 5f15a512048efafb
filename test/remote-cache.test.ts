// A shared remote action cache in a real OCI registry (Debian's docker-registry on 127.0.0.1):
// "machine A" builds and uploads, "machine B" (another checkout, another store) builds from it
// without executing, without the compiler and without the bytes it does not need; failures of
// the remote (corrupt blobs, a registry that stops mid-build) fall back to local execution; a
// poisoned entry is named by `verify --against`.
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeWorkspace, wmb, type CliResult } from "./helpers/cli.ts";
import { copyWorkspace, sqliteFixture, type SqliteFixture } from "./helpers/sqlite-fixture.ts";
import { registryInstalled, startRegistry, type TestRegistry } from "./helpers/registry.ts";
import { probeBwrap } from "../src/sandbox-bwrap.ts";
import { RegistryClient, sha256Of } from "../src/remote/oci/client.ts";
import { publishResult } from "../src/remote/action-cache.ts";
import { hashBytes } from "../src/digest.ts";
import type { ActionKey } from "../src/digest.ts";

const bwrapWorks = (await probeBwrap()).ok;

interface BuildJson {
  ok: boolean;
  counts: Record<string, number>;
  toolchain_used: boolean;
  remote?: { lookups: number; hits: number; downloaded_blobs: number; downloaded_bytes: number; uploaded: number; not_uploaded_unsandboxed: number };
  actions: { label: string; key: string; status: string; outputs?: Record<string, string> }[];
}

function freshStore(): string {
  return join(mkdtempSync(join(tmpdir(), "wmb-remote-store-")), "store");
}

function parse(r: CliResult): BuildJson {
  if (r.code !== 0) throw new Error(`wmb exited ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as BuildJson;
}

/** Warnings, less the one every build with remote hits and no trusted keys gives (#25). */
function warnings(r: CliResult): string[] {
  return r.stderr.split("\n").filter((l) => l.startsWith("warning:") && !UNAUTHENTICATED.test(l));
}
const UNAUTHENTICATED = /unauthenticated: no trusted keys are configured/;

function sha256OfBlob(store: string, blake3: string): string {
  return createHash("sha256").update(readFileSync(join(store, "cas", blake3.slice(0, 2), blake3.slice(2)))).digest("hex");
}

/** A small graph: a (write) -> b (run) -> c (run), each output distinct. */
function smallWorkspace(): string {
  return makeWorkspace({
    "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  p.write({ name: "a", out: "a.txt", content: "alpha\\n" });
  p.run({ name: "b", srcs: [":a", "b.src"], outs: ["b.txt"], cmd: "touch started; sleep 1; cat a.txt b.src > b.txt" });
  p.run({ name: "c", srcs: [":b"], outs: ["c.txt"], cmd: "tr a-z A-Z < b.txt > c.txt" });
};\n`,
    "p/b.src": "beta\n",
  });
}

describe.skipIf(!registryInstalled)("a remote cache in an OCI registry", () => {
  let fx: SqliteFixture;
  let reg: TestRegistry;
  const env = (url: string, extra: Record<string, string> = {}) => ({ WMB_REMOTE_CACHE: url, DOCKER_CONFIG: mkdtempSync(join(tmpdir(), "wmb-docker-")), ...extra });

  beforeAll(async () => {
    [fx, reg] = await Promise.all([sqliteFixture(), startRegistry()]);
  }, 600_000);
  afterAll(async () => reg?.stop());

  it("machine B builds //sqlite-cli:sealed from A's uploads: nothing executed, no compiler, no .o fetched, the same identity", async () => {
    const cache = `oci://${reg.host}/acme/wmb-cache`;
    const a = parse(await wmb(fx.workspace, ["build", "--json", "--store", fx.store, "--remote-upload", "//sqlite-cli:sealed"], { env: env(cache) }));
    expect(a.remote!.uploaded).toBe(a.actions.length);
    const b = copyWorkspace();
    const bStore = freshStore();
    const fromB = await wmb(b, ["build", "--json", "--store", bStore, "//sqlite-cli:sealed"], { env: env(cache) });
    const built = parse(fromB);
    // No trusted keys: said once that the results taken are unauthenticated.
    expect(fromB.stderr.split("\n").filter((l) => UNAUTHENTICATED.test(l))).toEqual([
      `warning: the ${a.actions.length} results taken from ${cache} are unauthenticated: no trusted keys are configured, so anyone who can push there decides them (set trusted_keys in wmb.json or WMB_TRUSTED_KEYS; see docs/TRUST.md).`,
    ]);
    expect(built.counts).toMatchObject({ executed: 0, cached: 0, remote: a.actions.length });
    expect(built.toolchain_used).toBe(false);
    const sealed = (s: BuildJson) => s.actions.find((x) => x.label === "//sqlite-cli:sealed")!.outputs;
    expect(sealed(built)).toEqual(sealed(a));
    // Only the three sealed outputs came down: not sqlite3.o, not the core module.
    const outs = Object.values(sealed(a)!);
    expect(built.remote!.downloaded_blobs).toBe(new Set(outs).size);
    const objects = a.actions.filter((x) => x.label.startsWith("//sqlite-cli:wasm")).flatMap((x) => Object.values(x.outputs!));
    const fetched = reg.requests().filter((r) => r.method === "GET" && r.path.includes("/blobs/")).map((r) => r.path);
    for (const o of objects) expect(fetched).not.toContain(`/v2/acme/wmb-cache/blobs/sha256:${sha256OfBlob(fx.store, o)}`);
    expect(readFileSync(join(b, "wmb-out/sqlite-cli/sqlite-cli.json"), "utf8")).toBe(readFileSync(join(fx.workspace, "wmb-out/sqlite-cli/sqlite-cli.json"), "utf8"));
    // The machine runs in B, and history knows where its results came from.
    const run = await wmb(b, ["run", "--store", bStore, "//sqlite-cli:sealed", "--", "-version"], { env: env(cache) });
    expect(run.stdout).toMatch(/^3\.\d+\.\d+ /);
    const history = JSON.parse((await wmb(b, ["query", "history", "--json", "--store", bStore, "//sqlite-cli:wasm_sqlite3"])).stdout) as { history: unknown[] };
    expect(history.history).toHaveLength(1);

    // Changing only the rootfs's /.sqliterc in B runs exactly rootfs, spec and sealed.
    writeFileSync(join(b, "sqlite-cli/rootfs/.sqliterc"), ".mode csv\n");
    const edited = parse(await wmb(b, ["build", "--json", "--store", bStore, "//sqlite-cli:sealed"], { env: env(cache) }));
    expect(edited.actions.filter((x) => x.status === "executed").map((x) => x.label).sort()).toEqual(["//sqlite-cli:rootfs", "//sqlite-cli:sealed", "//sqlite-cli:spec"]);
    expect(edited.toolchain_used).toBe(false);
  }, 600_000);

  it("a result blob corrupted in the registry's storage: that action runs locally, a warning names it, the build succeeds", async () => {
    const own = await startRegistry();
    try {
      const cache = `oci://${own.host}/acme/wmb-cache`;
      const a = parse(await wmb(fx.workspace, ["build", "--json", "--store", fx.store, "--remote-upload", "//sqlite-cli:sealed"], { env: env(cache) }));
      const [rootfs] = Object.values(a.actions.find((x) => x.label === "//sqlite-cli:rootfs")!.outputs!);
      const sha = sha256OfBlob(fx.store, rootfs!);
      const data = join(own.storageRoot, "docker/registry/v2/blobs/sha256", sha.slice(0, 2), sha, "data");
      const bytes = readFileSync(data);
      bytes[10] ^= 0xff;
      writeFileSync(data, bytes);
      const b = copyWorkspace();
      const r = await wmb(b, ["build", "--json", "--store", freshStore(), "//sqlite-cli:sealed"], { env: env(cache) });
      const built = parse(r);
      expect(warnings(r).some((w) => w.includes("//sqlite-cli:rootfs") && w.includes("running it locally"))).toBe(true);
      expect(built.actions.find((x) => x.label === "//sqlite-cli:sealed")!.outputs).toEqual(a.actions.find((x) => x.label === "//sqlite-cli:sealed")!.outputs);
    } finally {
      await own.stop();
    }
  }, 600_000);

  describe.skipIf(!bwrapWorks)("with a small graph", () => {
    it("a registry stopped mid-build: one warning, the rest built locally, the same outputs", async () => {
      const own = await startRegistry();
      const cache = `oci://${own.host}/team/cache`;
      const wsA = smallWorkspace();
      const a = parse(await wmb(wsA, ["build", "--json", "--remote-upload", "//p:a"], { env: env(cache) }));
      expect(a.remote!.uploaded).toBe(1);
      const full = parse(await wmb(wsA, ["build", "--json", "//p:c"], { env: env(cache) }));
      // B: //p:a comes from the remote; while //p:b runs, the registry goes away.
      const wsB = smallWorkspace();
      const tmp = mkdtempSync(join(tmpdir(), "wmb-midbuild-"));
      const building = wmb(wsB, ["build", "--json", "//p:c"], { env: env(cache, { WMB_SANDBOX_BASE: tmp }) });
      const t0 = Date.now();
      // Each build keeps its sandboxes in a directory of its own under the sandbox base.
      const started = () => readdirSync(tmp).some((p) => readdirSync(join(tmp, p)).some((d) => existsSync(join(tmp, p, d, "started"))));
      while (!started()) {
        if (Date.now() - t0 > 20_000) throw new Error("//p:b never started");
        await new Promise((r) => setTimeout(r, 20));
      }
      await own.stop();
      const r = await building;
      const b = parse(r);
      expect(Object.fromEntries(b.actions.map((x) => [x.label, x.status]))).toEqual({ "//p:a": "remote", "//p:b": "executed", "//p:c": "executed" });
      expect(b.actions.find((x) => x.label === "//p:c")!.outputs).toEqual(full.actions.find((x) => x.label === "//p:c")!.outputs);
      const cacheWarnings = warnings(r).filter((w) => w.includes(cache));
      expect(cacheWarnings).toHaveLength(1);
      expect(cacheWarnings[0]).toMatch(/cannot be used \(Cannot reach .*\); building locally/);
    }, 120_000);

    it("uploads only sandboxed results; why and history work for results from the remote", async () => {
      const cache = `oci://${reg.host}/team/sandboxed`;
      const wsA = smallWorkspace();
      const unsandboxed = await wmb(wsA, ["build", "--json", "--sandbox", "none", "--remote-upload", "//p:c"], { env: env(cache) });
      expect(parse(unsandboxed).remote).toMatchObject({ uploaded: 1, not_uploaded_unsandboxed: 2 });
      expect(warnings(unsandboxed).join("\n")).toMatch(/2 results were not uploaded: made by host commands without the bwrap sandbox/);
      const sandboxed = parse(await wmb(wsA, ["build", "--json", "--no-cache", "--remote-upload", "//p:c"], { env: env(cache) }));
      expect(sandboxed.remote!.uploaded).toBe(2);
      const wsB = smallWorkspace();
      expect(parse(await wmb(wsB, ["build", "--json", "//p:c"], { env: env(cache) })).counts).toMatchObject({ remote: 3, executed: 0 });
      writeFileSync(join(wsB, "p/b.src"), "beta two\n");
      const again = parse(await wmb(wsB, ["build", "--json", "//p:c"], { env: env(cache) }));
      expect(again.actions.filter((x) => x.status === "executed").map((x) => x.label)).toEqual(["//p:b", "//p:c"]);
      const why = JSON.parse((await wmb(wsB, ["why", "--json", "//p:b"])).stdout) as { changes: { path: string }[] };
      expect(why.changes.map((c) => c.path)).toEqual(["inputs.b.src"]);
      // A no-op with the remote configured asks the registry nothing.
      const before = reg.requests().length;
      expect(parse(await wmb(wsB, ["build", "--json", "//p:c"], { env: env(cache) })).counts.executed).toBe(0);
      expect(reg.requests().length).toBe(before);
    }, 120_000);

    it("verify --against names a poisoned entry: valid digests, wrong content for its key", async () => {
      const cache = `oci://${reg.host}/team/poisoned`;
      const ws = smallWorkspace();
      const a = parse(await wmb(ws, ["build", "--json", "--remote-upload", "//p:c"], { env: env(cache) }));
      const c = a.actions.find((x) => x.label === "//p:c")!;
      // Someone with push rights replaces //p:c's result with other (self-consistent) bytes.
      const poison = new TextEncoder().encode("NOT WHAT TR MAKES\n");
      const client = new RegistryClient(reg.host);
      const sha = sha256Of(poison);
      await client.pushBlob("team/poisoned", sha, poison.length, { bytes: poison });
      const blake3 = hashBytes(poison);
      await publishResult(
        client,
        "team/poisoned",
        { action_key: c.key as ActionKey, label: "//p:c", rule: "run@1", key_inputs: "{}", sandbox: "bwrap", outputs: { "c.txt": { blake3, sha256: sha, size: poison.length, executable: false } } },
        [{ mediaType: "application/octet-stream", digest: sha, size: poison.length, annotations: { "dev.wmb.blake3": blake3 } }],
      );
      const r = await wmb(ws, ["verify", "--json", "//p:c", "--against", cache], { env: env(cache) });
      expect(r.code).toBe(1);
      const report = JSON.parse(r.stdout) as { differing: string[]; actions: { label: string; status: string; paths?: string[] }[] };
      expect(report.differing).toEqual(["//p:c"]);
      expect(report.actions.find((x) => x.label === "//p:c")).toMatchObject({ status: "differs", paths: ["c.txt"] });
      expect(report.actions.filter((x) => x.status === "same").map((x) => x.label).sort()).toEqual(["//p:a", "//p:b"]);
    }, 120_000);
  });
});
