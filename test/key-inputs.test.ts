// What can change an output enters its key (docs/ARCHITECTURE.md "Action keys"), through the CLI:
// an input's executable bit, the order of the inputs, the sandbox a result was made in, a source
// edit that keeps its size and mtime, and the system toolchain's headers.
import { describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, readdirSync, readFileSync, realpathSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildJson, executed, makeWorkspace, wmb, WMB, wmbSync, writeFiles } from "./helpers/cli.ts";
import { systemToolchainInstalled } from "./helpers/system-toolchain.ts";
import { probeBwrap } from "../src/sandbox-bwrap.ts";
import { nowNs, racilyClean, sourceStatSignature } from "../src/source-hash.ts";

const bwrapWorks = (await probeBwrap()).ok;

function whyPaths(ws: string, label: string): string[] {
  const r = wmbSync(ws, ["why", label, "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { changes: { path: string }[] }).changes.map((c) => c.path);
}

describe("a dependency output's executable bit", () => {
  const build = (executable: boolean) => `
export default (w) => {
  const p = w.package("p");
  p.write({ name: "tool", out: "tool.sh", content: "#!/bin/sh\\necho hi\\n", executable: ${executable} });
  p.run({ name: "mode", srcs: [":tool"], outs: ["mode.txt"], cmd: "if test -x tool.sh; then echo x; else echo -; fi > mode.txt" });
};`;

  it("enters the key: the consumer reruns and sees the new mode, and why names it", () => {
    const ws = makeWorkspace({ "BUILD.ts": build(true) });
    buildJson(ws, ["//p:mode"]);
    expect(readFileSync(join(ws, "wmb-out/p/mode.txt"), "utf8")).toBe("x\n");
    writeFiles(ws, { "BUILD.ts": build(false) });
    // Same bytes, another mode: the consumer's inputs have the same digests.
    expect(executed(buildJson(ws, ["//p:mode"]))).toEqual(["//p:mode", "//p:tool"]);
    expect(readFileSync(join(ws, "wmb-out/p/mode.txt"), "utf8")).toBe("-\n");
    expect(whyPaths(ws, "//p:mode")).toEqual(["executable.tool.sh"]);
  });
});

describe("the order of srcs", () => {
  // An unsorted listing shows the order inputs were placed in the sandbox (tmpfs: newest first).
  const build = (srcs: string[]) => `
export default (w) => {
  w.package("p").run({ name: "joined", srcs: ${JSON.stringify(srcs)}, outs: ["joined.txt"], cmd: "cat $(ls -U | grep part) > joined.txt" });
};`;

  it("enters the key: reordering reruns the action, which makes what a clean build makes, and why says order", () => {
    const ws = makeWorkspace({ "BUILD.ts": build(["a.part", "b.part"]), "p/a.part": "A\n", "p/b.part": "B\n" });
    buildJson(ws, ["//p:joined"]);
    writeFiles(ws, { "BUILD.ts": build(["b.part", "a.part"]) });
    expect(executed(buildJson(ws, ["//p:joined"]))).toEqual(["//p:joined"]);
    const served = readFileSync(join(ws, "wmb-out/p/joined.txt"), "utf8");
    buildJson(ws, ["//p:joined", "--no-cache"]);
    expect(readFileSync(join(ws, "wmb-out/p/joined.txt"), "utf8")).toBe(served);
    expect(whyPaths(ws, "//p:joined")).toEqual(["order"]);
    const why = wmbSync(ws, ["why", "//p:joined"]).stdout;
    expect(why).toContain(`order: ["a.part","b.part"] -> ["b.part","a.part"]`);
    // Back to the first order: the first result is served again.
    writeFiles(ws, { "BUILD.ts": build(["a.part", "b.part"]) });
    expect(buildJson(ws, ["//p:joined"]).counts.executed).toBe(0);
  });

  it("of a dependency's outputs is the same whether it was just built or served", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `
export default (w) => {
  const p = w.package("p");
  p.run({ name: "two", outs: ["z.txt", "a.txt"], cmd: "echo z > z.txt; echo a > a.txt" });
  p.run({ name: "both", srcs: [":two"], outs: ["both.txt"], cmd: "cat a.txt z.txt > both.txt" });
};`,
    });
    expect(buildJson(ws, ["//p:both"]).counts.executed).toBe(2);
    expect(buildJson(ws, ["//p:both"]).counts.executed).toBe(0);
  });
});

describe.skipIf(!bwrapWorks)("the sandbox a result was made in", () => {
  type Report = { counts: { executed: number; cached: number }; actions: { status: string; sandbox?: string }[] };
  const report = (ws: string, sandbox: string): Report => buildJson(ws, ["//p:made", "--sandbox", sandbox]) as unknown as Report;

  it("a stricter sandbox never takes a looser result; a looser one takes a stricter", () => {
    const ws = makeWorkspace({ "BUILD.ts": `export default (w) => { w.package("p").run({ name: "made", outs: ["made.txt"], cmd: "echo made > made.txt" }); };` });
    expect(report(ws, "none").actions[0]).toMatchObject({ status: "executed", sandbox: "none" });
    expect(report(ws, "bwrap").actions[0]).toMatchObject({ status: "executed", sandbox: "bwrap" });
    expect(report(ws, "none").actions[0]).toMatchObject({ status: "cached", sandbox: "bwrap" });
    expect(report(ws, "auto").actions[0]).toMatchObject({ status: "cached", sandbox: "bwrap" });
    const other = makeWorkspace({ "BUILD.ts": readFileSync(join(ws, "BUILD.ts"), "utf8") });
    report(other, "none");
    // auto resolves to bwrap here, once it meets the unsandboxed result.
    expect(report(other, "auto").actions[0]).toMatchObject({ status: "executed", sandbox: "bwrap" });
  });

  it("a sandboxed build waiting on an unsandboxed one's lock does not take its result", async () => {
    const ws = makeWorkspace({ "BUILD.ts": `export default (w) => { w.package("p").run({ name: "made", outs: ["made.txt"], cmd: "sleep 2; echo made > made.txt" }); };` });
    const loose = wmb(ws, ["build", "--json", "//p:made", "--sandbox", "none"]);
    const locks = join(ws, ".wmb", "locks");
    const deadline = Date.now() + 20_000;
    while (!(existsSync(locks) && readdirSync(locks).some((n) => n.endsWith(".lock")))) {
      if (Date.now() > deadline) throw new Error("the unsandboxed build never took its action's lock");
      await new Promise((r) => setTimeout(r, 20));
    }
    const strict = await wmb(ws, ["build", "--json", "//p:made", "--sandbox", "bwrap"]);
    expect((await loose).code).toBe(0);
    expect(strict.code, strict.stderr).toBe(0);
    expect((JSON.parse(strict.stdout) as Report).actions[0]).toMatchObject({ status: "executed", sandbox: "bwrap" });
  });
});

/** Write `content` over `file` and set its mtime back, to the nanosecond, as `touch -r` does. */
function rewriteKeepingMtime(file: string, content: string): void {
  const ref = `${file}.ref`;
  spawnSync("touch", ["-r", file, ref]);
  chmodSync(file, 0o644);
  writeFileSync(file, content);
  spawnSync("touch", ["-r", ref, file]);
  expect(statSync(file, { bigint: true }).mtimeNs).toBe(statSync(ref, { bigint: true }).mtimeNs);
}

describe("the stat cache", () => {
  const BUILD = `export default (w) => { w.package("p").run({ name: "copy", srcs: ["in.txt"], outs: ["out.txt"], cmd: "cat in.txt > out.txt" }); };`;
  const out = (ws: string) => readFileSync(join(ws, "wmb-out/p/out.txt"), "utf8");

  it.each([
    ["right after a build", (file: string) => writeFileSync(file, "bbbb\n")],
    ["whose mtime was set back (cp -p, rsync -t, touch -r)", (file: string) => rewriteKeepingMtime(file, "bbbb\n")],
  ])("a same-size edit %s is rebuilt", (_, edit) => {
    const ws = makeWorkspace({ "BUILD.ts": BUILD, "p/in.txt": "aaaa\n" });
    buildJson(ws, ["//p:copy"]);
    edit(join(ws, "p/in.txt"));
    expect(executed(buildJson(ws, ["//p:copy"]))).toEqual(["//p:copy"]);
    expect(out(ws)).toBe("bbbb\n");
  });

  it("wmb-out/ too: a delivered file edited in place with its mtime set back is delivered again", () => {
    const ws = makeWorkspace({ "BUILD.ts": BUILD, "p/in.txt": "aaaa\n" });
    buildJson(ws, ["//p:copy"]);
    buildJson(ws, ["//p:copy"]); // checks wmb-out/, and so remembers its stat
    rewriteKeepingMtime(join(ws, "wmb-out/p/out.txt"), "zzzz\n");
    buildJson(ws, ["//p:copy"]);
    expect(out(ws)).toBe("aaaa\n");
  });

  it("a file changed at or after the build looked at it (racily clean) is hashed but not remembered", async () => {
    const ws = makeWorkspace({ "BUILD.ts": BUILD, "p/in.txt": "aaaa\n" });
    const file = join(ws, "p/in.txt");
    // Whether the stat cache holds the file as it is now.
    const remembered = () => {
      const db = new Database(join(ws, ".wmb/index.sqlite"), { readonly: true });
      try {
        const row = db.prepare(`SELECT stat_sig FROM stat_cache WHERE path = ?`).get(realpathSync(file)) as { stat_sig: string } | undefined;
        return row?.stat_sig === sourceStatSignature(file);
      } finally {
        db.close();
      }
    };
    // Changed well before the build: remembered.
    await new Promise((r) => setTimeout(r, 300));
    buildJson(ws, ["//p:copy"]);
    expect(remembered()).toBe(true);
    // Its mtime ahead of the build's clock (an archive from a host whose clock is ahead, touch -d):
    // a same-size edit within the same timestamp would keep the signature, so it is not remembered.
    const ahead = new Date(Date.now() + 60_000);
    writeFileSync(file, "bbbb\n");
    utimesSync(file, ahead, ahead);
    expect(executed(buildJson(ws, ["//p:copy"]))).toEqual(["//p:copy"]);
    expect(remembered()).toBe(false);
    expect(out(ws)).toBe("bbbb\n");
  });

  it("whole-second timestamps are racily clean for two seconds", () => {
    const s = 1_700_000_000n * 1_000_000_000n;
    const st = (mtimeNs: bigint, ctimeNs = mtimeNs) => ({ size: 5n, mtimeNs, ctimeNs, ino: 1n });
    const lookedAt = s + 1_500_000_000n;
    expect(racilyClean(st(s), lookedAt)).toBe(true);
    expect(racilyClean(st(s + 1_000n), lookedAt)).toBe(false);
    expect(racilyClean(st(s + 1_000n, lookedAt), lookedAt)).toBe(true);
    expect(racilyClean(st(nowNs() + 1_000_000_000n), nowNs())).toBe(true);
  });
});

// A header replaced in a private mount namespace (as root there): the host's stays untouched.
const HEADER = "/usr/include/wasm32-wasi/stdio.h";
const canReplaceHeaders = systemToolchainInstalled && existsSync(HEADER) && spawnSync("unshare", ["-rm", "true"]).status === 0;

describe.skipIf(!canReplaceHeaders)("the system toolchain's identity", () => {
  it("covers wasi-libc's headers: a changed header reruns the compile, and why says toolchain", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => { w.package("p").wasi_compile({ name: "hello_o", src: "hello.c", srcs: ["hello.c"] }); };`,
      "p/hello.c": `#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n`,
    });
    const args = ["build", "--json", "--toolchain", "system", "--sandbox", "none", "//p:hello_o"];
    expect(buildJson(ws, args.slice(2)).counts.executed).toBe(1);
    const edited = join(ws, "stdio.h");
    writeFileSync(edited, readFileSync(HEADER, "utf8") + "/* edited */\n");
    const env = { ...process.env };
    delete env.WMB_STORE;
    const script = `mount --bind "$3" "$4" && node=$1 wmb=$2 && shift 4 && exec "$node" "$wmb" "$@"`;
    const r = spawnSync("unshare", ["-rm", "sh", "-c", script, "sh", process.execPath, WMB, edited, HEADER, ...args], { cwd: ws, env, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(executed(JSON.parse(r.stdout))).toEqual(["//p:hello_o"]);
    expect(whyPaths(ws, "//p:hello_o")).toEqual(["toolchain"]);
  });

  it("compiles with no header of the host's own include directories, which no key covers", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => { w.package("p").wasi_compile({ name: "leak_o", src: "leak.c", srcs: ["leak.c"] }); };`,
      "p/leak.c": `#include <wmb-host-only.h>\nint main(void) { return HOST_ONLY; }\n`,
    });
    const env = { ...process.env };
    delete env.WMB_STORE;
    // A header in /usr/local/include (a tmpfs of this namespace's own), found by clang's default search.
    const script = `mount -t tmpfs tmpfs /usr/local/include && echo '#define HOST_ONLY 0' > /usr/local/include/wmb-host-only.h && exec "$@"`;
    const args = ["build", "--toolchain", "system", "--sandbox", "none", "//p:leak_o"];
    const r = spawnSync("unshare", ["-rm", "sh", "-c", script, "sh", process.execPath, WMB, ...args], { cwd: ws, env, encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("'wmb-host-only.h' file not found");
  });
});
