// A command's stdout and stderr (#23): wmb keeps their last 64 KiB, never the whole, and a
// command may write at most 64 MiB to them; past that it is killed and fails with a sentence.
// wmb's peak memory is read from /proc while it runs (a slow action keeps it running after the
// large one, so its peak is seen).
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeWorkspace, WMB } from "./helpers/cli.ts";

interface Measured {
  code: number;
  stderr: string;
  /** wmb's peak resident memory (VmHWM), in MiB. */
  peakMiB: number;
}

/** `wmb build` with `cmd` as //p:big next to a one-second //p:slow, --keep-going. */
function buildMeasured(cmd: string, base: string): Promise<Measured> {
  const ws = makeWorkspace({
    "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  p.run({ name: "big", outs: ["big.txt"], cmd: ${JSON.stringify(`${cmd}; echo done > big.txt`)} });
  p.run({ name: "slow", outs: ["slow.txt"], cmd: "sleep 1; echo done > slow.txt" });
};`,
  });
  const env: NodeJS.ProcessEnv = { ...process.env, WMB_SANDBOX_BASE: base };
  delete env.WMB_STORE;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [WMB, "build", "--sandbox", "none", "--keep-going", "//p:big", "//p:slow"], { cwd: ws, env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let peakKiB = 0;
    child.stderr.on("data", (b) => (stderr += b));
    const poll = setInterval(() => {
      try {
        const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
        if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
      } catch {
        /* exited */
      }
    }, 10);
    child.on("close", (code) => {
      clearInterval(poll);
      resolve({ code: code ?? -1, stderr, peakMiB: peakKiB / 1024 });
    });
  });
}

async function emptied(dir: string): Promise<string[]> {
  for (let i = 0; i < 100 && readdirSync(dir).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
  return readdirSync(dir);
}

const base = () => mkdtempSync(join(tmpdir(), "wmb-output-base-"));

describe("what a command writes to stdout and stderr", () => {
  it("300 MB of stdout: the command is killed and fails with one sentence, wmb's memory stays flat, the sandbox base is left empty", async () => {
    const small = await buildMeasured("echo small", base());
    expect(small.code, small.stderr).toBe(0);
    const where = base();
    const big = await buildMeasured("head -c 300000000 /dev/zero | tr '\\0' x", where);
    expect(big.code).toBe(1);
    expect(big.stderr).toContain("//p:big failed: command was killed after writing more than 64 MiB to stdout and stderr, the most a command may (write large output to a file, or to /dev/null)");
    expect(big.stderr).toContain("built //p:slow"); // the build went on (--keep-going)
    expect(big.stderr.length).toBeLessThan(10_000); // the message shows a short tail
    expect(big.peakMiB - small.peakMiB).toBeLessThan(48);
    expect(await emptied(where)).toEqual([]);
  }, 60_000);

  it("30 MB of stdout: the command succeeds; 20 MB of stderr and a failure: the message ends with its last lines", async () => {
    const small = await buildMeasured("echo small", base());
    const ok = await buildMeasured("head -c 30000000 /dev/zero | tr '\\0' y", base());
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.peakMiB - small.peakMiB).toBeLessThan(32);
    const failed = await buildMeasured("head -c 20000000 /dev/zero | tr '\\0' z >&2; echo >&2; echo the last line >&2; exit 3", base());
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain("//p:big failed: command exited with code 3");
    expect(failed.stderr).toContain("the last line");
    expect(failed.stderr.length).toBeLessThan(10_000);
  }, 60_000);
});
