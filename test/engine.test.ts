// The engine through the CLI: minimal rebuilds, early cutoff, parallelism, history, why.
import { describe, expect, it } from "vitest";
import { readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { buildJson, executed, makeWorkspace, WMB, wmbSync } from "./helpers/cli.ts";

const CHAIN = `
export default (w) => {
  const p = w.package("app");
  p.run({ name: "strip", srcs: ["main.src"], outs: ["stripped.txt"], cmd: "grep -v '^#' main.src > stripped.txt" });
  p.run({ name: "upper", srcs: [":strip"], outs: ["upper.txt"], cmd: "tr a-z A-Z < stripped.txt > upper.txt" });
  p.run({ name: "other", srcs: ["other.src"], outs: ["other.txt"], cmd: "cp other.src other.txt" });
  p.run({ name: "all", srcs: [":upper", ":other"], outs: ["all.txt"], cmd: "cat upper.txt other.txt > all.txt" });
};
`;

function chainWorkspace(): string {
  return makeWorkspace({ "BUILD.ts": CHAIN, "app/main.src": "# comment\nhello\n", "app/other.src": "other\n" });
}

describe("incremental builds", () => {
  it("executes every action once, then nothing, and materializes outputs", () => {
    const ws = chainWorkspace();
    const first = buildJson(ws, ["//app:all"]);
    expect(first.counts).toMatchObject({ executed: 4, cached: 0 });
    expect(readFileSync(join(ws, "wmb-out/app/all.txt"), "utf8")).toBe("HELLO\nother\n");
    const second = buildJson(ws, ["//app:all"]);
    expect(second.counts).toMatchObject({ executed: 0, cached: 4 });
  });

  it("touching a file without changing its bytes executes nothing", () => {
    const ws = chainWorkspace();
    buildJson(ws, ["//app:all"]);
    const later = new Date(Date.now() + 5000);
    utimesSync(join(ws, "app/main.src"), later, later);
    writeFileSync(join(ws, "app/other.src"), "other\n"); // same bytes, new mtime and ctime
    expect(buildJson(ws, ["//app:all"]).counts.executed).toBe(0);
  });

  it("changing one source reruns exactly its downstream actions", () => {
    const ws = chainWorkspace();
    buildJson(ws, ["//app:all"]);
    writeFileSync(join(ws, "app/other.src"), "changed\n");
    const b = buildJson(ws, ["//app:all"]);
    expect(executed(b)).toEqual(["//app:all", "//app:other"]);
    expect(readFileSync(join(ws, "wmb-out/app/all.txt"), "utf8")).toBe("HELLO\nchanged\n");
  });

  it("stops at an identical output (early cutoff)", () => {
    const ws = chainWorkspace();
    buildJson(ws, ["//app:all"]);
    writeFileSync(join(ws, "app/main.src"), "# another comment\nhello\n");
    const b = buildJson(ws, ["//app:all"]);
    // strip reruns (its input changed) but yields the same bytes: upper and all stay cached.
    expect(executed(b)).toEqual(["//app:strip"]);
  });

  it("runs independent slow actions in parallel with -j2, and one at a time with -j1", () => {
    const build = (j: string) => {
      const ws = makeWorkspace({
        "BUILD.ts": `
export default (w) => {
  const p = w.package("p");
  for (const n of ["a", "b"]) {
    p.run({ name: n, outs: [n + ".txt"], cmd: "date +%s%N > " + n + ".txt; sleep 1; date +%s%N >> " + n + ".txt" });
  }
};`,
      });
      buildJson(ws, ["-j", j, "//p:a", "//p:b"]);
      return ["a", "b"].map((n) => readFileSync(join(ws, `wmb-out/p/${n}.txt`), "utf8").trim().split("\n").map(BigInt));
    };
    const overlaps = ([a, b]: bigint[][]) => a![0]! < b![1]! && b![0]! < a![1]!;
    expect(overlaps(build("2"))).toBe(true);
    expect(overlaps(build("1"))).toBe(false);
  });
});

describe("progress", () => {
  it("on a terminal, redraws done/total and the running actions with their elapsed time", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => { w.package("p").run({ name: "slow", outs: ["s"], cmd: "sleep 1.2; touch s" }); };\n`,
    });
    // `script` gives the CLI a pseudo-terminal.
    const r = spawnSync("script", ["-qec", `${process.execPath} ${WMB} build //p:slow`, "/dev/null"], { cwd: ws, encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("\r\x1b[K[0/1] //p:slow 1.");
    expect(r.stdout).toContain("[1/1] built //p:slow");
  });

  it("elsewhere, prints one line per executed action and a summary", () => {
    const ws = chainWorkspace();
    const r = wmbSync(ws, ["build", "//app:all"]);
    expect(r.stderr).not.toContain("\x1b[");
    expect(r.stderr.match(/^\[\d\/4\] built /gm)).toHaveLength(4);
    expect(r.stderr).toMatch(/^Build OK: 4 executed, 0 cached in /m);
  });
});

describe("history and why", () => {
  it("lists every output digest of a target, newest first, and says which input changed", () => {
    const ws = chainWorkspace();
    const b1 = buildJson(ws, ["//app:other"]);
    writeFileSync(join(ws, "app/other.src"), "v2\n");
    const b2 = buildJson(ws, ["//app:other"]);
    const d1 = b1.actions[0]!.outputs!["other.txt"];
    const d2 = b2.actions[0]!.outputs!["other.txt"];
    expect(d1).not.toBe(d2);
    const h = JSON.parse(wmbSync(ws, ["query", "history", "//app:other", "--json"]).stdout);
    expect(h.history.map((e: { outputs: Record<string, string> }) => e.outputs["other.txt"])).toEqual([d2, d1]);

    const why = wmbSync(ws, ["why", "//app:other", "--json"]);
    expect(why.code).toBe(0);
    expect(JSON.parse(why.stdout).changes.map((c: { path: string }) => c.path)).toEqual(["inputs.other.src"]);
  });

  it("answers deps and rdeps from BUILD.ts", () => {
    const ws = chainWorkspace();
    expect(wmbSync(ws, ["query", "deps", "//app:upper"]).stdout.trim().split("\n")).toEqual(["//app:strip", "//app:upper"]);
    expect(wmbSync(ws, ["query", "rdeps", "//app:strip"]).stdout.trim().split("\n")).toEqual(["//app:all", "//app:upper"]);
    const dot = wmbSync(ws, ["graph", "//app:all"]).stdout;
    expect(dot).toContain(`"//app:upper" -> "//app:strip"`);
  });
});

describe("sandbox", () => {
  it("gives an action only its declared inputs and a scrubbed environment", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `
export default (w) => {
  const p = w.package("p");
  p.run({ name: "look", srcs: ["in.txt"], outs: ["env.txt", "ls.txt"], env: ["WMB_TEST_DECLARED"],
          cmd: "env | sort > env.txt; ls -A > ls.txt" });
};`,
      "p/in.txt": "x",
      "p/undeclared.txt": "y",
    });
    buildJson(ws, ["//p:look"], { WMB_TEST_DECLARED: "yes", WMB_TEST_SECRET: "leak" });
    const env = readFileSync(join(ws, "wmb-out/p/env.txt"), "utf8");
    expect(env).toContain("TZ=UTC\n");
    expect(env).toContain("LC_ALL=C\n");
    expect(env).toContain("SOURCE_DATE_EPOCH=0\n");
    expect(env).toContain("WMB_TEST_DECLARED=yes\n");
    expect(env).not.toContain("WMB_TEST_SECRET");
    expect(env).not.toContain(`HOME=${process.env.HOME}\n`);
    expect(readFileSync(join(ws, "wmb-out/p/ls.txt"), "utf8").split("\n")).not.toContain("undeclared.txt");
  });

  it("reruns an action when a declared environment variable changes", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => { w.package("p").run({ name: "e", outs: ["e.txt"], env: ["WMB_FLAVOR"], cmd: "echo $WMB_FLAVOR > e.txt" }); };`,
    });
    expect(buildJson(ws, ["//p:e"], { WMB_FLAVOR: "a" }).counts.executed).toBe(1);
    expect(buildJson(ws, ["//p:e"], { WMB_FLAVOR: "a" }).counts.executed).toBe(0);
    expect(buildJson(ws, ["//p:e"], { WMB_FLAVOR: "b" }).counts.executed).toBe(1);
  });
});
