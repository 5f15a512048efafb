// What the store serves stays what the sources build while gc, other builds, dead and foreign
// lock holders and kills run beside a build (#23).
import { describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { buildJson, executed, makeWorkspace, wmb, wmbSync, WMB, writeFiles } from "./helpers/cli.ts";
import { ActionLocks } from "../store/action-lock.ts";
import { formatIdentity, selfIdentity } from "../store/process-identity.ts";
import { Store } from "../store/store.ts";
import { StoreLock } from "../store/store-lock.ts";
import { hashFile, type ActionKey } from "../src/digest.ts";

const N = 8;
/** N actions reading v.txt, and one reading them all. */
function wideWorkspace(): string {
  return makeWorkspace({
    "p/v.txt": "0\n",
    "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  for (let i = 0; i < ${N}; i++) p.run({ name: "t" + i, srcs: ["v.txt"], outs: ["t" + i + ".txt"], cmd: "cat v.txt > t" + i + ".txt; echo " + i + " >> t" + i + ".txt" });
  p.run({ name: "all", srcs: Array.from({ length: ${N} }, (_, i) => ":t" + i), outs: ["all.txt"], cmd: "cat t*.txt > all.txt" });
};\n`,
  });
}

function expectedAll(v: string): string {
  return Array.from({ length: N }, (_, i) => `${v}\n${i}\n`).join("");
}

function index(ws: string): Database.Database {
  return new Database(join(ws, ".wmb/index.sqlite"), { readonly: true });
}

/** A workspace whose one action was built, then its result forgotten: the next build must run
 * it (and so take its lock, where a test plants one first). */
/** Resolves once some process holds the store lock of `storeDir` shared (a build's lease). */
async function untilLeased(storeDir: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (existsSync(join(storeDir, "store.lock"))) {
      const db = new Database(join(storeDir, "store.lock"), { timeout: 0 });
      try {
        db.exec("BEGIN EXCLUSIVE");
        db.exec("ROLLBACK");
      } catch {
        return; // busy: held
      } finally {
        db.close();
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no build took the lock of ${storeDir} within 30 s`);
}

function builtThenForgotten(): { ws: string; key: string } {
  const ws = makeWorkspace({
    "BUILD.ts": `export default (w) => { w.package("p").write({ name: "w", out: "w.txt", content: "w\\n" }); };\n`,
  });
  const key = JSON.parse(wmbSync(ws, ["build", "--json", "//p:w"]).stdout).actions[0].key as string;
  const db = new Database(join(ws, ".wmb/index.sqlite"));
  db.exec(`DELETE FROM build_actions; DELETE FROM action_results`);
  db.close();
  return { ws, key };
}

describe("store under gc, other builds and stale locks", () => {
  it("gc run beside builds, many times over, never takes what a build serves or has just written", async () => {
    const ws = wideWorkspace();
    expect(wmbSync(ws, ["build", "//p:all"]).code).toBe(0);
    for (let round = 0; round < 12; round++) {
      // Alternate among three versions: each build mixes cache hits (results gc may doom) and new work.
      const v = String(round % 3);
      writeFileSync(join(ws, "p/v.txt"), `${v}\n`);
      const build = wmb(ws, ["build", "//p:all"]);
      await new Promise((r) => setTimeout(r, (round % 4) * 40));
      const gc = wmb(ws, ["store", "gc", "--grace", "0", "--keep-builds", "0"]);
      const [b, g] = await Promise.all([build, gc]);
      expect(b.stderr, `round ${round}`).not.toMatch(/error|ENOENT|FOREIGN KEY/);
      expect([b.code, g.code], `round ${round}: ${b.stderr}${g.stderr}`).toEqual([0, 0]);
      expect(readFileSync(join(ws, "wmb-out/p/all.txt"), "utf8")).toBe(expectedAll(v));
      const fsck = wmbSync(ws, ["store", "fsck"]);
      expect(fsck.stdout, `round ${round}`).toContain("store OK");
    }
    // No build was left "running".
    const db = index(ws);
    expect(db.prepare(`SELECT count(*) AS n FROM builds WHERE status = 'running'`).get()).toEqual({ n: 0 });
    db.close();
  }, 240_000);

  it("gc waits for a running build and says so; a build starting meanwhile waits for gc", async () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => {
  w.package("p").run({ name: "slow", outs: ["slow.txt"], cmd: "sleep 6; echo slow > slow.txt" });
};\n`,
    });
    const t0 = Date.now();
    const build = wmb(ws, ["build", "//p:slow"]);
    // The build holds the store lock from its start: gc (started while it runs) waits for it.
    // Waited for by looking at the lock, not by sleeping: a loaded machine starts wmb late.
    await untilLeased(join(ws, ".wmb"));
    const gc = await wmb(ws, ["store", "gc", "--grace", "0", "--keep-builds", "0"]);
    const b = await build;
    expect(b.code).toBe(0);
    expect(gc.code).toBe(0);
    expect(gc.stderr).toContain("waiting for the builds using");
    expect(Date.now() - t0).toBeGreaterThan(2000);
    // The build's result was kept: it was served last for its label.
    expect(buildJson(ws, ["//p:slow"]).counts.executed).toBe(0);
    // While gc sweeps (the exclusive lock held here, as gc holds it), a build waits and says so.
    // The lock is given up only once the build says it waits (not after a sleep: a loaded
    // machine may start wmb after any fixed time), and the build must not end before that.
    const sweep = new StoreLock(join(ws, ".wmb"));
    sweep.exclusive();
    const child = spawn(process.execPath, [WMB, "build", "//p:slow"], { cwd: ws, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let endedWhileHeld = false;
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the build never said it waits for gc: ${stderr}`)), 45_000);
      child.stderr!.on("data", (b) => {
        stderr += b;
        if (stderr.includes("waiting for `wmb store gc`")) {
          clearTimeout(timer);
          resolve();
        }
      });
      void exited.then(() => {
        endedWhileHeld = true;
        clearTimeout(timer);
        resolve();
      });
    });
    expect(endedWhileHeld, stderr).toBe(false);
    sweep.close();
    expect(await exited).toBe(0);
  }, 90_000);

  it("re-admitting a blob refreshes its age, so gc's grace spares it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wmb-readmit-"));
    const store = await Store.open(dir);
    const { digest } = await store.putBytes(Buffer.from("same bytes"));
    store.close();
    const db = new Database(join(dir, "index.sqlite"));
    db.prepare(`UPDATE blobs SET created_at = 1000 WHERE digest = ?`).run(digest);
    db.close();
    const again = await Store.open(dir);
    await again.putBytes(Buffer.from("same bytes"));
    // Not reachable from any result or root, but young again: a 10-minute grace keeps it.
    const r = await again.gc({ keepBuilds: 0, graceMs: 600_000 });
    expect(r.blobsDeleted).toBe(0);
    expect(await again.checkBlob(digest)).toBe("ok");
    again.close();
  });

  it("gc's grace spares what was made a moment ago; --grace 0 frees it", () => {
    const ws = makeWorkspace({
      "p/v.txt": "one\n",
      "BUILD.ts": `export default (w) => { w.package("p").copy({ name: "c", srcs: ["v.txt"], src: "v.txt", out: "c.txt" }); };\n`,
    });
    expect(wmbSync(ws, ["build", "//p:c"]).code).toBe(0);
    writeFileSync(join(ws, "p/v.txt"), "two, another size\n");
    expect(wmbSync(ws, ["build", "//p:c"]).code).toBe(0);
    // The first result is reached by no kept build and no label's latest: only its age spares it.
    const spared = JSON.parse(wmbSync(ws, ["store", "gc", "--keep-builds", "1", "--json"]).stdout);
    expect(spared).toMatchObject({ blobsDeleted: 0, resultsDeleted: 0 });
    const freed = JSON.parse(wmbSync(ws, ["store", "gc", "--keep-builds", "1", "--grace", "0", "--json"]).stdout);
    expect(freed.resultsDeleted).toBe(1);
    expect(freed.blobsDeleted).toBeGreaterThan(0);
    expect(wmbSync(ws, ["store", "fsck"]).code).toBe(0);
  });

  it("an action's lock is released only once its result is committed", async () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => { w.package("p").run({ name: "s", outs: ["s.txt"], cmd: "sleep 1; echo s > s.txt" }); };\n`,
    });
    const locks = join(ws, ".wmb/locks");
    const build = wmb(ws, ["build", "//p:s"]);
    const lockFile = await new Promise<string>((resolve, reject) => {
      const t0 = Date.now();
      const look = () => {
        const name = existsSync(locks) ? readdirSync(locks).find((n) => n.endsWith(".lock")) : undefined;
        if (name) return resolve(join(locks, name));
        if (Date.now() - t0 > 20_000) return reject(new Error("no lock appeared"));
        setTimeout(look, 5);
      };
      look();
    });
    // Spin until the lock goes, then look at once: the result must be there for a waiter to find.
    const db = index(ws);
    const results = db.prepare(`SELECT count(*) AS n FROM action_results WHERE label = '//p:s'`);
    expect(results.get()).toEqual({ n: 0 });
    while (existsSync(lockFile)) {
      /* busy-wait: the window between an early release and the commit is a few milliseconds */
    }
    const row = results.get();
    db.close();
    expect(row).toEqual({ n: 1 });
    expect((await build).code).toBe(0);
  }, 30_000);

  it("a lock of another host makes a build wait, say so once, and `store unlock` breaks it", async () => {
    const { ws, key } = builtThenForgotten();
    writeFileSync(join(ws, `.wmb/locks/${key}.lock`), `4242 12345 0c0ffee0-boot other-host.example\n`);
    const waiting = wmb(ws, ["build", "//p:w"]);
    await new Promise((r) => setTimeout(r, 2500));
    const unlock = wmbSync(ws, ["store", "unlock"]);
    expect(unlock.code).toBe(0);
    expect(unlock.stdout).toContain("pid 4242 on other-host.example");
    const b = await waiting;
    expect(b.code).toBe(0);
    const said = b.stderr.split("\n").filter((l) => l.includes("waiting for //p:w"));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/held by pid 4242 on other-host\.example since \d{4}-.*wmb store unlock/);
    expect(readFileSync(join(ws, "wmb-out/p/w.txt"), "utf8")).toBe("w\n");
  }, 30_000);

  it("a lock naming a live process that is not its holder (a reused pid) is taken over at once", () => {
    const { ws, key } = builtThenForgotten();
    // This test's own pid is alive, but it did not start at this time: not the holder.
    const me = selfIdentity();
    writeFileSync(join(ws, `.wmb/locks/${key}.lock`), formatIdentity({ ...me, start: String(Number(me.start) + 1) }));
    const r = spawnSync(process.execPath, [WMB, "build", "--json", "//p:w"], { cwd: ws, encoding: "utf8", timeout: 15_000 });
    expect(r.status).toBe(0);
    expect(executed(JSON.parse(r.stdout))).toEqual(["//p:w"]);
    // gc sweeps such locks too.
    writeFileSync(join(ws, `.wmb/locks/${key}.lock`), formatIdentity({ ...me, start: "1" }));
    expect(JSON.parse(wmbSync(ws, ["store", "gc", "--json"]).stdout).staleLocks).toBe(1);
  }, 30_000);

  it("a lock naming this very process, which it does not hold, is a leftover: taken over", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wmb-ownpid-"));
    const key = "f".repeat(64) as ActionKey;
    const locks = new ActionLocks(dir);
    const first = await locks.acquire("e".repeat(64) as ActionKey, async () => undefined, new AbortController().signal);
    if (!first.held) throw new Error("not held");
    // As a process with this pid and start time left it (a container restarted with the same pid).
    writeFileSync(join(dir, `locks/${key}.lock`), formatIdentity(selfIdentity()));
    const t0 = Date.now();
    const a = await locks.acquire(key, async () => undefined, AbortSignal.timeout(5000));
    expect(a.held).toBe(true);
    expect(Date.now() - t0).toBeLessThan(4000);
    // One this process holds is not: a second acquire waits (until aborted).
    await expect(locks.acquire(key, async () => undefined, AbortSignal.timeout(400))).rejects.toThrow(/Interrupted/);
  });
});

describe("sandboxes of dead builds", () => {
  it("store gc removes the sandbox directories a SIGKILLed build left", async () => {
    const base = mkdtempSync(join(tmpdir(), "wmb-gc-sandboxes-"));
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => { w.package("p").run({ name: "slow", outs: ["s.txt"], cmd: "touch started; sleep 30; echo > s.txt" }); };\n`,
    });
    const child = spawn(process.execPath, [WMB, "build", "//p:slow"], { cwd: ws, stdio: "ignore", env: { ...process.env, WMB_SANDBOX_BASE: base } });
    const closed = new Promise((r) => child.on("close", r));
    const started = () => readdirSync(base).some((d) => readdirSync(join(base, d), { recursive: true }).some((f) => String(f).endsWith("started")));
    for (const t0 = Date.now(); !started(); ) {
      if (Date.now() - t0 > 20_000) throw new Error("the action did not start");
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGKILL");
    await closed;
    expect(readdirSync(base)).toHaveLength(1);
    const gc = wmbSync(ws, ["store", "gc", "--json"], { env: { WMB_SANDBOX_BASE: base } });
    expect(JSON.parse(gc.stdout).staleSandboxes).toBe(1);
    expect(readdirSync(base)).toEqual([]);
  }, 60_000);
});

/** Whether this process may mount a tmpfs in a mount namespace of its own (root, as in CI). */
const canMount = spawnSync("unshare", ["-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"]).status === 0;

describe("a full disk", () => {
  it.skipIf(!canMount)("a store that fills up mid-build fails with one sentence naming it, and fsck passes", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => { w.package("p").run({ name: "big", outs: ["big.bin"], cmd: "head -c 3000000 /dev/urandom > big.bin" }); };\n`,
    });
    const store = mkdtempSync(join(tmpdir(), "wmb-full-"));
    // A 1 MiB store, in a mount namespace of the test's own: gone when the shell ends.
    const script = `mount -t tmpfs -o size=1m tmpfs "$1" && node "$2" build --store "$1" //p:big; echo "build=$?" >&2; node "$2" store fsck --store "$1"`;
    const r = spawnSync("unshare", ["-m", "sh", "-c", script, "sh", store, WMB], { cwd: ws, encoding: "utf8" });
    expect(r.stderr).toContain("build=1");
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
    expect(errors).toEqual([`error: The store ${store} is out of disk space; free space on its disk (\`wmb store gc\` deletes what recent builds do not use) or move the store with --store or WMB_STORE.`]);
    expect(r.stdout).toContain("store OK");
    expect(r.status).toBe(0);
  });
});

describe("wmb-out", () => {
  it("after a failed -k build, a target served from the store is delivered", () => {
    const ws = makeWorkspace({
      "p/v.txt": "one\n",
      "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  p.copy({ name: "ok", srcs: ["v.txt"], src: "v.txt", out: "ok.txt" });
  p.run({ name: "bad", outs: ["bad.txt"], cmd: "exit 3" });
};\n`,
    });
    expect(wmbSync(ws, ["build", "//p:ok"]).code).toBe(0);
    writeFileSync(join(ws, "p/v.txt"), "two\n");
    expect(wmbSync(ws, ["build", "//p:ok"]).code).toBe(0);
    writeFileSync(join(ws, "p/v.txt"), "one\n");
    const r = wmbSync(ws, ["build", "-k", "//p:ok", "//p:bad"]);
    expect(r.code).not.toBe(0);
    expect(readFileSync(join(ws, "wmb-out/p/ok.txt"), "utf8")).toBe("one\n");
  });

  it("a re-delivered output with other mode bits gets its recorded mode", () => {
    const build = (executable: boolean) => {
      writeFiles(ws, { "BUILD.ts": `export default (w) => { w.package("p").write({ name: "x", out: "x.sh", content: "#!/bin/sh\\n", executable: ${executable} }); };\n` });
      expect(wmbSync(ws, ["build", "//p:x"]).code).toBe(0);
      return statSync(join(ws, "wmb-out/p/x.sh")).mode & 0o777;
    };
    const ws = makeWorkspace({});
    expect(build(true)).toBe(0o555);
    expect(build(false)).toBe(0o444);
    // Served from the store: the same bytes as wmb-out/ holds, with another mode.
    expect(build(true)).toBe(0o555);
  });

  it("after SIGKILL, wmb-out holds only outputs that a committed result names", async () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  for (let i = 0; i < 40; i++) p.run({ name: "t" + i, outs: ["t" + i + ".txt"], cmd: "echo " + i + " $(date +%N) > t" + i + ".txt" });
};\n`,
    });
    const targets = Array.from({ length: 40 }, (_, i) => `//p:t${i}`);
    expect(wmbSync(ws, ["build", ...targets]).code).toBe(0);
    for (let round = 0; round < 8; round++) {
      const child = spawn(process.execPath, [WMB, "build", "--no-cache", ...targets], { cwd: ws, stdio: "ignore" });
      const closed = new Promise((r) => child.on("close", r));
      await new Promise((r) => setTimeout(r, 400 + round * 50));
      child.kill("SIGKILL");
      await closed;
      const db = index(ws);
      const known = new Set((db.prepare(`SELECT digest FROM action_outputs`).all() as { digest: string }[]).map((r) => r.digest));
      db.close();
      const dir = join(ws, "wmb-out/p");
      for (const f of existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith(".txt")) : []) {
        const { digest } = await hashFile(join(dir, f));
        expect(known.has(digest), `round ${round}: ${f}`).toBe(true);
      }
    }
  }, 120_000);
});
