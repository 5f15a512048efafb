// The launcher runs host commands through long-lived shells (src/launcher.ts): each command must
// still get exactly its argv, environment, directory, umask and stdin, report its own status and
// output, and die with an abort, whatever bytes those strings hold.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { launch, OUTPUT_TAIL_BYTES, type Launch } from "../src/launcher.ts";
import { processSandboxDir } from "../src/sandbox-base.ts";

const NASTY = [`it's`, `"dq"`, "$HOME", "`id`", "$(id)", "a b", "semi;colon", "*", "new\nline", "back\\slash", "-n", ""];

/** Running: not gone, and not a zombie waiting for init to reap it. */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
}

/** Wait up to a second for a SIGKILLed process to go. */
async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
}

function run(argv: string[], more: Partial<Launch> = {}) {
  return launch({ argv, cwd: tmpdir(), env: { PATH: "/usr/bin:/bin" }, signal: new AbortController().signal, ...more });
}

describe("launcher", () => {
  it("passes every argument as it is", async () => {
    const r = await run(["/bin/sh", "-c", `for a; do printf '[%s]' "$a"; done`, "sh", ...NASTY]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(NASTY.map((a) => `[${a}]`).join(""));
  });

  it("gives the command exactly its environment: nothing the shell adds, values as they are", async () => {
    const env = { PATH: "/usr/bin:/bin", A: NASTY.join("|"), EMPTY: "", LC_ALL: "C" };
    const r = await run(["env"], { env });
    expect(r.code).toBe(0);
    // `env` prints one variable per line; A holds a newline, so compare the whole text.
    const expected = Object.entries(env).map(([k, v]) => `${k}=${v}\n`);
    expect(r.stdout.length).toBe(expected.join("").length);
    for (const line of expected) expect(r.stdout).toContain(line);
    expect(r.stdout).not.toMatch(/^(PWD|OLDPWD|SHLVL|_)=/m);
    // And it came through a lane (a shell's child), not the fallback (wmb's own child).
    expect((await run(["/bin/sh", "-c", "echo $PPID"], { env })).stdout).not.toBe(`${process.pid}\n`);
  });

  it("falls back to spawning a command whose variable names no shell can export", async () => {
    const r = await run(["env"], { env: { PATH: "/usr/bin:/bin", "A-B": "1" } });
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").sort()).toEqual(["", "A-B=1", "PATH=/usr/bin:/bin"]);
  });

  it("runs in its directory under its umask, with its stdin", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "wmb-launch-")), `it's here`);
    mkdirSync(dir);
    const r = await run(["/bin/sh", "-c", "pwd; umask; cat"], { cwd: dir, umask: 0o027, stdin: "from stdin\n" });
    expect(r).toMatchObject({ code: 0, stdout: `${dir}\n0027\nfrom stdin\n`, stderr: "" });
    // Without stdin it reads nothing (not wmb's own stdin).
    expect((await run(["cat"])).stdout).toBe("");
  });

  it("reports the command's own status and both its outputs", async () => {
    const r = await run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(r).toMatchObject({ code: 3, stdout: "out\n", stderr: "err\n", aborted: false });
    const missing = await run(["/nonexistent/tool"]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("/nonexistent/tool");
  });

  it("refuses a NUL byte in an argument, a variable or the directory, and the lanes go on", async () => {
    for (const more of [{ argv: ["echo", "a\0b"] }, { env: { PATH: "/usr/bin:/bin", A: "x\0y" } }, { cwd: "/tmp\0/x" }]) {
      const r = await run(["echo", "ok"], more);
      expect(r).toMatchObject({ code: null, aborted: false });
      expect(r.stderr).toContain("NUL");
    }
    expect((await run(["echo", "still"])).stdout).toBe("still\n");
  });

  it("a command that signals its whole process group ends only itself; one that kills its lane fails with what it wrote and why", async () => {
    const lanes = () => readdirSync(processSandboxDir()).filter((n) => n.startsWith("lane-")).length;
    const before = lanes();
    const r = await run(["/bin/sh", "-c", "echo before; kill 0; echo after"]);
    expect(r).toMatchObject({ code: 128 + 15, stdout: "before\n", aborted: false }); // its own session: SIGTERM
    expect(lanes()).toBe(before);
    const killer = await run(["/bin/sh", "-c", "echo before; kill -9 $PPID; sleep 5; echo after"]);
    expect(killer).toMatchObject({ code: null, stdout: "before\n", aborted: false });
    expect(killer.stderr).toContain("the shell that started the command was killed");
    expect(lanes()).toBe(before - 1); // the dead lane's files are gone
    expect((await run(["echo", "next"])).stdout).toBe("next\n");
  });

  // Through a lane, and spawned directly (a variable name no shell can export).
  for (const [how, env] of [["through a lane", { PATH: "/usr/bin:/bin" }], ["spawned directly", { PATH: "/usr/bin:/bin", "A-B": "1" }]] as const) {
    it(`what a command leaves running is killed as soon as it exits (${how})`, async () => {
      const started = performance.now();
      const r = await run(["/bin/sh", "-c", "sleep 60 & echo $!; (sleep 60; echo late) &"], { env });
      expect(r.code).toBe(0);
      expect(performance.now() - started).toBeLessThan(5000); // not waiting for what it left
      await gone(Number(r.stdout));
      expect(alive(Number(r.stdout))).toBe(false);
    });
  }

  it("a process a command left running writes nothing into the next command's output", async () => {
    await run(["/bin/sh", "-c", "(sleep 0.2; echo LEFT; echo LEFT >&2) &"]);
    const next = await run(["/bin/sh", "-c", "sleep 0.5; echo next"]);
    expect(next).toMatchObject({ code: 0, stdout: "next\n", stderr: "" });
  });

  it("keeps the last 64 KiB of each output, through a lane and spawned directly", async () => {
    for (const env of [{ PATH: "/usr/bin:/bin" }, { PATH: "/usr/bin:/bin", "A-B": "1" }] as Record<string, string>[]) {
      const r = await run(["/bin/sh", "-c", "seq 1000000; seq 200000 >&2; echo end >&2"], { env });
      expect(r.code).toBe(0);
      expect(r.stdout.length).toBeLessThanOrEqual(OUTPUT_TAIL_BYTES);
      expect(r.stdout.length).toBeGreaterThan(OUTPUT_TAIL_BYTES - 10);
      expect(r.stdout.startsWith("9")).toBe(true); // whole lines: the one cut at the start is dropped
      expect(r.stdout.endsWith("\n999999\n1000000\n")).toBe(true);
      expect(r.stderr.endsWith("\n200000\nend\n")).toBe(true);
    }
  });

  it("runs commands side by side, each in a lane of its own", async () => {
    const both = await Promise.all([0, 1].map(() => run(["/bin/sh", "-c", "sleep 0.3; echo $PPID"])));
    const lanes = both.map((r) => r.stdout.trim());
    expect(lanes[0]).not.toBe(lanes[1]);
  });

  it("an abort kills the command and what it started; the next command still runs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wmb-launch-"));
    const ac = new AbortController();
    const running = run(["/bin/sh", "-c", "sleep 60 & echo $! > child; wait"], { cwd: dir, signal: ac.signal });
    while (!existsSync(join(dir, "child")) || readFileSync(join(dir, "child"), "utf8") === "") await new Promise((r) => setTimeout(r, 20));
    const child = Number(readFileSync(join(dir, "child"), "utf8"));
    ac.abort();
    expect(await running).toMatchObject({ aborted: true, code: null });
    await gone(child);
    expect(alive(child)).toBe(false);
    expect((await run(["echo", "again"])).stdout).toBe("again\n");
  });
});
