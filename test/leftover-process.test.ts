// What an unsandboxed command leaves running (#23): it dies with the command, and an output a
// process still writes is never admitted, so no key is computed from bytes that change later.
// The sandboxes sit on the store's filesystem here, where an output could be renamed into the
// store instead of copied.
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeWorkspace, wmbSync } from "./helpers/cli.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function workspace(aCmd: string): { ws: string; env: Record<string, string> } {
  const ws = makeWorkspace({
    "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  p.run({ name: "a", outs: ["a.txt"], cmd: ${JSON.stringify(aCmd)} });
  p.run({ name: "b", srcs: [":a"], outs: ["b.txt"], cmd: "sleep 0.6; cat a.txt > b.txt" });
};`,
  });
  return { ws, env: { WMB_SANDBOX_BASE: mkdtempSync(join(tmpdir(), "wmb-leftover-base-")) } };
}

describe("a process an unsandboxed command leaves running", () => {
  it("is killed when the command exits: it writes neither the output after it was stored nor anywhere else", async () => {
    const leak = join(mkdtempSync(join(tmpdir(), "wmb-leftover-")), "leaked");
    const { ws, env } = workspace(`exec 3>>a.txt; echo good >&3; (sleep 0.3; echo EVIL >&3; echo EVIL > ${leak}) &`);
    const r = wmbSync(ws, ["build", "--sandbox", "none", "//p:a", "//p:b"], { env });
    expect(r.code, r.stderr).toBe(0);
    await sleep(500); // past the leftover's 0.3 s
    expect(existsSync(leak)).toBe(false);
    expect(readFileSync(join(ws, "wmb-out/p/b.txt"), "utf8")).toBe("good\n");
    expect(readFileSync(join(ws, "wmb-out/p/a.txt"), "utf8")).toBe("good\n");
    // The blob is what the dependent's key was computed from.
    const fsck = wmbSync(ws, ["store", "fsck"]);
    expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
  });

  it("that escaped the command's session and still writes an output fails the action with one sentence; nothing of it is stored", () => {
    // Caught when it writes between the stat before the output is copied and the one after: on
    // a machine busy enough to keep it from running in that window the copy is consistent and
    // the action succeeds. The output is 32 MB, so that copying it takes long enough for the
    // writer to be scheduled meanwhile, and it gets five tries, of which at least one must catch it.
    let caught = false;
    for (let attempt = 0; attempt < 5 && !caught; attempt++) {
      const pidFile = join(mkdtempSync(join(tmpdir(), "wmb-leftover-")), "escaped.pid");
      // setsid: out of the command's session, which is all wmb kills. It writes for 3 s at most,
      // and already does when the command exits.
      const { ws, env } = workspace(`exec 3>>a.txt; head -c 32000000 /dev/zero >&3; echo good >&3; setsid timeout 3 sh -c 'while :; do echo EVIL; done' >&3 2>/dev/null & echo $! > ${pidFile}; sleep 0.2`);
      try {
        const r = wmbSync(ws, ["build", "--sandbox", "none", "//p:b"], { env });
        if (r.code === 0) continue;
        caught = true;
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`//p:a's output "a.txt" changed while it was being stored: a process the command left running is still writing it; make the command wait for its children.`);
        expect(r.stderr).not.toContain("at "); // a sentence, not a stack
        expect(existsSync(join(ws, "wmb-out/p/b.txt"))).toBe(false);
        const fsck = wmbSync(ws, ["store", "fsck"]);
        expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
      } finally {
        try {
          process.kill(-Number(readFileSync(pidFile, "utf8")), "SIGKILL");
        } catch {
          /* already gone */
        }
      }
    }
    expect(caught).toBe(true);
  });
});
