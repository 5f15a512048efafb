// Sandboxes and lanes of a build killed with SIGKILL (#23): they stay under the sandbox base
// until the next build sweeps them; a live build's are never swept, whatever else shares its
// pid. Real builds through the CLI on one WMB_SANDBOX_BASE.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeWorkspace, WMB, wmbSync } from "./helpers/cli.ts";
import { sweepDeadSandboxes } from "../src/sandbox-base.ts";
import { formatIdentity, selfIdentity } from "../store/process-identity.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function slowWorkspace(seconds: number): string {
  return makeWorkspace({
    "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  p.run({ name: "a", outs: ["a.txt"], cmd: "sleep ${seconds}; echo a > a.txt" });
  p.run({ name: "b", outs: ["b.txt"], cmd: "sleep ${seconds}; echo b > b.txt" });
};`,
  });
}

function startBuild(ws: string, base: string): ChildProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, WMB_SANDBOX_BASE: base };
  delete env.WMB_STORE;
  return spawn(process.execPath, [WMB, "build", "--sandbox", "none", "//p:a", "//p:b"], { cwd: ws, env, stdio: ["ignore", "ignore", "inherit"] });
}

/** The base's per-process directories and, in each, how many sandboxes and lanes it holds. */
function owners(base: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const d of readdirSync(base)) m.set(d, readdirSync(join(base, d)).filter((n) => n !== "owner"));
  return m;
}

/** Wait until a directory of the base other than `others` holds both actions' sandboxes and
 * their lanes (made when the commands start). */
async function runningDir(base: string, others: string[] = []): Promise<string> {
  for (let i = 0; i < 500; i++) {
    for (const [d, entries] of owners(base)) {
      const count = (prefix: string) => entries.filter((e) => e.startsWith(prefix)).length;
      if (!others.includes(d) && count("_p_") === 2 && count("lane-") === 2) return d;
    }
    await sleep(20);
  }
  throw new Error(`no build started its actions under ${base}: ${JSON.stringify([...owners(base)])}`);
}

describe("sandboxes of dead builds", () => {
  it("a build killed with SIGKILL leaves its sandboxes and lanes; the next build removes them and keeps a live build's", async () => {
    const base = mkdtempSync(join(tmpdir(), "wmb-sweep-base-"));
    const killed = startBuild(slowWorkspace(3), base);
    const dead = await runningDir(base);
    killed.kill("SIGKILL");
    await new Promise((resolve) => killed.on("close", resolve));
    await sleep(200);
    const left = owners(base).get(dead)!;
    expect(left.filter((e) => e.startsWith("_p_"))).toHaveLength(2); // both sandboxes
    expect(left.filter((e) => e.startsWith("lane-"))).toHaveLength(2);

    const live = startBuild(slowWorkspace(8), base); // long enough to outlive the next build on a loaded machine
    const liveDir = await runningDir(base, [dead]);
    const next = wmbSync(makeWorkspace({ "BUILD.ts": `export default (w) => { w.package("p").run({ name: "c", outs: ["c.txt"], cmd: "echo c > c.txt" }); };` }), ["build", "--sandbox", "none", "//p:c"], { env: { WMB_SANDBOX_BASE: base } });
    expect(next.code, next.stderr).toBe(0);
    expect(existsSync(join(base, dead))).toBe(false);
    expect(existsSync(join(base, liveDir))).toBe(true);
    const liveCode = await new Promise((resolve) => live.on("close", resolve));
    expect(liveCode).toBe(0); // its sandboxes were all there to the end
    expect(readdirSync(base)).toEqual([]); // and it removed its own directory
  }, 60_000);

  it("a directory whose owner's pid is alive but started at another time (pid reuse) is swept; the live owner's is not", () => {
    const base = mkdtempSync(join(tmpdir(), "wmb-sweep-base-"));
    const me = selfIdentity();
    const own = (name: string, identity: string) => {
      mkdirSync(join(base, name, "lane-x"), { recursive: true });
      writeFileSync(join(base, name, "owner"), identity + "\n");
    };
    own("wmb-run-live", formatIdentity(me));
    own("wmb-run-reused", formatIdentity({ ...me, start: String(Number(me.start) + 1) }));
    own("wmb-run-other-host", formatIdentity({ ...me, start: "1", host: `not-${me.host}` }));
    mkdirSync(join(base, "wmb-run-being-made")); // no owner file yet
    mkdirSync(join(base, "unrelated"));
    expect(sweepDeadSandboxes(base)).toBe(1);
    expect(readdirSync(base).sort()).toEqual(["unrelated", "wmb-run-being-made", "wmb-run-live", "wmb-run-other-host"]);
    rmSync(base, { recursive: true, force: true });
  });
});
