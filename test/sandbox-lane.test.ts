// Sandboxed lanes (src/sandbox-lane.ts): one bwrap per lane, a view of its own per command. What
// lanes add to test/sandbox.test.ts: commands that share a lane, or run beside each other in two,
// see nothing of each other, and no command keeps what could change the next one's view.
// WMB_TEST_SANDBOX=none runs them unsandboxed: they must then go red.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeWorkspace, wmbSync } from "./helpers/cli.ts";
import { probeBwrap, SANDBOX_BUILD_DIR } from "../src/sandbox-bwrap.ts";
import { sandboxLanes } from "../src/sandbox-lane.ts";

const probe = await probeBwrap();
const bwrapWorks = probe.ok;
const MODE = process.env.WMB_TEST_SANDBOX ?? "bwrap";

/** A workspace of `run` actions, each with one output `<name>.txt`; `after` makes one wait for another. */
function actions(cmds: Record<string, { cmd: string; after?: string }>): string {
  const rules = Object.entries(cmds).map(
    ([name, { cmd, after }]) => `p.run({ name: ${JSON.stringify(name)}, srcs: ${JSON.stringify(after ? [`:${after}`] : [])}, outs: [${JSON.stringify(`${name}.txt`)}], cmd: ${JSON.stringify(cmd)} });`,
  );
  return makeWorkspace({ "BUILD.ts": `export default (w) => { const p = w.package("p"); ${rules.join(" ")} };` });
}

function build(ws: string, args: string[]) {
  const r = wmbSync(ws, ["build", "--sandbox", MODE, ...args]);
  expect(r.code, r.stderr).toBe(0);
}

const out = (ws: string, name: string) => readFileSync(join(ws, "wmb-out/p", `${name}.txt`), "utf8");

describe.skipIf(!bwrapWorks)("sandboxed lanes", () => {
  it("a command cannot read the sandbox of one running beside it, by any path it could try", () => {
    // a holds a secret in its directory while b, in another lane, looks for it: under the lane's
    // own directories, through other processes' roots, and anywhere on the filesystem.
    const secret = `s3cr3t-${process.pid}-${Date.now()}`;
    const ws = actions({
      a: { cmd: `echo ${secret} > secret; sleep 1.5; cat secret > a.txt` },
      b: { cmd: `sleep 0.5; { cat /.wmb-lane/actions/*/secret; cat /proc/*/root/build/secret; grep -rs ${secret} / --exclude-dir=proc --exclude-dir=sys --exclude-dir=usr; } > b.txt 2>/dev/null; true` },
    });
    build(ws, ["-j", "2", "//p:a", "//p:b"]);
    expect(out(ws, "a")).toBe(`${secret}\n`);
    expect(out(ws, "b")).toBe("");
  });

  it("what a command leaves in its lane, the lane's next command does not find", () => {
    // At -j 1 both run in one lane, b after a. Unsandboxed (WMB_TEST_SANDBOX=none) a writes on
    // the host: a name of its own, removed afterwards.
    const name = `wmb-left-${process.pid}`;
    const places = [`/tmp/${name}`, `/dev/shm/${name}`, `/${name}`, `/dev/${name}`];
    const ws = actions({
      a: { cmd: `${places.map((p) => `echo left > ${p} 2>/dev/null`).join("; ")}; ipcmk -M 4096 > a.txt 2>&1; true` },
      b: { cmd: `{ cat ${places.join(" ")}; ipcs -m | grep -c '^0x'; } > b.txt 2>/dev/null; true`, after: "a" },
    });
    try {
      build(ws, ["-j", "1", "//p:a", "//p:b"]);
      expect(out(ws, "a")).toMatch(/^Shared memory id: \d+/); // a made one, in its own IPC namespace
      expect(out(ws, "b")).toBe("0\n"); // no file, no shared memory segment
    } finally {
      for (const p of places) rmSync(p, { force: true });
      const id = /id: (\d+)/.exec(out(ws, "a"))?.[1];
      if (MODE === "none" && id) spawnSync("ipcrm", ["-m", id]);
    }
  });

  it("a command has none of the capabilities its lane's agent keeps to make each command's view", () => {
    // CAP_SYS_ADMIN (bit 21) would let it remount what the lane's next commands see.
    const ws = actions({ a: { cmd: "grep -E '^Cap(Eff|Prm|Inh|Amb):' /proc/self/status | cut -f2 > a.txt" } });
    build(ws, ["//p:a"]);
    for (const hex of out(ws, "a").trim().split("\n")) expect(BigInt(`0x${hex}`) & (1n << 21n)).toBe(0n);
  });

  it("two commands of one lane run in one bwrap (they share its network namespace): its set-up is paid once", () => {
    // Each one's own mount, PID and IPC namespaces are seen by the tests above; the kernel
    // reuses a freed namespace's number, so comparing theirs would prove nothing.
    const ws = actions({ a: { cmd: "readlink /proc/self/ns/net > a.txt" }, b: { cmd: "readlink /proc/self/ns/net > b.txt", after: "a" } });
    build(ws, ["-j", "1", "//p:a", "//p:b"]);
    expect(out(ws, "b")).toBe(out(ws, "a"));
    expect(out(ws, "a").trim()).not.toBe(readlinkSync("/proc/self/ns/net")); // not the host's
  });

  it.skipIf(MODE !== "bwrap")("a command whose view cannot be set up fails with status 125 and says why; the lane runs the next one", async () => {
    if (!probe.ok) return; // never: the suite runs only where bwrap works
    const root = mkdtempSync(join(tmpdir(), "wmb-lane-setup-"));
    const dir = (name: string) => {
      const d = join(root, name);
      mkdirSync(d);
      return d;
    };
    const lanes = await sandboxLanes(probe.bwrap, dir("probe"), SANDBOX_BUILD_DIR);
    if (!lanes) return; // no perl under /usr, or an architecture without syscall numbers: one bwrap per command
    const signal = new AbortController().signal;
    const bad = await lanes.run({ argv: ["/bin/sh", "-c", "echo ran > x"], cwd: dir("a"), inside: "missing", env: {}, signal });
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain(`wmb: setting up the sandbox failed: chdir ${SANDBOX_BUILD_DIR}/missing`);
    const good = await lanes.run({ argv: ["/bin/sh", "-c", "echo ok; exit 3"], cwd: dir("b"), env: {}, signal });
    expect(good).toMatchObject({ code: 3, stdout: "ok\n" });
    rmSync(root, { recursive: true, force: true });
  });
});
