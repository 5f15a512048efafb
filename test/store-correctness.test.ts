// What the store promises in schema.sql and the README, driven through the CLI: the newest
// result is served, admission never keeps a wrong file behind a right name, machines are known
// by the rule that sealed them, and unusable store paths fail at once.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildJson, executed, makeWorkspace, WMB, wmbSync } from "./helpers/cli.ts";
import { Store } from "../store/store.ts";
import type { ActionKey } from "../src/digest.ts";

function blobPath(store: string, digest: string): string {
  return join(store, "cas", digest.slice(0, 2), digest.slice(2));
}

describe("the store serves what it promises", () => {
  it("serves the newest result of a non-deterministic action, and history and why agree", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => {
  w.package("p").run({ name: "now", outs: ["now.txt"], cmd: "date +%s%N > now.txt" });
};\n`,
    });
    const out = join(ws, "wmb-out/p/now.txt");
    buildJson(ws, ["//p:now"]);
    const first = readFileSync(out, "utf8");
    const rebuilt = buildJson(ws, ["--no-cache", "//p:now"]);
    const second = readFileSync(out, "utf8");
    expect(second).not.toBe(first);
    const again = buildJson(ws, ["//p:now"]);
    expect(again.counts.executed).toBe(0);
    expect(readFileSync(out, "utf8")).toBe(second);
    expect(again.actions[0]!.outputs).toEqual(rebuilt.actions[0]!.outputs);

    const history = JSON.parse(wmbSync(ws, ["query", "history", "--json", "//p:now"]).stdout) as { history: { outputs: Record<string, string> }[] };
    expect(history.history[0]!.outputs).toEqual(again.actions[0]!.outputs);
    const nondet = JSON.parse(wmbSync(ws, ["query", "nondeterministic", "--json"]).stdout) as { label: string; results: string[] }[];
    expect(nondet.map((n) => n.label)).toEqual(["//p:now"]);
    expect(nondet[0]!.results).toHaveLength(2);
  });

  it("a rerun that repeats an older result makes that result the newest again", async () => {
    const store = await Store.open(mkdtempSync(join(tmpdir(), "wmb-store-")));
    try {
      const key = "k".repeat(64) as ActionKey;
      const record = async (text: string) => {
        const { digest } = await store.putBytes(new TextEncoder().encode(text));
        return store.recordResult({ key, label: "//p:flip", rule: "run@1", keyInputs: "{}", outputs: { "f.txt": { digest, executable: false } }, durationMs: 1 });
      };
      const a = await record("A");
      const b = await record("B");
      expect(b.divergentFrom).toEqual([a.outputsDigest]);
      expect((await store.wholeResult(key))!.outputsDigest).toBe(b.outputsDigest);
      const a2 = await record("A"); // within the same millisecond as B, most likely
      expect(a2.id).toBe(a.id);
      expect((await store.wholeResult(key))!.outputsDigest).toBe(a.outputsDigest);
      expect(store.lookupResult(key)!.outputsDigest).toBe(a.outputsDigest);
    } finally {
      store.close();
    }
  });

  it("a verify round's result is evidence, never served: the next build serves the build's", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => {
  w.package("p").run({ name: "where", outs: ["where.txt"], cmd: "pwd > where.txt" });
};\n`,
    });
    const built = buildJson(ws, ["//p:where"]).actions[0]!.outputs;
    const v = wmbSync(ws, ["verify", "--vary", "path", "//p:where"]);
    expect(v.code, v.stdout).toBe(1); // the path differs in the varied round
    const nondet = JSON.parse(wmbSync(ws, ["query", "nondeterministic", "--json"]).stdout) as { results: string[] }[];
    expect(nondet[0]!.results).toHaveLength(2); // the verify result is kept
    rmSync(join(ws, "wmb-out"), { recursive: true, force: true });
    const again = buildJson(ws, ["//p:where"]);
    expect(again.counts.executed).toBe(0);
    expect(again.actions[0]!.outputs).toEqual(built);
  });

  it("a rebuild that produces the right bytes replaces a corrupt blob of the same size", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => {
  w.package("p").write({ name: "w", out: "w.txt", content: "the right bytes\\n" });
};\n`,
    });
    const store = join(ws, ".wmb");
    const digest = buildJson(ws, ["//p:w"]).actions[0]!.outputs!["w.txt"]!;
    const blob = blobPath(store, digest);
    chmodSync(blob, 0o644);
    writeFileSync(blob, "THE WRONG BYTES\n"); // same length
    buildJson(ws, ["--no-cache", "//p:w"]);
    rmSync(join(ws, "wmb-out"), { recursive: true, force: true });
    buildJson(ws, ["//p:w"]);
    expect(readFileSync(join(ws, "wmb-out/p/w.txt"), "utf8")).toBe("the right bytes\n");
    expect(readFileSync(blob, "utf8")).toBe("the right bytes\n");
    const fsck = wmbSync(ws, ["store", "fsck", "--json"]);
    expect(fsck.code, fsck.stdout).toBe(0);
    expect(JSON.parse(fsck.stdout).corrupt).toEqual([]);
  });

  it("a build large enough to read the index in bulk still refuses a corrupt blob and restores an edited wmb-out file", () => {
    // 300 targets: over the size from which results and wmb-out's stat cache are read up front.
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  for (let i = 0; i < 300; i++) p.write({ name: "w" + i, out: "w" + i + ".txt", content: "bytes " + i + "\\n" });
};\n`,
    });
    const labels = Array.from({ length: 300 }, (_, i) => `//p:w${i}`);
    const first = buildJson(ws, labels);
    expect(first.counts.executed).toBe(300);
    expect(buildJson(ws, labels).counts.executed).toBe(0); // wmb-out's files now in the stat cache
    const digest = first.actions.find((a) => a.label === "//p:w7")!.outputs!["w7.txt"]!;
    const blob = blobPath(join(ws, ".wmb"), digest);
    chmodSync(blob, 0o644);
    writeFileSync(blob, "BYTES 7\n"); // same length, other bytes
    writeFileSync(join(ws, "wmb-out/p/w9.txt"), "edited by hand\n");
    const again = buildJson(ws, labels);
    expect(executed(again)).toEqual(["//p:w7"]);
    expect(readFileSync(blob, "utf8")).toBe("bytes 7\n");
    expect(readFileSync(join(ws, "wmb-out/p/w9.txt"), "utf8")).toBe("bytes 9\n");
    expect(buildJson(ws, labels).counts.executed).toBe(0);
  });

  it("a JSON output with a seal member is not a machine: only the seal rule registers one", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => {
  w.package("p").write({ name: "looks_sealed", out: "x.json", content: '{"seal": true}\\n' });
};\n`,
    });
    const r = wmbSync(ws, ["build", "//p:looks_sealed"]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(ws, "wmb-out/p/x.json"), "utf8")).toBe('{"seal": true}\n');
    expect(JSON.parse(wmbSync(ws, ["store", "stats", "--json"]).stdout).machines).toBe(0);
  });
});

describe("history grows with what builds change, not with their number", () => {
  it("no-op builds add no history rows; a change adds rows for what it ran; gc keeps what is served", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  for (let i = 0; i < 40; i++) p.run({ name: "r" + i, srcs: ["s" + i + ".txt"], outs: ["r" + i + ".txt"], cmd: "tr a-z A-Z < s" + i + ".txt > r" + i + ".txt" });
};\n`,
      ...Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`p/s${i}.txt`, `source ${i}\n`])),
    });
    const labels = Array.from({ length: 40 }, (_, i) => `//p:r${i}`);
    const stats = () => JSON.parse(wmbSync(ws, ["store", "stats", "--json"]).stdout) as { builds: number; history_rows: number };
    buildJson(ws, labels);
    const first = stats();
    expect(first.history_rows).toBe(40);
    for (let i = 0; i < 3; i++) expect(buildJson(ws, labels).counts.cached).toBe(40);
    expect(stats()).toMatchObject({ history_rows: 40, builds: first.builds + 3 });
    writeFileSync(join(ws, "p/s7.txt"), "changed\n");
    expect(buildJson(ws, labels).counts.executed).toBe(1);
    expect(stats().history_rows).toBe(41);
    const h = JSON.parse(wmbSync(ws, ["query", "history", "--json", "//p:r7"]).stdout) as { history: unknown[] };
    expect(h.history).toHaveLength(2);
    expect(wmbSync(ws, ["why", "--json", "//p:r7"]).stdout).toContain("inputs.s7.txt");
    expect(wmbSync(ws, ["store", "gc", "--keep-builds", "1", "--grace", "0"]).code).toBe(0);
    expect(buildJson(ws, labels).counts.executed).toBe(0);
  });
});

describe("query history", () => {
  it("tells a label that never existed (an error, with the nearest labels) from one that was never built", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  p.write({ name: "greeting", out: "g.txt", content: "hi\\n" });
  p.write({ name: "other", out: "o.txt", content: "o\\n" });
};\n`,
    });
    buildJson(ws, ["//p:greeting"]);
    const typo = wmbSync(ws, ["query", "history", "//p:greting"]);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toContain("//p:greting");
    expect(typo.stderr).toContain("//p:greeting");
    const never = wmbSync(ws, ["query", "history", "//p:other"]);
    expect(never.code, never.stderr).toBe(0);
    expect(never.stdout).toContain("no recorded builds");
    // A target removed from BUILD.ts keeps its history.
    writeFileSync(join(ws, "BUILD.ts"), `export default (w) => { w.package("p").write({ name: "other", out: "o.txt", content: "o\\n" }); };\n`);
    const removed = wmbSync(ws, ["query", "history", "//p:greeting"]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(/blake3:[0-9a-f]{64} {2}g\.txt/);
  });
});

describe("an unusable store path fails at once", () => {
  const ws = makeWorkspace({ "BUILD.ts": `export default (w) => { w.package("p").write({ name: "w", out: "w.txt", content: "w\\n" }); };\n` });
  const file = join(ws, "a-file");
  writeFileSync(file, "not a directory\n");
  const cases: [string, string[], string, RegExp][] = [
    ["build, under /proc", ["build", "//p:w"], "/proc/wmb-forbidden/store", /procfs/],
    ["query targets (no store opened, BUILD.ts cached under it), under /proc", ["query", "targets"], "/proc/wmb-forbidden", /procfs/],
    ["build, a file", ["build", "//p:w"], file, /is a file, not a directory/],
    ["build, under a file", ["build", "//p:w"], join(file, "store"), /is a file, so nothing can be created under it/],
    ["build, under /sys", ["build", "//p:w"], "/sys/wmb-store", /sysfs|read-only/],
  ];
  for (const [what, args, path, why] of cases) {
    it(what, () => {
      const r = spawnSync(process.execPath, [WMB, ...args, "--store", path], { cwd: ws, encoding: "utf8", timeout: 20_000 });
      expect(r.error, "wmb did not return").toBeUndefined();
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(why);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain("--store");
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }
});
