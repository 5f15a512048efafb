// The command line's edges, as a user meets them: help, usage errors, colour, broken pipes,
// target patterns in every command that takes labels, and long output lists.
import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { buildJson, makeWorkspace, REPO, WMB, wmbSync } from "./helpers/cli.ts";

const ESC = "\x1b[";

const WS = makeWorkspace({
  "BUILD.ts": `export default (w) => {
  const a = w.package("a");
  a.write({ name: "one", out: "one.txt", content: "1\\n" });
  a.run({ name: "two", srcs: [":one"], outs: ["two.txt"], cmd: "cat one.txt one.txt > two.txt" });
  const b = w.package("a/b");
  b.write({ name: "three", out: "three.txt", content: "3\\n" });
  const many = w.package("many");
  for (let i = 0; i < 60; i++) many.write({ name: "m" + i, out: "m" + i + ".txt", content: i + "\\n" });
};\n`,
});

describe("help", () => {
  it("`wmb help` lists the commands; `wmb` alone does too", () => {
    for (const args of [["help"], []]) {
      const r = wmbSync(WS, args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("wmb build");
      expect(r.stdout).toContain("wmb query history");
    }
  });

  it("`wmb help <command>` is that command's --help", () => {
    const viaHelp = wmbSync(WS, ["help", "query", "history"]);
    expect(viaHelp.code).toBe(0);
    expect(viaHelp.stdout).toBe(wmbSync(WS, ["query", "history", "--help"]).stdout);
    expect(viaHelp.stdout).toContain("Every output digest a target has had");
  });

  it("`wmb help nosuch` is a usage error naming the nearest command", () => {
    const r = wmbSync(WS, ["help", "biuld"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: "biuld" is not a wmb command (did you mean `wmb build`?); run `wmb help` for the list.\n');
  });

  it("a bad flag is one line on stderr with exit 2, pointing at the command's help", () => {
    const r = wmbSync(WS, ["build", "--frobnicate", "//a:one"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("--frobnicate");
    expect(r.stderr).toContain("wmb build --help");
  });

  it("--version prints package.json's version", () => {
    const version = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version;
    expect(wmbSync(WS, ["--version"]).stdout.trim()).toBe(version);
  });
});

describe("colour", () => {
  it("none in a pipe, whatever the command prints", () => {
    for (const args of [["run", "--help"], ["help"], ["build", "--frobnicate"]]) {
      const r = wmbSync(WS, args);
      expect(r.stdout + r.stderr).not.toContain(ESC);
    }
  });

  it("FORCE_COLOR forces it; NO_COLOR wins over FORCE_COLOR", () => {
    expect(wmbSync(WS, ["run", "--help"], { env: { FORCE_COLOR: "1" } }).stdout).toContain(ESC);
    expect(wmbSync(WS, ["run", "--help"], { env: { FORCE_COLOR: "1", NO_COLOR: "1" } }).stdout).not.toContain(ESC);
  });
});

describe("a reader that goes away", () => {
  it("ends the command quietly (no EPIPE, no stack), like git", async () => {
    const child = spawn(process.execPath, [WMB, "graph", "--format", "json"], { cwd: WS, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (b) => (stderr += b));
    // Read one chunk, then close the pipe, as `| head -1` does.
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    expect(stderr).not.toMatch(/EPIPE|Unhandled|\n\s+at /);
    expect([0, 141]).toContain(code);
  });
});

describe("target patterns", () => {
  it("build //pkg:all builds every target of the package, not its subpackages", () => {
    const b = buildJson(WS, ["//a:all"]);
    expect(b.actions.map((a) => a.label).sort()).toEqual(["//a:one", "//a:two"]);
  });

  it("build //pkg/... includes the packages below; //... is everything", () => {
    expect(buildJson(WS, ["//a/..."]).actions.map((a) => a.label).sort()).toEqual(["//a/b:three", "//a:one", "//a:two"]);
    expect(buildJson(WS, ["//..."]).actions).toHaveLength(63);
  });

  it("graph, query deps, query rdeps and query history take patterns", () => {
    const graph = JSON.parse(wmbSync(WS, ["graph", "--format", "json", "//a:all"]).stdout) as { nodes: { label: string }[] };
    expect(graph.nodes.map((n) => n.label).sort()).toEqual(["//a:one", "//a:two"]);
    expect(wmbSync(WS, ["query", "deps", "//a/..."]).stdout.trim().split("\n").sort()).toEqual(["//a/b:three", "//a:one", "//a:two"]);
    expect(wmbSync(WS, ["query", "rdeps", "//a:all"]).stdout.trim()).toBe("//a:two");
    const history = JSON.parse(wmbSync(WS, ["query", "history", "--json", "//a:all"]).stdout) as { label: string; history: unknown[] }[];
    expect(history.map((h) => h.label).sort()).toEqual(["//a:one", "//a:two"]);
    expect(history.every((h) => h.history.length >= 1)).toBe(true);
  });

  it("verify takes a pattern", () => {
    const r = wmbSync(WS, ["verify", "--json", "--vary", "path", "//a:all"]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { targets: string[]; rounds: { actions: { label: string }[] }[] };
    expect(report.targets.sort()).toEqual(["//a:one", "//a:two"]);
    expect(report.rounds[0]!.actions.map((a) => a.label).sort()).toEqual(["//a:one", "//a:two"]);
  });

  it("an unknown package in a pattern is an error naming the nearest package", () => {
    const r = wmbSync(WS, ["build", "//mnay:all"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("No package matches //mnay:all");
    expect(r.stderr).toContain("//many");
  });

  it("build --help's example works as written", () => {
    const help = wmbSync(WS, ["build", "--help"]).stdout;
    expect(help).toContain("build -j 4 --keep-going //examples:all");
    const store = join(makeWorkspace({}), "store");
    const r = wmbSync(REPO, ["build", "-j", "4", "--keep-going", "//examples:all", "--store", store]);
    expect(r.code, r.stderr).toBe(0);
  });
});

describe("long output lists", () => {
  it("a build of many targets prints a few targets' outputs and counts the rest; --json lists all", () => {
    const r = wmbSync(WS, ["build", "//many:all"]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines.length).toBeLessThanOrEqual(6);
    expect(lines.at(-1)).toBe("… and 55 more outputs of 55 more targets in wmb-out/ (--json lists all)");
    const json = buildJson(WS, ["//many:all"]) as unknown as { materialized: string[] };
    expect(json.materialized).toHaveLength(60);
  });

  it("many labels on the command line (taken aside from the option parser) each build once", () => {
    const labels = Array.from({ length: 60 }, (_, i) => `//many:m${i}`);
    const b = buildJson(WS, [...labels, ...labels]);
    expect(b.actions).toHaveLength(60);
  });
});
