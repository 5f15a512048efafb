// fetch and extract, run outside the engine on real sandboxes.
import { promises as fsp } from "node:fs";
import { describe, expect, it } from "vitest";
import { create as createTar } from "tar";
import { mkdtempSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { extract } from "../rules/extract.ts";
import { fetchPackage, integrityOf, parsePackageSpec } from "../rules/fetch.ts";
import { makeActionContext, runRule } from "./helpers/action-context.ts";

/** A gzipped tarball of `files` (paths as given, so tests can build hostile archives). */
async function tarball(files: Record<string, string>): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), "wmb-tar-"));
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(join(dir, p, ".."), { recursive: true });
    writeFileSync(join(dir, p), content);
  }
  const out = join(dir, "..", `${dir.split("/").pop()}.tgz`);
  await createTar({ gzip: true, cwd: dir, file: out, portable: true }, Object.keys(files));
  return fsp.readFile(out);
}

describe("fetch", () => {
  it("parses plain and scoped package specs", () => {
    expect(parsePackageSpec("sqlite3@6.0.1")).toEqual({ name: "sqlite3", basename: "sqlite3", version: "6.0.1" });
    expect(parsePackageSpec("@bytecodealliance/jco@1.35.0")).toEqual({ name: "@bytecodealliance/jco", basename: "jco", version: "1.35.0" });
    expect(() => parsePackageSpec("sqlite3")).toThrow(/name@version/);
    expect(() => parsePackageSpec("sqlite3@^6")).toThrow(/exact version/);
    expect(fetchPackage.outputs({ name: "x", package: "@bytecodealliance/jco@1.35.0", integrity: "sha512-x" })).toEqual(["jco-1.35.0.tgz"]);
  });

  it("fails on a wrong integrity and names the package and both digests", async () => {
    // Any published tarball will do; a small one keeps the test fast.
    const wrong = integrityOf(new TextEncoder().encode("not the tarball"));
    const action = await makeActionContext(fetchPackage, { name: "tiny", package: "is-number@7.0.0", integrity: wrong });
    const err = (await fetchPackage.run(action.ctx).then(() => undefined, (e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toContain("is-number@7.0.0");
    expect(err.message).toContain(`expected ${wrong}`);
    expect(err.message).toMatch(/got sha512-[A-Za-z0-9+/]+={0,2}/);
    expect(err.message).not.toMatch(new RegExp(`got ${wrong.replace(/[+/]/g, "\\$&")}`));
    await expect(fsp.stat(action.outputPaths[0]!)).rejects.toThrow();
  });

  it("writes the tarball when the integrity matches", async () => {
    const integrity = "sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==";
    const { outputPaths } = await runRule(fetchPackage, { name: "tiny", package: "is-number@7.0.0", integrity });
    expect(outputPaths[0]!.endsWith("is-number-7.0.0.tgz")).toBe(true);
    expect(integrityOf(await fsp.readFile(outputPaths[0]!))).toBe(integrity);
  });
});

describe("extract", () => {
  it("takes named members, also from a nested tarball", async () => {
    const inner = await tarball({ "lib-1.0/a.c": "int a;\n", "lib-1.0/b.h": "#define B 1\n", "lib-1.0/other": "x" });
    const innerDir = mkdtempSync(join(tmpdir(), "wmb-inner-"));
    mkdirSync(join(innerDir, "package/deps"), { recursive: true });
    writeFileSync(join(innerDir, "package/deps/lib-1.0.tar.gz"), inner);
    const outerFile = join(innerDir, "..", `${innerDir.split("/").pop()}.tgz`);
    await createTar({ gzip: true, cwd: innerDir, file: outerFile, portable: true }, ["package"]);

    const { dir } = await runRule(
      extract,
      { name: "src", archive: "package/deps/lib-1.0.tar.gz", files: { "a.c": "lib-1.0/a.c", "inc/b.h": "lib-1.0/b.h" } },
      { inputs: { "pkg.tgz": await fsp.readFile(outerFile) } },
    );
    expect(await fsp.readFile(join(dir, "a.c"), "utf8")).toBe("int a;\n");
    expect(await fsp.readFile(join(dir, "inc/b.h"), "utf8")).toBe("#define B 1\n");
    expect((await fsp.stat(join(dir, "a.c"))).mode & 0o777).toBe(0o644);
  });

  it("rejects member and output paths with .. or a leading /", async () => {
    const tgz = await tarball({ "ok.txt": "ok" });
    const attempt = (files: Record<string, string>, archive?: string) =>
      runRule(extract, { name: "x", files, ...(archive ? { archive } : {}) }, { inputs: { "in.tgz": tgz } });
    await expect(attempt({ "out.txt": "../etc/passwd" })).rejects.toThrow(/"\.\.\/etc\/passwd".*without "\.\."/);
    await expect(attempt({ "out.txt": "/etc/passwd" })).rejects.toThrow(/"\/etc\/passwd"/);
    await expect(attempt({ "out.txt": "a/../../b" })).rejects.toThrow(/without "\.\."/);
    await expect(attempt({ "ok.txt": "ok.txt" }, "../x.tgz")).rejects.toThrow(/archive/);
    expect(() => extract.outputs({ name: "x", files: { "../escape": "ok.txt" } })).toThrow(/output "\.\.\/escape"/);
  });

  it("names the members it cannot find", async () => {
    const tgz = await tarball({ "ok.txt": "ok" });
    await expect(runRule(extract, { name: "x", files: { "a": "missing.txt" } }, { inputs: { "in.tgz": tgz } })).rejects.toThrow(/no member "missing\.txt"/);
  });
});
