// Bad input: one sentence naming the file or label, a non-zero exit, nothing cached.
import { describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { makeWorkspace, REPO, wmbSync, writeFiles } from "./helpers/cli.ts";

function failBuild(buildTs: string, extra: Record<string, string> = {}, target = "//p:a") {
  const ws = makeWorkspace({ "BUILD.ts": buildTs, ...extra });
  const r = wmbSync(ws, ["build", target]);
  const stats = JSON.parse(wmbSync(ws, ["store", "stats", "--json"]).stdout);
  return { ...r, stats };
}

describe("errors", () => {
  it("reports a syntax error with BUILD.ts line and column", () => {
    const r = failBuild(`export default (w) => {\n  w.package("p").write({ name: "a", out: "a", content: "x" ;\n};\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: BUILD\.ts:2:\d+: syntax error: .*fix .*BUILD\.ts/m);
    expect(r.stats.action_results).toBe(0);
  });

  it("reports a TypeScript type error in BUILD.ts when the workspace has a tsconfig.json", () => {
    // Inside the repository, so the workspace resolves this repository's typescript.
    const parent = join(REPO, "node_modules/.cache");
    mkdirSync(parent, { recursive: true });
    const ws = mkdtempSync(join(parent, "wmb-typed-ws-"));
    writeFiles(ws, {
      "package.json": '{ "type": "module" }\n',
      "tsconfig.json": JSON.stringify({ compilerOptions: { strict: true, noEmit: true, types: [] }, include: ["BUILD.ts"] }),
      "BUILD.ts": `const n: number = "not a number";\nexport default (w: { package(n: string): { write(a: object): string } }) => {\n  w.package("p").write({ name: "a", out: "a", content: String(n) });\n};\n`,
    });
    const r = wmbSync(ws, ["build", "//p:a"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("BUILD.ts:1:7: type error TS2322: Type 'string' is not assignable to type 'number'");
    rmSync(ws, { recursive: true, force: true });
  });

  it("reports a wrong attribute type with the line that declares it", () => {
    const r = failBuild(`export default (w) => {\n  const p = w.package("p");\n  p.write({ name: "a", out: "a", content: 42 });\n};\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`BUILD.ts:3: write(): //p:a: attribute "content" must be string, got 42`);
  });

  it("names an unknown label and the target that asked for it", () => {
    const r = failBuild(`export default (w) => {\n  w.package("p").run({ name: "a", srcs: [":nope"], outs: ["a"], cmd: "touch a" });\n};\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("BUILD.ts:2: //p:a depends on //p:nope, which is not declared");
    expect(r.stats.action_results).toBe(0);
  });

  it("names BUILD.ts's own lines when types make its compiled lines differ: a duplicate, and an error thrown", () => {
    const typed = (tail: string) => `// Types first: esbuild drops these lines.
interface Package {
  write(attrs: { name: string; out: string; content: string }): string;
}
type Workspace = {
  package(name: string): Package;
};

export default (w: Workspace) => {
  const p: Package = w.package("p");
  p.write({ name: "a", out: "a", content: "" });
${tail}
};
`;
    const dup = failBuild(typed(`  p.write({ name: "a", out: "b", content: "" });`));
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain("BUILD.ts:12: target //p:a is declared twice (first at BUILD.ts:11)");
    const thrown = failBuild(typed(`  if (p) throw new Error("no second target today");`));
    expect(thrown.code).toBe(1);
    expect(thrown.stderr).toContain("BUILD.ts:12: no second target today");
  });

  it("runs a BUILD.ts that needs a module loader (top-level await, import.meta) through it", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `const content: string = await Promise.resolve(import.meta.url.startsWith("file:") ? "module" : "other");
export default (w: any) => { w.package("p").write({ name: "a", out: "a.txt", content }); };
`,
    });
    const r = wmbSync(ws, ["build", "//p:a"]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(ws, "wmb-out/p/a.txt"), "utf8")).toBe("module");
  });

  it("runs a BUILD.ts that imports Node built-ins without a module loader; one importing a file of its own through it", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `import { readdirSync } from "node:fs";
import * as path from "path";
const names: string[] = readdirSync(path.join(process.cwd(), "p")).filter((f) => f.endsWith(".in")).sort();
export default (w: any) => { w.package("p").write({ name: "a", out: "a.txt", content: names.join(",") }); };
`,
      "p/x.in": "",
      "p/y.in": "",
    });
    const r = wmbSync(ws, ["build", "//p:a"]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(ws, "wmb-out/p/a.txt"), "utf8")).toBe("x.in,y.in");
    const cached = () => readdirSync(join(ws, ".wmb", "buildfile"));
    expect(cached().filter((f) => f.endsWith(".cjs"))).toHaveLength(1); // the plain path
    expect(cached().filter((f) => f.endsWith(".tsx"))).toHaveLength(0);

    writeFiles(ws, {
      "names.ts": `export const names = ["from", "a", "module"];\n`,
      "BUILD.ts": `import { names } from "./names.ts";\nexport default (w: any) => { w.package("p").write({ name: "a", out: "a.txt", content: names.join(",") }); };\n`,
    });
    const viaTsx = wmbSync(ws, ["build", "//p:a"]);
    expect(viaTsx.code, viaTsx.stderr).toBe(0);
    expect(readFileSync(join(ws, "wmb-out/p/a.txt"), "utf8")).toBe("from,a,module");
    expect(cached().filter((f) => f.endsWith(".tsx"))).toHaveLength(1);
  });

  it("names an unknown requested target", () => {
    const r = failBuild(`export default (w) => { w.package("p").write({ name: "a", out: "a", content: "" }); };\n`, {}, "//p:zzz");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Unknown target //p:zzz; targets in //p are //p:a");
  });

  it("names each target's own BUILD.ts line when asked after loading: in a loop, through a helper, through a macro", () => {
    const ws = makeWorkspace({
      "BUILD.ts": [
        "const twice = (p, n) =>",
        "  p.write({ name: n, out: n + \".txt\", content: n });",
        "export default (w) => {",
        "  const p = w.package(\"p\");",
        "  for (const n of [\"a\", \"b\"]) p.write({ name: n, out: n, content: n });",
        "  twice(p, \"c\");",
        "  p.wasi_binary({ name: \"m\", sources: [{ src: \"main.c\" }] });",
        "};",
        "",
      ].join("\n"),
    });
    const r = wmbSync(ws, ["query", "targets", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const at = Object.fromEntries((JSON.parse(r.stdout) as { label: string; declared_at: string }[]).map((t) => [t.label, t.declared_at]));
    expect(at).toEqual({ "//p:a": "BUILD.ts:5", "//p:b": "BUILD.ts:5", "//p:c": "BUILD.ts:2", "//p:m_main": "BUILD.ts:7", "//p:m": "BUILD.ts:7" });
  });

  it("refuses a duplicate target", () => {
    const r = failBuild(`export default (w) => {\n  const p = w.package("p");\n  p.write({ name: "a", out: "a", content: "" });\n  p.write({ name: "a", out: "b", content: "" });\n};\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("BUILD.ts:4: target //p:a is declared twice (first at BUILD.ts:3)");
  });

  it("prints a dependency cycle", () => {
    const r = failBuild(`export default (w) => {
  const p = w.package("p");
  p.run({ name: "a", srcs: [":b"], outs: ["a"], cmd: "touch a" });
  p.run({ name: "b", srcs: [":c"], outs: ["b"], cmd: "touch b" });
  p.run({ name: "c", srcs: [":a"], outs: ["c"], cmd: "touch c" });
};\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Dependency cycle: //p:a -> //p:b -> //p:c -> //p:a");
    expect(r.stats.action_results).toBe(0);
  });

  it("names a missing source file and its target", () => {
    const r = failBuild(`export default (w) => {\n  w.package("p").run({ name: "a", srcs: ["gone.c"], outs: ["a"], cmd: "cp gone.c a" });\n};\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("source file p/gone.c of //p:a does not exist");
    expect(r.stats.action_results).toBe(0);
  });

  it("refuses an output declared by two targets", () => {
    const r = failBuild(`export default (w) => {\n  const p = w.package("p");\n  p.write({ name: "a", out: "x.txt", content: "" });\n  p.write({ name: "b", out: "x.txt", content: "" });\n};\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`BUILD.ts:4: output "x.txt" of //p:b is already declared by //p:a (BUILD.ts:3)`);
  });

  it("refuses a source that leaves its package with .. (symlinks out: see store.test.ts)", () => {
    const up = failBuild(`export default (w) => { w.package("p").run({ name: "a", srcs: ["../../etc/passwd"], outs: ["a"], cmd: "cp x a" }); };\n`);
    expect(up.code).toBe(1);
    expect(up.stderr).toContain(`lists source "../../etc/passwd", which leaves its package directory`);
  });

  it("fails an action that does not write its declared output, with its label", () => {
    const r = failBuild(`export default (w) => { w.package("p").run({ name: "a", outs: ["a.txt"], cmd: "true" }); };\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`//p:a did not produce its declared output "a.txt"`);
    expect(r.stats.action_results).toBe(0);
  });

  it("refuses an output that is a symlink (it could point anywhere on the host)", () => {
    const r = failBuild(`export default (w) => { w.package("p").run({ name: "a", outs: ["a.txt"], cmd: "ln -s /etc/passwd a.txt" }); };\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`//p:a's output "a.txt" is a symlink; outputs must be regular files`);
    expect(r.stats.blobs).toBe(0);
  });

  it("shows the failing command and its stderr tail", () => {
    const r = failBuild(`export default (w) => { w.package("p").run({ name: "a", outs: ["a"], cmd: "echo something broke >&2; exit 7" }); };\n`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("//p:a failed: command exited with code 7");
    expect(r.stderr).toContain("| something broke");
  });

  it("says where to run when there is no BUILD.ts", () => {
    const ws = makeWorkspace({});
    const r = wmbSync(ws, ["build", "//p:a"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/No BUILD\.ts in .* or any parent directory/);
  });

  it("--keep-going builds what does not depend on the failure", () => {
    const ws = makeWorkspace({
      "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  p.run({ name: "bad", outs: ["bad"], cmd: "exit 1" });
  p.run({ name: "after", srcs: [":bad"], outs: ["after"], cmd: "touch after" });
  p.run({ name: "good", outs: ["good"], cmd: "sleep 0.3; touch good" });
};\n`,
    });
    const r = wmbSync(ws, ["build", "--json", "-k", "-j", "1", "//p:bad", "//p:after", "//p:good"]);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    const status = Object.fromEntries(j.actions.map((a: { label: string; status: string }) => [a.label, a.status]));
    expect(status).toEqual({ "//p:bad": "failed", "//p:after": "skipped", "//p:good": "executed" });
  });
});
