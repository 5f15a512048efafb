// Bad input, table-driven, through the CLI as a user types it: for each case a non-zero exit,
// one line of message naming what is wrong, no stack trace, and a store left as it was.
import { beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildJson, makeWorkspace, WMB, writeFiles } from "./helpers/cli.ts";

const GOOD_BUILD = `export default (w) => {
  const p = w.package("p");
  p.write({ name: "greeting", out: "greeting.txt", content: "hello\\n" });
  p.run({ name: "shout", srcs: [":greeting"], outs: ["shout.txt"], cmd: "tr a-z A-Z < greeting.txt > shout.txt" });
};\n`;

let ws: string;
let store: string;
let junk: string;

/** What a store holds: every blob file and the index's counts. */
function storeState(): string {
  const blobs: string[] = [];
  const cas = join(store, "cas");
  for (const shard of readdirSync(cas)) if (/^[0-9a-f]{2}$/.test(shard)) for (const f of readdirSync(join(cas, shard))) blobs.push(shard + f);
  const stats = JSON.parse(cli(["store", "stats", "--json"]).stdout) as Record<string, unknown>;
  delete stats.index_bytes; // the WAL checkpoints on its own schedule
  return JSON.stringify({ blobs: blobs.sort(), stats });
}

function cli(args: string[], opts: { cwd?: string; input?: string } = {}) {
  const r = spawnSync(process.execPath, [WMB, ...args, "--store", store], {
    cwd: opts.cwd ?? ws,
    input: opts.input ?? "",
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, WMB_STORE: "" },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, timedOut: r.error !== undefined };
}

/** A workspace whose BUILD.ts is `build` (sharing the store). */
function workspaceWith(build: string, files: Record<string, string> = {}): string {
  return makeWorkspace({ "BUILD.ts": build, ...files });
}

beforeAll(() => {
  ws = workspaceWith(GOOD_BUILD);
  store = join(ws, ".wmb");
  buildJson(ws, ["//p:shout"]);
  junk = mkdtempSync(join(tmpdir(), "wmb-bad-input-"));
  writeFileSync(join(junk, "not-json.json"), "{ this is not json");
  writeFileSync(join(junk, "not-a-spec.json"), JSON.stringify({ hello: "world" }));
  writeFileSync(join(junk, "not-a-tar.tar"), "definitely not a tar archive\n".repeat(40));
  writeFiles(junk, { "truncated.tar": "x".repeat(700) });
});

interface BadInput {
  what: string;
  args: () => string[];
  /** Another workspace to run in (its BUILD.ts is the bad input). */
  cwd?: () => string;
  /** The message must match (it names the file, label or flag). */
  says: RegExp;
  exit?: number;
}

const CASES: BadInput[] = [
  // labels
  { what: "a malformed label", args: () => ["build", "//p:bad name"], says: /Invalid label "\/\/p:bad name"/ },
  { what: "a label without //", args: () => ["build", "p:greeting"], says: /labels look like \/\/pkg:name/ },
  { what: "an unknown target (nearest suggested)", args: () => ["build", "//p:greting"], says: /Unknown target \/\/p:greting.*\/\/p:greeting/ },
  { what: "query deps of an unknown target", args: () => ["query", "deps", "//p:nope"], says: /\/\/p:nope/ },
  { what: "query history of a label that never existed", args: () => ["query", "history", "//p:shuot"], says: /\/\/p:shuot.*\/\/p:shout/ },
  { what: "why of a target never built", args: () => ["why", "//p:never"], says: /\/\/p:never/ },
  // BUILD.ts
  { what: "a syntax error in BUILD.ts", cwd: () => workspaceWith(`export default (w) => { w.package("p").write({ name: "a", out: "a.txt" content: "x" }); };\n`), args: () => ["build", "//p:a"], says: /BUILD\.ts:1/ },
  { what: "BUILD.ts that throws", cwd: () => workspaceWith(`export default () => { throw new Error("boom in BUILD"); };\n`), args: () => ["build", "//p:a"], says: /boom in BUILD/ },
  { what: "a dependency cycle", cwd: () => workspaceWith(`export default (w) => { const p = w.package("p"); p.run({ name: "a", srcs: [":b"], outs: ["a"], cmd: "true" }); p.run({ name: "b", srcs: [":a"], outs: ["b"], cmd: "true" }); };\n`), args: () => ["build", "//p:a"], says: /cycle/i },
  { what: "a missing source file", cwd: () => workspaceWith(`export default (w) => { w.package("p").run({ name: "a", srcs: ["nope.txt"], outs: ["a"], cmd: "cp nope.txt a" }); };\n`), args: () => ["build", "//p:a"], says: /nope\.txt/ },
  { what: "a source that leaves its package", cwd: () => workspaceWith(`export default (w) => { w.package("p").run({ name: "a", srcs: ["../../etc/passwd"], outs: ["a"], cmd: "true" }); };\n`), args: () => ["build", "//p:a"], says: /leaves its package/ },
  { what: "a wrong attribute type", cwd: () => workspaceWith(`export default (w) => { w.package("p").write({ name: "a", out: 42, content: "x" }); };\n`), args: () => ["build", "//p:a"], says: /BUILD\.ts:1.*out/ },
  { what: "no BUILD.ts", cwd: () => mkdtempSync(join(tmpdir(), "wmb-empty-")), args: () => ["build", "//p:a"], says: /No BUILD\.ts/ },
  // machines and spec files
  { what: "run a spec file that does not exist", args: () => ["run", join(junk, "missing.json")], says: /missing\.json/, exit: 2 },
  { what: "run a file that is not JSON", args: () => ["run", join(junk, "not-json.json")], says: /not-json\.json is not valid JSON/, exit: 3 },
  { what: "inspect JSON that is not a spec", args: () => ["inspect", join(junk, "not-a-spec.json")], says: /not-a-spec\.json is invalid/, exit: 3 },
  { what: "run an identity the store does not know", args: () => ["run", `blake3:${"0".repeat(64)}`], says: /No machine with identity blake3:0{64}/, exit: 2 },
  { what: "run a label that seals no machine", args: () => ["run", "//p:shout"], says: /does not produce a sealed spec/, exit: 2 },
  // bundles
  { what: "import a file that is not a tar", args: () => ["store", "import", join(junk, "not-a-tar.tar")], says: /not-a-tar\.tar/ },
  { what: "import a truncated tar", args: () => ["store", "import", join(junk, "truncated.tar")], says: /truncated\.tar/ },
  { what: "import a bundle that does not exist", args: () => ["store", "import", join(junk, "nope.tar")], says: /nope\.tar/ },
  // flags
  { what: "an unknown flag", args: () => ["build", "--frobnicate", "//p:shout"], says: /frobnicate/, exit: 2 },
  { what: "-j that is not a number", args: () => ["build", "-j", "many", "//p:shout"], says: /-j|jobs/, exit: 2 },
  { what: "an unknown verify variation", args: () => ["verify", "--vary", "moon", "//p:shout"], says: /Unknown variation "moon"/, exit: 2 },
  { what: "an unknown toolchain", args: () => ["build", "--toolchain", "gcc", "//p:shout"], says: /toolchain/, exit: 2 },
  { what: "an unknown command", args: () => ["biuld", "//p:shout"], says: /"biuld" is not a wmb command \(did you mean `wmb build`\?\)/, exit: 2 },
];

describe("bad input: clear error, non-zero exit, store unharmed", () => {
  for (const c of CASES) {
    it(c.what, () => {
      const before = storeState();
      const r = cli(c.args(), { cwd: c.cwd?.() });
      expect(r.timedOut, "wmb did not return").toBe(false);
      expect(r.code, r.stderr).not.toBe(0);
      if (c.exit !== undefined) expect(r.code, r.stderr).toBe(c.exit);
      const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
      expect(lines, r.stderr).toHaveLength(1);
      expect(r.stderr).toMatch(c.says);
      expect(r.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
      expect(storeState()).toBe(before);
    });
  }

  it("the store still builds after all of that, with nothing to do", () => {
    expect(buildJson(ws, ["//p:shout"]).counts.executed).toBe(0);
    expect(readFileSync(join(ws, "wmb-out/p/shout.txt"), "utf8")).toBe("HELLO\n");
  });
});
