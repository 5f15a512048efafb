// The command line's edges, as a user meets them: help, usage errors, colour, broken pipes,
// target patterns in every command that takes labels, and long output lists.
import { describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
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

  it("a group's word (`query`, `store`), alone, after `help` or with --help, lists the group's commands", () => {
    for (const args of [["help", "query"], ["query"], ["query", "--help"]]) {
      const r = wmbSync(WS, args);
      expect(r.code, `wmb ${args.join(" ")}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain("wmb query history");
      expect(r.stdout).toContain("wmb query targets");
      expect(r.stdout).not.toContain("wmb build");
    }
    expect(wmbSync(WS, ["help", "store"]).stdout).toContain("wmb store gc");
    const r = wmbSync(WS, ["store", "frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: "store frobnicate" is not a wmb command; run `wmb help store` for the list.\n');
  });

  it("`wmb help help` lists the commands", () => {
    const r = wmbSync(WS, ["help", "help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("wmb build");
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

  it("--version prints package.json's version, from the sources and from the bundle", () => {
    const version = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version;
    expect(wmbSync(WS, ["--version"]).stdout.trim()).toBe(version);
    // A copy of wmb whose package.json says another version: nothing may have copied the old one.
    const copy = makeWorkspace({});
    for (const dir of ["src", "rules", "store", "bin", "dist"]) if (existsSync(join(REPO, dir))) cpSync(join(REPO, dir), join(copy, dir), { recursive: true });
    writeFileSync(join(copy, "package.json"), JSON.stringify({ ...JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")), version: "9.8.7-copy" }));
    symlinkSync(join(REPO, "node_modules"), join(copy, "node_modules"));
    for (const env of [{ WMB_FROM_SOURCE: "1" }, {}]) {
      const r = spawnSync(process.execPath, [join(copy, "bin/wmb.mjs"), "--version"], { cwd: WS, encoding: "utf8", env: { ...process.env, ...env } });
      expect(r.stdout.trim(), r.stderr).toBe("9.8.7-copy");
    }
  });
});

describe("colour", () => {
  it("none in a pipe, whatever the command prints", () => {
    for (const args of [["run", "--help"], ["help"], ["build", "--frobnicate"]]) {
      const r = wmbSync(WS, args);
      expect(r.stdout + r.stderr).not.toContain(ESC);
    }
  });

  // `script` gives the CLI a pseudo-terminal.
  const onTerminal = (cwd: string, args: string, env: Record<string, string> = {}) =>
    spawnSync("script", ["-qec", `${process.execPath} ${WMB} ${args}`, "/dev/null"], { cwd, encoding: "utf8", env: { ...process.env, TERM: "xterm", ...env } }).stdout;

  it("on a terminal, unless NO_COLOR is set (to anything but the empty string) or the terminal is dumb", () => {
    expect(onTerminal(WS, "run --help")).toContain(ESC);
    expect(onTerminal(WS, "run --help", { NO_COLOR: "" })).toContain(ESC);
    expect(onTerminal(WS, "run --help", { NO_COLOR: "1" })).not.toContain(ESC);
    expect(onTerminal(WS, "run --help", { TERM: "dumb" })).not.toContain(ESC);
  });

  it("build progress redraws on a terminal, whatever NO_COLOR says, but not on a dumb one", () => {
    const ws = makeWorkspace({ "BUILD.ts": `export default (w) => { w.package("p").write({ name: "x", out: "x.txt", content: "x" }); };\n` });
    expect(onTerminal(ws, "build --no-cache //p:x", { NO_COLOR: "1" })).toContain("\r\x1b[K");
    const dumb = onTerminal(ws, "build --no-cache //p:x", { TERM: "dumb" });
    expect(dumb).toContain("[1/1] built //p:x");
    expect(dumb).not.toContain(ESC);
  });

  it("FORCE_COLOR forces it; NO_COLOR wins over FORCE_COLOR", () => {
    expect(wmbSync(WS, ["run", "--help"], { env: { FORCE_COLOR: "1" } }).stdout).toContain(ESC);
    expect(wmbSync(WS, ["run", "--help"], { env: { FORCE_COLOR: "1", NO_COLOR: "1" } }).stdout).not.toContain(ESC);
  });
});

describe("a reader that goes away", () => {
  // More output than a pipe buffers (64 KiB), so the command is still writing when the reader goes.
  const BIG = makeWorkspace({
    "BUILD.ts": `export default (w) => {
  const big = w.package("big");
  for (let i = 0; i < 2000; i++) big.write({ name: "t" + i, out: "t" + i + ".txt", content: i + "\\n" });
};\n`,
  });

  for (const args of [["graph", "--format", "json"], ["query", "history", "//big:all"], ["query", "targets"]]) {
    it(`ends \`wmb ${args.join(" ")} | head -1\` quietly with 141, as git does (no EPIPE, no stack)`, async () => {
      const child = spawn(process.execPath, [WMB, ...args], { cwd: BIG, stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (b) => (stderr += b));
      // Read one chunk, then close the pipe, as `| head -1` does.
      await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
      child.stdout.destroy();
      const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
      expect(stderr).not.toMatch(/EPIPE|Unhandled|\n\s+at /);
      expect(code).toBe(141);
    }, 10_000);
  }
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

  it("query targets takes patterns, Bazel's long spelling //pkg/...:all among them", () => {
    const targets = (args: string[]) => wmbSync(WS, ["query", "targets", ...args]).stdout.trim().split("\n");
    expect(targets(["//a:all"])).toEqual(["//a:one  (write)", "//a:two  (run)"]);
    expect(targets(["//a/...:all"])).toEqual(["//a:one  (write)", "//a:two  (run)", "//a/b:three  (write)"]);
    expect(targets(["//...:all"])).toHaveLength(63);
    expect(targets([])).toHaveLength(63);
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

  it("a pattern that matches no package is an error that says how to list them", () => {
    const r = wmbSync(WS, ["query", "deps", "//zzzzzz/..."]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("error: No package matches //zzzzzz/...; run `wmb query targets` to list the targets and their packages.\n");
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
