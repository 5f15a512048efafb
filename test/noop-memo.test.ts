// The no-op memo (src/noop-memo.ts): a build that changed nothing is served from what the last
// one found, and every input of every key that changed sends the build the full way.
import { describe, expect, it } from "vitest";
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { makeWorkspace, wmbSync, type BuildJson } from "./helpers/cli.ts";

type Built = Omit<BuildJson, "actions"> & { build_id: number; unchanged_since?: number; actions: { label: string; key: string; status: string; outputs?: Record<string, string>; sandbox?: string }[] };

function build(ws: string, targets: string[], env?: Record<string, string>, flags: string[] = []): Built {
  const r = wmbSync(ws, ["build", "--json", ...flags, ...targets], { env });
  if (r.code !== 0) throw new Error(`wmb build ${targets.join(" ")} exited ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as Built;
}

/** Built, then a no-op that runs the full way and leaves the memo. */
function memoized(ws: string, targets: string[], env?: Record<string, string>): Built {
  build(ws, targets, env);
  // What was just written is racily clean for a clock tick (100 ms): no memo names it before.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 150);
  const full = build(ws, targets, env);
  expect(full.unchanged_since).toBeUndefined();
  expect(readdirSync(join(ws, ".wmb/noop")).filter((f) => f.endsWith(".json"))).not.toEqual([]);
  return full;
}

const executed = (b: Built) => b.actions.filter((a) => a.status === "executed").map((a) => a.label).sort();

const CHAIN = `export default (w) => {
  const p = w.package("p");
  p.glob({ name: "data", patterns: ["data/*.txt"] });
  p.run({ name: "gen", srcs: ["in.txt"], outs: ["gen.txt"], env: ["MEMO_GREETING"], cmd: "cat in.txt > gen.txt; echo \\"$MEMO_GREETING\\" >> gen.txt" });
  p.run({ name: "use", srcs: [":gen", ":data"], outs: ["use.txt"], cmd: "cat gen.txt data/*.txt | tr a-z A-Z > use.txt" });
  p.run({ name: "stamp", outs: ["stamp.txt"], cmd: "head -c 16 /dev/urandom | od -An -tx1 > stamp.txt" });
  p.run({ name: "stamped", srcs: [":stamp"], outs: ["stamped.txt"], cmd: "cp stamp.txt stamped.txt" });
};\n`;

function chain(): string {
  return makeWorkspace({ "BUILD.ts": CHAIN, "p/in.txt": "hello\n", "p/data/a.txt": "a\n" });
}

const ENV = { MEMO_GREETING: "hi" };

describe("the no-op memo", () => {
  it("serves a build that changed nothing with the actions, keys and outputs of a full build, and records it", () => {
    const ws = chain();
    const full = memoized(ws, ["//p:use", "//p:stamped"], ENV);
    const memo = build(ws, ["//p:use", "//p:stamped"], ENV);
    expect(memo.unchanged_since).toBe(full.build_id);
    expect(memo.build_id).toBeGreaterThan(full.build_id);
    expect(memo.counts).toEqual(full.counts);
    expect(memo.actions.map(({ label, key, status, outputs, sandbox }) => ({ label, key, status, outputs, sandbox }))).toEqual(
      full.actions.map(({ label, key, status, outputs, sandbox }) => ({ label, key, status, outputs, sandbox })),
    );
    expect(readFileSync(join(ws, "wmb-out/p/use.txt"), "utf8")).toBe("HELLO\nHI\nA\n");
    const db = new Database(join(ws, ".wmb/index.sqlite"), { readonly: true });
    expect(db.prepare(`SELECT status, executed, cached FROM builds WHERE id = ?`).get(memo.build_id)).toEqual({ status: "ok", executed: 0, cached: 5 });
    db.close();
    // Another target set, or other flags, has a memo of its own.
    expect(build(ws, ["//p:use"], ENV).unchanged_since).toBeUndefined();
  });

  it("is not used when a source file changed", () => {
    const ws = chain();
    memoized(ws, ["//p:use"], ENV);
    writeFileSync(join(ws, "p/in.txt"), "bye\n");
    const b = build(ws, ["//p:use"], ENV);
    expect(executed(b)).toEqual(["//p:gen", "//p:use"]);
    expect(readFileSync(join(ws, "wmb-out/p/use.txt"), "utf8")).toBe("BYE\nHI\nA\n");
  });

  it("is not used when a variable a rule reads changed", () => {
    const ws = chain();
    memoized(ws, ["//p:use"], ENV);
    const b = build(ws, ["//p:use"], { MEMO_GREETING: "howdy" });
    expect(executed(b)).toEqual(["//p:gen", "//p:use"]);
    expect(readFileSync(join(ws, "wmb-out/p/use.txt"), "utf8")).toBe("HELLO\nHOWDY\nA\n");
  });

  it("is not used when a glob matches another file", () => {
    const ws = chain();
    memoized(ws, ["//p:use"], ENV);
    writeFileSync(join(ws, "p/data/b.txt"), "b\n");
    const b = build(ws, ["//p:use"], ENV);
    expect(executed(b)).toEqual(["//p:data", "//p:use"]);
    expect(readFileSync(join(ws, "wmb-out/p/use.txt"), "utf8")).toBe("HELLO\nHI\nA\nB\n");
  });

  it("is not used once the store serves another result for a key (a rerun elsewhere)", () => {
    const ws = chain();
    memoized(ws, ["//p:stamped"]);
    const before = readFileSync(join(ws, "wmb-out/p/stamped.txt"), "utf8");
    // Another target set reruns //p:stamp, whose new bytes become the result its key is served.
    build(ws, ["//p:stamp"], undefined, ["--no-cache"]);
    const b = build(ws, ["//p:stamped"]);
    expect(b.unchanged_since).toBeUndefined();
    expect(executed(b)).toEqual(["//p:stamped"]);
    const after = readFileSync(join(ws, "wmb-out/p/stamped.txt"), "utf8");
    expect(after).not.toBe(before);
    expect(after).toBe(readFileSync(join(ws, "wmb-out/p/stamp.txt"), "utf8"));
  });

  it("is not used when a served blob changed in the store: the full build finds it corrupt and runs its action again", () => {
    const ws = chain();
    const full = memoized(ws, ["//p:use"], ENV);
    const gen = full.actions.find((a) => a.label === "//p:gen")!.outputs!["gen.txt"]!;
    const blob = join(ws, ".wmb/cas", gen.slice(0, 2), gen.slice(2));
    chmodSync(blob, 0o644);
    writeFileSync(blob, "HELLO\nEVIL\n"); // the same size
    const b = build(ws, ["//p:use"], ENV);
    expect(b.unchanged_since).toBeUndefined();
    expect(executed(b)).toEqual(["//p:gen"]);
    expect(wmbSync(ws, ["store", "fsck"]).code).toBe(0);
  });

  it("is not used when a file in wmb-out/ was changed: it is delivered again", () => {
    const ws = chain();
    memoized(ws, ["//p:use"], ENV);
    const out = join(ws, "wmb-out/p/use.txt");
    chmodSync(out, 0o644);
    writeFileSync(out, "edited\n");
    const b = build(ws, ["//p:use"], ENV);
    expect(b.unchanged_since).toBeUndefined();
    expect(readFileSync(out, "utf8")).toBe("HELLO\nHI\nA\n");
  });

  it("is never kept for a BUILD.ts that reads its environment", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => {
  w.package("p").write({ name: "w", out: "w.txt", content: (process.env.MEMO_CONTENT ?? "none") + "\\n" });
};\n`,
    });
    build(ws, ["//p:w"], { MEMO_CONTENT: "one" });
    build(ws, ["//p:w"], { MEMO_CONTENT: "one" });
    const b = build(ws, ["//p:w"], { MEMO_CONTENT: "two" });
    expect(b.unchanged_since).toBeUndefined();
    expect(readFileSync(join(ws, "wmb-out/p/w.txt"), "utf8")).toBe("two\n");
    expect(existsSync(join(ws, ".wmb/noop")) ? readdirSync(join(ws, ".wmb/noop")) : []).toEqual([]);
  });

  it("is dropped by store gc", () => {
    const ws = chain();
    memoized(ws, ["//p:use"], ENV);
    expect(readdirSync(join(ws, ".wmb/noop"))).toHaveLength(1);
    expect(wmbSync(ws, ["store", "gc"]).code).toBe(0);
    expect(existsSync(join(ws, ".wmb/noop"))).toBe(false);
    expect(build(ws, ["//p:use"], ENV).unchanged_since).toBeUndefined();
  });
});
