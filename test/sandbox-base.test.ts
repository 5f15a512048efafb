// Where sandboxes are made (src/sandbox-base.ts): a tmpfs that can serve, else the temp
// directory, or where WMB_SANDBOX_BASE says; real builds through the CLI.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeWorkspace, wmbSync } from "./helpers/cli.ts";
import { mountOptions, sandboxBase } from "../src/sandbox-base.ts";

const MOUNTS = `sysfs /sys sysfs rw,nosuid 0 0
tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0
tmpfs /dev/shm tmpfs rw,nosuid,nodev,noexec,size=65536k 0 0
/dev/vda / ext4 rw,relatime 0 0
`;

function whereActionsRun(env: Record<string, string>): string {
  const ws = makeWorkspace({
    "BUILD.ts": `export default (w) => { w.package("p").run({ name: "a", outs: ["pwd.txt"], cmd: "pwd > pwd.txt" }); };`,
  });
  const r = wmbSync(ws, ["build", "--sandbox", "none", "//p:a"], { env });
  expect(r.code).toBe(0);
  return readFileSync(join(ws, "wmb-out/p/pwd.txt"), "utf8").trim();
}

describe("sandbox base", () => {
  it("reads a mount point's options, the last mount there winning", () => {
    expect(mountOptions("/dev/shm", MOUNTS)).toContain("noexec");
    expect(mountOptions("/", MOUNTS)).toEqual(["rw", "relatime"]);
    expect(mountOptions("/nowhere", MOUNTS)).toEqual([]);
  });

  it("actions run under WMB_SANDBOX_BASE when it is set, else where sandboxBase says", () => {
    const base = mkdtempSync(join(tmpdir(), "wmb-base-"));
    expect(whereActionsRun({ WMB_SANDBOX_BASE: base }).startsWith(base + "/wmb-")).toBe(true);
    const chosen = sandboxBase();
    expect(["/dev/shm", tmpdir()]).toContain(chosen);
    expect(whereActionsRun({ WMB_SANDBOX_BASE: "" }).startsWith(chosen + "/wmb-")).toBe(true);
  });

  it("a command that runs out of space says where actions run and how to move them", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => { w.package("p").run({ name: "a", outs: ["o.txt"], cmd: "echo 'write error: No space left on device' >&2; exit 1" }); };`,
    });
    const r = wmbSync(ws, ["build", "--sandbox", "none", "//p:a"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("No space left on device");
    expect(r.stderr).toContain("set WMB_SANDBOX_BASE");
  });
});
