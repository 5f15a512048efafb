// The store under stress: concurrent writers, kill -9, flipped bytes, gc.
import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { buildJson, executed, makeWorkspace, wmb, wmbSync, WMB } from "./helpers/cli.ts";
import { hashBytes, hashBytesReference, hashFile, type ActionKey } from "../src/digest.ts";
import { ActionLocks } from "../store/action-lock.ts";

/** The action sandboxes under a sandbox base: each process keeps its own in a directory there. */
function sandboxesUnder(base: string): string[] {
  return readdirSync(base).flatMap((p) => readdirSync(join(base, p)).map((d) => join(base, p, d)));
}

/** Wait for the slow action to start: it touches `started` in its own sandbox directory, which
 * lives under the WMB_SANDBOX_BASE the build was given (the action, sandboxed, sees no other host path). */
async function waitForStart(tmp: string, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  const started = () => sandboxesUnder(tmp).some((d) => existsSync(join(d, "started")));
  while (!started()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for the action to start in ${tmp}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function slowWorkspace(): string {
  return makeWorkspace({
    "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  p.write({ name: "fast", out: "fast.txt", content: "fast\\n" });
  p.run({ name: "slow", srcs: [":fast"], outs: ["slow.txt"], cmd: "touch started; sleep 4; cp fast.txt slow.txt" });
};\n`,
  });
}

describe("store", () => {
  it("BLAKE3 digests equal @noble/hashes' for many sizes", async () => {
    for (const n of [0, 1, 63, 64, 1023, 1024, 1025, 4096, 65537, 1 << 20, (1 << 20) + 7]) {
      const data = randomBytes(n);
      expect(hashBytes(data)).toBe(hashBytesReference(data));
    }
    const big = randomBytes(3 << 20);
    const f = join(tmpdir(), `wmb-hash-${process.pid}`);
    writeFileSync(f, big);
    expect((await hashFile(f)).digest).toBe(hashBytesReference(big));
  });

  it("action locks share one holder file per process, written again when removed from under it", async () => {
    const store = mkdtempSync(join(tmpdir(), "wmb-locks-"));
    const signal = new AbortController().signal;
    const take = async (key: string) => {
      const a = await new ActionLocks(store).acquire(key as ActionKey, async () => undefined, signal);
      if (!a.held) throw new Error("not held");
      return a;
    };
    const first = await take("k1");
    await take("k2"); // another instance (another build of a verify), the same holder
    expect(readdirSync(join(store, "locks")).filter((n) => n.startsWith("holder-"))).toHaveLength(1);
    await first.release();
    rmSync(join(store, "locks"), { recursive: true });
    await take("k3");
    expect(readdirSync(join(store, "locks")).map((n) => (n.startsWith("holder-") ? "holder" : n)).sort()).toEqual(["holder", "k3.lock"]);
  });

  it("two builds on one store at once both succeed", async () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  for (let i = 0; i < 12; i++) p.run({ name: "t" + i, outs: ["t" + i + ".txt"], cmd: "sleep 0.1; echo " + i + " > t" + i + ".txt" });
  p.run({ name: "all", srcs: Array.from({ length: 12 }, (_, i) => ":t" + i), outs: ["all.txt"], cmd: "cat t*.txt > all.txt" });
};\n`,
    });
    const [a, b] = await Promise.all([wmb(ws, ["build", "--json", "//p:all"]), wmb(ws, ["build", "--json", "//p:all"])]);
    expect(a.stderr + b.stderr).not.toContain("error");
    expect([a.code, b.code]).toEqual([0, 0]);
    // Each action ran once: the second build waited for the first's results (and vice versa).
    const ran = [a, b].flatMap((r) => (JSON.parse(r.stdout) as { actions: { label: string; status: string }[] }).actions.filter((x) => x.status === "executed").map((x) => x.label));
    expect(ran.sort()).toEqual([...Array.from({ length: 12 }, (_, i) => `//p:t${i}`), "//p:all"].sort());
    expect(wmbSync(ws, ["store", "fsck"]).code).toBe(0);
    expect(buildJson(ws, ["//p:all"]).counts.executed).toBe(0);
  });

  it("after kill -9 mid-action, fsck passes and the next build reuses what was done", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "wmb-slow-"));
    const ws = slowWorkspace();
    const child = spawn(process.execPath, [WMB, "build", "//p:slow"], { cwd: ws, stdio: "ignore", env: { ...process.env, WMB_SANDBOX_BASE: tmp } });
    await waitForStart(tmp);
    child.kill("SIGKILL");
    await new Promise((r) => child.on("close", r));
    const fsck = wmbSync(ws, ["store", "fsck"]);
    expect(fsck.stdout).toContain("store OK");
    expect(fsck.code).toBe(0);
    // The dead build's action lock (a link to its holder file) is swept by gc, with the holder
    // file (the lock would also be taken over by the next build).
    expect(readdirSync(join(ws, ".wmb/locks")).map((n) => n.replace(/^holder-.*/, "holder")).sort()).toEqual([expect.stringMatching(/\.lock$/), "holder"]);
    expect(JSON.parse(wmbSync(ws, ["store", "gc", "--json"]).stdout).staleLocks).toBe(1);
    expect(readdirSync(join(ws, ".wmb/locks"))).toEqual([]);
    const b = buildJson(ws, ["//p:slow"]);
    expect(executed(b)).toEqual(["//p:slow"]);
    expect(readFileSync(join(ws, "wmb-out/p/slow.txt"), "utf8")).toBe("fast\n");
  });

  it("a build waiting for another's action takes it over when that holder is killed with SIGKILL", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "wmb-slow-"));
    const ws = slowWorkspace();
    const env = { ...process.env, WMB_SANDBOX_BASE: tmp };
    const holder = spawn(process.execPath, [WMB, "build", "//p:slow"], { cwd: ws, stdio: "ignore", env });
    await waitForStart(tmp);
    const waiting = wmb(ws, ["build", "--json", "//p:slow"], { env: { WMB_SANDBOX_BASE: tmp } });
    await new Promise((r) => setTimeout(r, 1000));
    // The second build has not started the action: it waits for the holder.
    expect(sandboxesUnder(tmp).filter((d) => existsSync(join(d, "started")))).toHaveLength(1);
    holder.kill("SIGKILL");
    const r = await waiting;
    expect(r.code).toBe(0);
    expect(executed(JSON.parse(r.stdout))).toEqual(["//p:slow"]);
    expect(readFileSync(join(ws, "wmb-out/p/slow.txt"), "utf8")).toBe("fast\n");
  });

  it("Ctrl-C stops the running action, exits 130, and leaves the store consistent", async () => {
    const tmp = mkdtempSync(join(tmpdir(), "wmb-slow-"));
    const ws = slowWorkspace();
    const child = spawn(process.execPath, [WMB, "build", "//p:slow"], { cwd: ws, stdio: "ignore", env: { ...process.env, WMB_SANDBOX_BASE: tmp } });
    await waitForStart(tmp);
    const t0 = Date.now();
    child.kill("SIGINT");
    const code = await new Promise((r) => child.on("close", r));
    expect(code).toBe(130);
    expect(Date.now() - t0).toBeLessThan(3500); // did not wait for the 4 s sleep
    expect(wmbSync(ws, ["store", "fsck"]).code).toBe(0);
    expect(buildJson(ws, ["//p:slow"]).counts.executed).toBe(1);
  });

  it("a flipped byte in a blob is found by fsck and never served: the action reruns", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  p.write({ name: "a", out: "a.txt", content: "precious bytes\\n" });
  p.run({ name: "b", srcs: [":a"], outs: ["b.txt"], cmd: "cat a.txt a.txt > b.txt" });
};\n`,
    });
    const first = buildJson(ws, ["//p:b"]);
    const digest = first.actions.find((a) => a.label === "//p:a")!.outputs!["a.txt"]!;
    const blob = join(ws, ".wmb/cas", digest.slice(0, 2), digest.slice(2));
    chmodSync(blob, 0o644);
    const bytes = readFileSync(blob);
    bytes[0] = bytes[0]! ^ 0xff;
    writeFileSync(blob, bytes);

    const fsck = wmbSync(ws, ["store", "fsck", "--json"]);
    expect(fsck.code).toBe(1);
    expect(JSON.parse(fsck.stdout).corrupt).toEqual([digest]);

    const again = buildJson(ws, ["//p:b"]);
    expect(executed(again)).toContain("//p:a");
    expect(readFileSync(join(ws, "wmb-out/p/b.txt"), "utf8")).toBe("precious bytes\nprecious bytes\n");
    expect(wmbSync(ws, ["store", "fsck"]).code).toBe(0);
  });

  it("fsck --repair drops a corrupt blob so the next build recreates it", () => {
    const ws = makeWorkspace({ "BUILD.ts": `export default (w) => { w.package("p").write({ name: "a", out: "a.txt", content: "x\\n" }); };\n` });
    const d = buildJson(ws, ["//p:a"]).actions[0]!.outputs!["a.txt"]!;
    const blob = join(ws, ".wmb/cas", d.slice(0, 2), d.slice(2));
    chmodSync(blob, 0o644);
    writeFileSync(blob, "y\n");
    expect(wmbSync(ws, ["store", "fsck", "--repair"]).code).toBe(0);
    expect(wmbSync(ws, ["store", "fsck"]).code).toBe(0);
    expect(buildJson(ws, ["//p:a"]).counts.executed).toBe(1);
  });

  it("fsck reports an orphaned blob (a crash between rename and insert) and --repair adopts it when whole", () => {
    const ws = makeWorkspace({ "BUILD.ts": `export default (w) => { w.package("p").write({ name: "a", out: "a.txt", content: "x\\n" }); };\n` });
    buildJson(ws, ["//p:a"]);
    const whole = Buffer.from("an orphan's bytes\n");
    const d = hashBytesReference(whole);
    mkdirSync(join(ws, ".wmb/cas", d.slice(0, 2)), { recursive: true });
    writeFileSync(join(ws, ".wmb/cas", d.slice(0, 2), d.slice(2)), whole);
    const bogus = "ab".repeat(32);
    mkdirSync(join(ws, ".wmb/cas/ab"), { recursive: true });
    writeFileSync(join(ws, ".wmb/cas/ab", bogus.slice(2)), "not what the name says");
    const r = JSON.parse(wmbSync(ws, ["store", "fsck", "--json"]).stdout);
    expect(r.orphaned.sort()).toEqual([d, bogus].sort());
    expect(r.clean).toBe(true); // orphans waste space but break nothing
    expect(wmbSync(ws, ["store", "fsck", "--repair"]).code).toBe(0);
    const after = JSON.parse(wmbSync(ws, ["store", "stats", "--json"]).stdout);
    expect(after.blobs).toBe(2); // a.txt and the adopted orphan; the bogus file is gone
    expect(existsSync(join(ws, ".wmb/cas/ab", bogus.slice(2)))).toBe(false);
  });

  it("gc keeps what the last builds reach, frees the rest, and keeps the history", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => { w.package("p").run({ name: "a", srcs: ["in.txt"], outs: ["a.txt"], cmd: "cat in.txt in.txt > a.txt" }); };\n`,
      "p/in.txt": "v1 ".repeat(1000),
    });
    buildJson(ws, ["//p:a"]);
    writeFileSync(join(ws, "p/in.txt"), "v2 ".repeat(1000));
    buildJson(ws, ["//p:a"]);
    const r = JSON.parse(wmbSync(ws, ["store", "gc", "--keep-builds", "1", "--grace", "0", "--json"]).stdout);
    expect(r.bytesFreed).toBeGreaterThanOrEqual(6000);
    expect(r.resultsDeleted).toBe(1);
    expect(buildJson(ws, ["//p:a"]).counts.executed).toBe(0); // the kept build's result still serves
    expect(wmbSync(ws, ["store", "fsck"]).code).toBe(0);
    const h = JSON.parse(wmbSync(ws, ["query", "history", "//p:a", "--json"]).stdout);
    expect(h.history).toHaveLength(2);
  });

  it("refuses a source that is a symlink out of the workspace", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => { w.package("p").run({ name: "a", srcs: ["link.txt"], outs: ["a"], cmd: "cp link.txt a" }); };\n`,
      "p/other.txt": "",
    });
    const secret = join(tmpdir(), `wmb-secret-${randomBytes(4).toString("hex")}`);
    writeFileSync(secret, "secret");
    symlinkSync(secret, join(ws, "p/link.txt"));
    const r = wmbSync(ws, ["build", "//p:a"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("p/link.txt");
    expect(r.stderr).toContain("outside the workspace");
    expect(existsSync(join(ws, "wmb-out/p/a"))).toBe(false);
    // The secret's bytes never entered the store.
    expect(JSON.parse(wmbSync(ws, ["store", "stats", "--json"]).stdout).blobs).toBe(0);
  });

  it("--store and WMB_STORE move the store", () => {
    const ws = makeWorkspace({ "BUILD.ts": `export default (w) => { w.package("p").write({ name: "a", out: "a.txt", content: "x" }); };\n` });
    const elsewhere = join(tmpdir(), `wmb-store-${randomBytes(4).toString("hex")}`);
    expect(buildJson(ws, ["--store", elsewhere, "//p:a"]).counts.executed).toBe(1);
    expect(existsSync(join(elsewhere, "index.sqlite"))).toBe(true);
    expect(existsSync(join(ws, ".wmb"))).toBe(false);
    expect(buildJson(ws, ["//p:a"], { WMB_STORE: elsewhere }).counts.executed).toBe(0);
  });
});
