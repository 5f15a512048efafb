// Command actions run under bwrap: they see their declared inputs at a fixed path, /usr, and
// nothing else of the host; no network. Real bwrap, real CLI, a real loopback listener.
// WMB_TEST_SANDBOX=none runs the escape tests unsandboxed: they must then go red.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeWorkspace, WMB, wmb, wmbSync, writeFiles } from "./helpers/cli.ts";
import { probeBwrap } from "../src/sandbox-bwrap.ts";

const bwrapWorks = (await probeBwrap()).ok;
const MODE = process.env.WMB_TEST_SANDBOX ?? "bwrap";

function oneAction(cmd: string): string {
  return makeWorkspace({
    "BUILD.ts": `export default (w) => { w.package("p").run({ name: "a", srcs: ["in.txt"], outs: ["out.txt"], cmd: ${JSON.stringify(cmd)} }); };`,
    "p/in.txt": "declared input\n",
  });
}

/** Replace the one action's command (for commands that name the workspace's own path). */
function setCommand(ws: string, cmd: string): void {
  writeFiles(ws, {
    "BUILD.ts": `export default (w) => { w.package("p").run({ name: "a", srcs: ["in.txt"], outs: ["out.txt"], cmd: ${JSON.stringify(cmd)} }); };`,
  });
}

interface ActionJson {
  label: string;
  status: string;
  sandbox?: string;
}

function build(ws: string, args: string[], env?: Record<string, string>) {
  const r = wmbSync(ws, ["build", "--json", "--sandbox", MODE, ...args], { env });
  const json = r.stdout ? (JSON.parse(r.stdout) as { ok: boolean; actions: ActionJson[] }) : undefined;
  return { ...r, json };
}

describe.skipIf(!bwrapWorks)("the bwrap sandbox", () => {
  it("hides /etc: reading /etc/hostname fails with the command's own error and a hint to declare it", () => {
    const ws = oneAction("cat /etc/hostname > out.txt");
    const r = build(ws, ["//p:a"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("cat: /etc/hostname: No such file or directory");
    expect(r.stderr).toMatch(/may need to be declared in `srcs`/);
    expect(existsSync(join(ws, "wmb-out/p/out.txt"))).toBe(false);
  });

  it("hides the workspace: listing its root by its absolute host path fails", () => {
    const ws = oneAction("true");
    setCommand(ws, `ls -A ${ws} > out.txt`);
    const r = build(ws, ["//p:a"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ls: cannot access '${ws}': No such file or directory`);
  });

  it("keeps writes outside the outputs off the host: the workspace and the host's /tmp are unchanged", () => {
    const hostTmp = mkdtempSync(join(tmpdir(), "wmb-escape-"));
    const inTmp = join(hostTmp, "escaped.txt");
    // The host's /tmp: the sandbox has a private one, so this write succeeds but lands nowhere.
    const ws = oneAction("true");
    setCommand(ws, `mkdir -p ${hostTmp} && echo leak > ${inTmp}; echo ok > out.txt`);
    expect(build(ws, ["//p:a"]).code).toBe(0);
    expect(existsSync(inTmp)).toBe(false);
    // The workspace is not there at all: the write fails.
    const inWorkspace = join(ws, "p", "escaped.txt");
    setCommand(ws, `echo leak > ${inWorkspace} && echo ok > out.txt`);
    expect(build(ws, ["//p:a"]).code).toBe(1);
    expect(existsSync(inWorkspace)).toBe(false);
    rmSync(hostTmp, { recursive: true, force: true });
  });

  it("has no network: a TCP connection to a port listening on the host's 127.0.0.1 fails and never arrives", async () => {
    let connections = 0;
    const server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const ws = oneAction(`/usr/bin/bash -c 'echo hello > /dev/tcp/127.0.0.1/${port}' && echo connected > out.txt`);
      const r = await wmb(ws, ["build", "--sandbox", MODE, "//p:a"]);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(connections).toBe(0);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/Connection refused|Network is unreachable|connect/);
    } finally {
      server.close();
    }
  });

  it("shows declared inputs at the fixed path /build, and records the action as sandboxed", () => {
    const ws = oneAction("pwd > out.txt; cat in.txt >> out.txt");
    const r = build(ws, ["//p:a"]);
    expect(r.code).toBe(0);
    expect(readFileSync(join(ws, "wmb-out/p/out.txt"), "utf8")).toBe("/build\ndeclared input\n");
    expect(r.json!.actions).toMatchObject([{ label: "//p:a", status: "executed", sandbox: "bwrap" }]);
    // A cached result says how it was made, and so does its history.
    expect(build(ws, ["//p:a"]).json!.actions).toMatchObject([{ status: "cached", sandbox: "bwrap" }]);
    const history = JSON.parse(wmbSync(ws, ["query", "history", "--json", "//p:a"]).stdout) as { history: { sandbox?: string }[] };
    expect(history.history.map((h) => h.sandbox)).toEqual(["bwrap"]);
  });
});

/** A duration no other process sleeps for, so that its command line marks the test's processes. */
function uniqueSleep(): string {
  return `1000.${process.pid}${String(Date.now() % 1e6).padStart(6, "0")}`;
}

/** Pids of the processes whose command line holds `marker` (and starts with `start`). */
function processesWith(marker: string, start = ""): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8");
      if (cmdline.startsWith(start) && cmdline.includes(marker)) pids.push(Number(name));
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}

/** Wait up to two seconds for them to go; kill what is left (a broken sandbox) and return it. */
async function leftWith(marker: string): Promise<number[]> {
  for (let i = 0; i < 100 && processesWith(marker).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
  const left = processesWith(marker);
  for (const pid of left) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  return left;
}

describe.skipIf(!bwrapWorks)("the bwrap sandbox's processes", () => {
  it("has a PID namespace of its own: /proc shows the command's few processes, not the host's", () => {
    const ws = oneAction("ls /proc | grep -c '^[0-9]' > out.txt");
    expect(build(ws, ["//p:a"]).code).toBe(0);
    const seen = Number(readFileSync(join(ws, "wmb-out/p/out.txt"), "utf8"));
    expect(seen).toBeGreaterThan(0);
    expect(seen).toBeLessThanOrEqual(4); // the shell (under bwrap's own init without lanes), ls, grep: not even its lane's agent
  });

  it("what a command leaves running dies when it exits", async () => {
    const marker = uniqueSleep();
    const ws = oneAction(`sh -c 'sleep ${marker}; true' & echo ok > out.txt`);
    expect(build(ws, ["//p:a"]).code).toBe(0);
    expect(await leftWith(marker)).toEqual([]);
  });

  it("a build killed with SIGKILL mid-action leaves no process of the action alive", async () => {
    const marker = uniqueSleep();
    const ws = oneAction(`sh -c 'sleep ${marker}; true' & sleep ${marker}; echo ok > out.txt`);
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.WMB_STORE;
    const child = spawn(process.execPath, [WMB, "build", "--sandbox", MODE, "//p:a"], { cwd: ws, env, stdio: "ignore" });
    // Both sleeps run in the sandbox (bwrap itself has started and set up its end long before).
    for (let i = 0; i < 500 && processesWith(marker, "sleep\0").length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(processesWith(marker, "sleep\0")).toHaveLength(2);
    child.kill("SIGKILL");
    await new Promise((resolve) => child.on("close", resolve));
    expect(await leftWith(marker)).toEqual([]);
  });
});

describe("choosing the sandbox", () => {
  // No bwrap on this PATH (wmb itself is started by absolute path).
  const noBwrap = { PATH: mkdtempSync(join(tmpdir(), "wmb-empty-path-")) };
  const twoActions = () =>
    makeWorkspace({
      "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  p.run({ name: "a", outs: ["a.txt"], cmd: "echo a > a.txt" });
  p.run({ name: "b", srcs: [":a"], outs: ["b.txt"], cmd: "cat a.txt > b.txt" });
  p.write({ name: "c", out: "c.txt", content: "c" });
};`,
    });

  it("auto without bwrap on PATH warns once, says how to fix it, and builds unsandboxed", () => {
    const ws = twoActions();
    const r = wmbSync(ws, ["build", "--json", "//p:b", "//p:c"], { env: noBwrap });
    expect(r.code).toBe(0);
    const warnings = r.stderr.split("\n").filter((l) => l.startsWith("warning:"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("apt-get install bubblewrap");
    const actions = (JSON.parse(r.stdout) as { actions: ActionJson[] }).actions;
    expect(Object.fromEntries(actions.map((a) => [a.label, a.sandbox]))).toEqual({ "//p:a": "none", "//p:b": "none", "//p:c": "in-process" });
  });

  it("--sandbox bwrap without bwrap fails the build with one sentence and runs nothing", () => {
    const ws = twoActions();
    const r = wmbSync(ws, ["build", "--sandbox", "bwrap", "//p:b"], { env: noBwrap });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe("error: --sandbox bwrap: bwrap is not on PATH; install it with `apt-get install bubblewrap`.");
    expect(existsSync(join(ws, "wmb-out"))).toBe(false);
  });

  it("--sandbox none and WMB_SANDBOX=none run commands on the host without a warning", () => {
    const ws = twoActions();
    for (const [args, env] of [[["--sandbox", "none"], noBwrap], [[], { ...noBwrap, WMB_SANDBOX: "none" }]] as const) {
      const r = wmbSync(ws, ["build", "--json", "--no-cache", ...args, "//p:a"], { env });
      expect(r.code).toBe(0);
      expect(r.stderr).not.toContain("warning:");
      expect((JSON.parse(r.stdout) as { actions: ActionJson[] }).actions[0]!.sandbox).toBe("none");
    }
    expect(wmbSync(ws, ["build", "//p:a"], { env: { WMB_SANDBOX: "maybe" } }).stderr).toContain('WMB_SANDBOX is "maybe"');
  });

  it("wmb.json's sandbox is used when neither --sandbox nor WMB_SANDBOX says otherwise", () => {
    const ws = twoActions();
    writeFiles(ws, { "wmb.json": JSON.stringify({ sandbox: "bwrap" }) });
    // Configured bwrap without bwrap: the build fails before running anything.
    expect(wmbSync(ws, ["build", "//p:a"], { env: noBwrap }).stderr.trim()).toBe("error: --sandbox bwrap: bwrap is not on PATH; install it with `apt-get install bubblewrap`.");
    const viaEnv = wmbSync(ws, ["build", "--json", "//p:a"], { env: { ...noBwrap, WMB_SANDBOX: "none" } });
    expect((JSON.parse(viaEnv.stdout) as { actions: ActionJson[] }).actions[0]!.sandbox).toBe("none");
    writeFiles(ws, { "wmb.json": JSON.stringify({ sandbox: "none" }) });
    const configured = wmbSync(ws, ["build", "--json", "--no-cache", "//p:a"], { env: noBwrap });
    expect(configured.stderr).not.toContain("warning:");
    expect((JSON.parse(configured.stdout) as { actions: ActionJson[] }).actions[0]!.sandbox).toBe("none");
    expect(wmbSync(ws, ["build", "--sandbox", "bwrap", "//p:a"], { env: noBwrap }).code).toBe(1);
  });
});
