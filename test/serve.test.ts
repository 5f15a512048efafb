// `wmb serve` end to end: the CLI serves a copy of the shared sqlite-cli store; Debian's
// Chromium (playwright-core) reads the pages and runs the machine in a tab. Screenshots of every
// page go to test-artifacts/serve/ (WMB_TEST_ARTIFACTS moves them), to be looked at.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BrowserContext, Page } from "playwright-core";
import { buildJson, makeWorkspace, WMB, wmb } from "./helpers/cli.ts";
import { copyFixtureStore, copyWorkspace, sqliteFixture, type SqliteFixture } from "./helpers/sqlite-fixture.ts";
import { artifactDir, screenshot, startChromium } from "./helpers/browser.ts";
import { staticServer } from "./helpers/static-server.ts";
import { testKey } from "./helpers/test-keys.ts";
import { parsePublicKey } from "../src/trust/keys.ts";
import { Store } from "../store/store.ts";

interface Served {
  url: string;
  child: ChildProcess;
}

/** `wmb serve --port 0` as a user starts it; resolves once it printed its address. */
function startServe(store: string, workspace: string, extra: string[] = []): Promise<Served> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WMB, "serve", "--store", store, "--workspace", workspace, "--port", "0", ...extra], { cwd: workspace });
    let out = "";
    let err = "";
    child.stdout.on("data", (b) => {
      out += b;
      const m = /wmb serve: (http:\/\/[^\s/]+)\//.exec(out);
      if (m) resolve({ url: m[1]!, child });
    });
    child.stderr.on("data", (b) => (err += b));
    child.on("exit", (code) => reject(new Error(`wmb serve exited ${code}: ${err}`)));
    child.on("error", reject);
    setTimeout(() => reject(new Error(`wmb serve printed no address within 120 s: ${out}${err}`)), 120_000).unref();
  });
}

/** A GET with the path exactly as given (fetch would resolve `..` before sending it). */
function rawGet(base: string, path: string, headers: Record<string, string> = {}, method = "GET"): Promise<{ status: number; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      let body = "";
      res.on("data", (b) => (body += b));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

const SMALL_BUILD = (greeting: string) => `
export default (w) => {
  const ex = w.package("examples");
  ex.write({ name: "greeting", out: "greeting.txt", content: ${JSON.stringify(greeting)} });
  ex.run({ name: "shout", srcs: [":greeting"], outs: ["shout.txt"], cmd: "tr a-z A-Z < greeting.txt > shout.txt" });
};
`;

let fixture: SqliteFixture;
let store: string;
let served: Served;
let identity: string;
let small: string;
/** The sqlite-cli workspace the server reads BUILD.ts from (for the graph). */
let workspace: string;
const shots = artifactDir("serve");

beforeAll(async () => {
  fixture = await sqliteFixture();
  store = join(mkdtempSync(join(tmpdir(), "wmb-serve-store-")), "store");
  copyFixtureStore(fixture.store, store);
  // A signer the store verified at a pull (what /machines shows under "signed by").
  const s = await Store.open(store);
  for (const m of s.machines()) s.recordMachineSigners(m.identity, `sha256:${"5".repeat(64)}`, "pull", [parsePublicKey(testKey("ci-2026").pub, "the test key")]);
  s.close();
  small = makeWorkspace({ "BUILD.ts": SMALL_BUILD("hello\n") });
  workspace = copyWorkspace();
  served = await startServe(store, workspace);
  const machines = (await (await fetch(`${served.url}/api/machines`)).json()) as { identity: string; name: string }[];
  identity = machines.find((m) => m.name === "sqlite-cli")!.identity;
});

afterAll(() => {
  served?.child.kill();
});

describe("wmb serve: the server", () => {
  it("answers on loopback by default and only for its own host name", async () => {
    expect(served.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await rawGet(served.url, "/api/builds")).status).toBe(200);
    expect((await rawGet(served.url, "/api/builds", { host: "attacker.example" })).status).toBe(421);
    expect((await rawGet(served.url, "/api/builds", {}, "POST")).status).toBe(405);
  });

  it("refuses .. and encoded traversal in every path parameter, and serves nothing outside the store", async () => {
    const hex = identity.slice(7);
    const evil = ["..", "%2e%2e", "%2E%2E", "..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%5c..%5cetc", "%252e%252e", "a%2f..%2f..%2fb", "%00", "..;", "....//"];
    const templates = [
      (x: string) => `/builds/${x}`,
      (x: string) => `/api/builds/${x}`,
      (x: string) => `/api/builds/${x}/trace.json`,
      (x: string) => `/targets/${x}`,
      (x: string) => `/api/targets/${x}`,
      (x: string) => `/api/targets/examples:${x}/why`,
      (x: string) => `/machines/${x}`,
      (x: string) => `/api/machines/${x}`,
      (x: string) => `/machines/${x}/run`,
      (x: string) => `/api/machines/${x}/run.json`,
      (x: string) => `/machines/${identity}/blobs/${x}`,
      (x: string) => `/machines/${x}/blobs/${hex}`,
      (x: string) => `/assets/${x}`,
      (x: string) => `/assets/${x}/${x}/etc/passwd`,
      (x: string) => `/api/graph?label=${x}`,
      (x: string) => `/${x}/${x}/${x}/etc/passwd`,
    ];
    for (const t of templates) {
      for (const x of evil) {
        const r = await rawGet(served.url, t(x));
        expect([400, 404], `${t(x)} answered ${r.status}`).toContain(r.status);
        expect(r.body).not.toMatch(/root:|sqlite_version|"traceEvents"/);
      }
    }
    // A blob of the store that is not one of this machine's is not served either.
    const source = buildJson(small, ["--store", store, "//examples:greeting"]).actions[0]!.outputs!["greeting.txt"]!;
    expect((await rawGet(served.url, `/machines/${identity}/blobs/${source}`)).status).toBe(404);
    expect((await rawGet(served.url, `/machines/${identity}/blobs/${"0".repeat(64)}`)).status).toBe(404);
  });

  it("keeps a failed action's message in the build's history", async () => {
    const failing = makeWorkspace({ "BUILD.ts": `export default (w) => { w.package("bad").run({ name: "boom", outs: ["x"], cmd: "echo no disk here >&2; exit 3" }); };` });
    const r = await wmb(failing, ["build", "--store", store, "//bad:boom"]);
    expect(r.code).toBe(1);
    const { builds } = (await (await fetch(`${served.url}/api/builds?limit=1`)).json()) as { builds: { id: number; status: string; counts: { failed: number } }[] };
    expect(builds[0]!.status).toBe("failed");
    expect(builds[0]!.counts.failed).toBe(1);
    const { actions } = (await (await fetch(`${served.url}/api/builds/${builds[0]!.id}`)).json()) as { actions: { label: string; status: string; error?: string }[] };
    expect(actions).toEqual([expect.objectContaining({ label: "//bad:boom", status: "failed", error: expect.stringContaining("no disk here") })]);
  });

  it("pages the builds: `next` is the cursor of the older page", async () => {
    buildJson(small, ["--store", store, "//examples:shout"]);
    buildJson(small, ["--store", store, "//examples:shout"]);
    const first = (await (await fetch(`${served.url}/api/builds?limit=1`)).json()) as { builds: { id: number }[]; next: number; total: number };
    expect(first.builds).toHaveLength(1);
    const second = (await (await fetch(`${served.url}/api/builds?limit=1&before=${first.next}`)).json()) as { builds: { id: number }[] };
    expect(second.builds[0]!.id).toBeLessThan(first.builds[0]!.id);
    expect(first.total).toBeGreaterThanOrEqual(3);
  });
});

const chromium = await startChromium();
if (typeof chromium === "string") process.stdout.write(`skipped: the browser tests of wmb serve: ${chromium}\n`);
const browser = typeof chromium === "string" ? undefined : chromium;

describe.skipIf(!browser)("wmb serve: the pages in Chromium", () => {
  let page: Page;
  const ctx = browser as BrowserContext;
  beforeAll(async () => {
    page = await ctx.newPage();
  });
  afterAll(async () => {
    await ctx?.close();
  });

  const runPage = async (query: string): Promise<{ output: string; exit: string }> => {
    await page.goto(`${served.url}/machines/${identity}/run?${query}`);
    await page.waitForSelector("[data-exit], [data-refusal]", { timeout: 60_000 });
    return { output: (await page.textContent("[data-console]")) ?? "", exit: (await page.getAttribute("[data-exit]", "data-exit")) ?? "" };
  };

  it("lists a build just made, with its counts, and shows its actions on a timeline", async () => {
    const made = buildJson(small, ["--store", store, "//examples:shout", "--no-cache"]);
    const builds = (await (await fetch(`${served.url}/api/builds?limit=1`)).json()) as { builds: { id: number }[] };
    const id = builds.builds[0]!.id;
    expect(made.counts.executed).toBe(2);
    await page.goto(`${served.url}/builds`);
    const row = page.locator(`tr[data-build="${id}"]`);
    await row.waitFor();
    expect(await row.locator('[data-count="executed"]').textContent()).toBe("2");
    expect(await row.locator('[data-count="cached"]').textContent()).toBe("0");
    await screenshot(page, shots, "builds");

    await page.goto(`${served.url}/builds/${id}`);
    await page.waitForSelector("canvas[data-actions]");
    expect(await page.getAttribute("canvas", "data-actions")).toBe("2");
    expect(await page.locator("tr[data-action]").count()).toBe(2);
    expect(await page.textContent("main")).toContain("Critical path");
    await screenshot(page, shots, "build");

    const trace = (await (await fetch(`${served.url}/api/builds/${id}/trace.json`)).json()) as { traceEvents: { name: string; tid: number; ph: string }[] };
    expect(trace.traceEvents.filter((e) => e.tid > 0).map((e) => e.name).sort()).toEqual(["//examples:greeting", "//examples:shout"]);
  });

  it("shows a target's history and why its key changed", async () => {
    writeFileSync(join(small, "BUILD.ts"), SMALL_BUILD("hello again\n"));
    buildJson(small, ["--store", store, "//examples:shout"]);
    await page.goto(`${served.url}/targets/examples:greeting`);
    await page.waitForSelector(".why-table");
    const text = (await page.textContent("main"))!;
    expect(text).toContain("attrs.content");
    expect(text).toContain("hello again");
    await screenshot(page, shots, "target");
  });

  it("draws the graph of a closure coloured by last outcome", async () => {
    await page.goto(`${served.url}/graph?label=//sqlite-cli:sealed`);
    await page.waitForSelector("rect[data-node]");
    const nodes = await page.locator("rect[data-node]").count();
    expect(nodes).toBe(fixture.summary.actions.filter((a) => a.label.startsWith("//sqlite-cli:")).length);
    expect(await page.getAttribute('rect[data-node="//sqlite-cli:sealed"]', "data-outcome")).toMatch(/executed|cached/);
    await screenshot(page, shots, "graph");
  });

  it("lists the machines and shows one's spec and grant", async () => {
    await page.goto(`${served.url}/machines`);
    await page.waitForSelector(`tr[data-machine="${identity}"]`);
    expect(await page.textContent(`tr[data-machine="${identity}"] td.signed-by`)).toMatch(/^ci-2026 verified at pull \d{4}-\d\d-\d\d /);
    await screenshot(page, shots, "machines");
    await page.goto(`${served.url}/machines/${identity}`);
    await page.waitForSelector("dl.kv");
    expect(await page.textContent("main")).toContain("wasi:filesystem/preopens");
    expect(await page.textContent("div.signed-by")).toMatch(/^ci-2026verified at pull \d{4}-\d\d-\d\d .* · index sha256:5{5}… · ci-2026:/);
    await screenshot(page, shots, "machine");
  });

  it("runs //sqlite-cli:sealed in the tab: -version, then a query", async () => {
    const version = await runPage("args=-version");
    expect(version.output).toContain("3.52.0");
    expect(version.exit).toBe("0");
    await screenshot(page, shots, "run-version");
    const answer = await runPage(`args=${encodeURIComponent(':memory: "select 6*7;"')}`);
    expect(answer.output).toContain("42");
    await screenshot(page, shots, "run-query");
    const repeated = await runPage(`arg=:memory:&arg=${encodeURIComponent("select 'x' || (40+2);")}`);
    expect(repeated.output).toContain("x42");
    const piped = await runPage(`args=${encodeURIComponent("-list :memory:")}&stdin=${encodeURIComponent("select 'in' || (40+2);\n")}`);
    expect(piped.output).toContain("in42");
  });

  it("keeps /db in the origin-private file system across reloads, until cleared", async () => {
    const sql = `args=${encodeURIComponent(`/db/t.db "create table if not exists t(x); insert into t values(1); select 'rows=' || count(*) from t;"`)}`;
    expect((await runPage(sql)).output).toContain("rows=1");
    expect((await runPage(sql)).output).toContain("rows=2");
    // Everything but the declared writable path is the read-only rootfs.
    const outside = await runPage(`args=${encodeURIComponent(`:memory: ".output /escape.txt" "select 1;"`)}`);
    expect(outside.output).toMatch(/cannot open|read-only/i);
    await page.click("[data-clear]");
    await page.waitForSelector("text=Cleared");
    expect((await runPage(sql)).output).toContain("rows=1");
  });

  it("refuses a machine whose kernel blob was corrupted in the store, compiling nothing", async () => {
    const broken = join(mkdtempSync(join(tmpdir(), "wmb-serve-broken-")), "store");
    copyFixtureStore(store, broken);
    const other = await startServe(broken, workspace);
    try {
      const spec = (await (await fetch(`${other.url}/api/machines/${identity}`)).json()) as { spec: { kernel_ref: { digest: string } } };
      // Transpiled already (the runs above): the listing comes from the index, the kernel as stored.
      expect((await fetch(`${other.url}/api/machines/${identity}/run.json`)).status).toBe(200);
      const hex = spec.spec.kernel_ref.digest.slice(7);
      const blob = join(broken, "cas", hex.slice(0, 2), hex.slice(2));
      const bytes = readFileSync(blob);
      bytes[bytes.length >> 1] ^= 0xff;
      chmodSync(blob, 0o644);
      writeFileSync(blob, bytes);
      const tab = await ctx.newPage();
      let workers = 0;
      tab.on("worker", () => workers++);
      // Counts every way a page compiles WebAssembly (in the page; a worker would be seen above).
      await tab.addInitScript({
        content: `window.__compiled = 0;
          for (const name of ["compile", "instantiate", "compileStreaming", "instantiateStreaming"]) {
            const real = WebAssembly[name];
            WebAssembly[name] = (...a) => (window.__compiled++, real(...a));
          }
          const RealModule = WebAssembly.Module;
          WebAssembly.Module = function (...a) { window.__compiled++; return new RealModule(...a); };`,
      });
      await tab.goto(`${other.url}/machines/${identity}/run?args=-version`);
      await tab.waitForSelector("[data-refusal]", { timeout: 60_000 });
      const refusal = (await tab.textContent("[data-refusal]"))!;
      expect(refusal).toMatch(/^The kernel of sqlite-cli .* hashes to blake3:[0-9a-f]{64} but the spec says blake3:[0-9a-f]{64}; nothing was run\.$/);
      expect(await tab.locator("[data-console]").count()).toBe(0);
      expect(await tab.evaluate("window.__compiled")).toBe(0);
      expect(workers).toBe(0);
      await screenshot(tab, shots, "run-refused");
      await tab.close();
    } finally {
      other.child.kill();
    }
  });

  it("runs the same from an exported directory behind a plain static file server", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "wmb-serve-export-")), "site");
    const r = await wmb(workspace, ["serve", "--store", store, "--export", dir, identity]);
    expect(r.code, r.stderr).toBe(0);
    const host = await staticServer(dir);
    try {
      const tab = await ctx.newPage();
      await tab.goto(`${host.url}/index.html?args=-version`);
      await tab.waitForSelector("[data-exit], [data-refusal]", { timeout: 60_000 });
      expect(await tab.textContent("[data-console]")).toContain("3.52.0");
      await screenshot(tab, shots, "export-run");
      await tab.close();
    } finally {
      host.server.close();
    }
  });
});
