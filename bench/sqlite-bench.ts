// //sqlite-cli figures: cold build per toolchain next to the same compiler invocations run
// directly (wmb's overhead), no-op build, rootfs-only rebuild, verify relative to a cold build.
import { cpSync, mkdirSync, mkdtempSync, appendFileSync, rmSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { buildFileCache, loadWorkspace } from "../src/build-file.ts";
import { createToolchain } from "../rules/toolchain.ts";
import { compileArgs, linkArgs, type WasiCompileAttrs, type WasiLinkAttrs } from "../rules/wasi-cc.ts";
import { cli, fmt, median, REPO, row, section } from "./harness.ts";

function workspaceCopy(): string {
  const ws = mkdtempSync(join(tmpdir(), "wmb-bench-sqlite-"));
  for (const f of ["BUILD.ts", "package.json"]) copyFileSync(join(REPO, f), join(ws, f));
  cpSync(join(REPO, "sqlite-cli"), join(ws, "sqlite-cli"), { recursive: true });
  return ws;
}

/** The compile and link of //sqlite-cli:wasm run straight on the toolchain, -j2, no wmb. */
async function directCompile(kind: "hermetic" | "system", srcDir: string): Promise<number> {
  const ws = await loadWorkspace(REPO, buildFileCache(join(REPO, ".wmb")));
  const compiles = [...ws.targets.values()].filter((t) => t.rule.name === "wasi_compile");
  const link = ws.targets.get("//sqlite-cli:wasm")!;
  const dir = mkdtempSync(join(tmpdir(), "wmb-bench-direct-"));
  for (const f of ["sqlite3.c", "sqlite3.h", "shell.c"]) copyFileSync(join(srcDir, f), join(dir, f));
  cpSync(join(REPO, "sqlite-cli/shims"), join(dir, "shims"), { recursive: true });
  const t0 = performance.now();
  const tc = createToolchain(kind, { jobs: 2 });
  try {
    const outs = await Promise.all(
      compiles.map(async (c) => {
        const a = c.attrs as unknown as WasiCompileAttrs;
        mkdirSync(join(dir, dirname(c.outputs[0]!)), { recursive: true });
        await tc.run("clang", compileArgs(a), dir);
        return c.outputs[0]!;
      }),
    );
    await tc.run("clang", linkArgs(link.attrs as unknown as WasiLinkAttrs, outs), dir);
  } finally {
    await tc.close();
  }
  const ms = performance.now() - t0;
  rmSync(dir, { recursive: true, force: true });
  return ms;
}

export async function sqliteBench(kinds: ("hermetic" | "system")[]): Promise<void> {
  for (const kind of kinds) {
    section(`//sqlite-cli:sealed, ${kind} toolchain`);
    const ws = workspaceCopy();
    let cold: number;
    try {
      cold = cli(ws, ["build", "--toolchain", kind, "//sqlite-cli:sealed"]).ms;
    } catch (e) {
      row("cold build", "skipped", (e as Error).message.split("\n")[1] ?? "");
      continue;
    }
    row("cold build (empty store, wall)", fmt(cold), "fetch, extract, compiles, link, component, rootfs, spec, seal");
    // Like for like: the compile and link actions through wmb (sources already fetched),
    // and the same compiler invocations run straight on the toolchain. Alternated, best of
    // two each: hermetic compiles of sqlite3.c vary by +-20% from run to run here.
    const viaWmbRuns: number[] = [];
    const directRuns: number[] = [];
    for (let i = 0; i < 2; i++) {
      const ws2 = workspaceCopy();
      cli(ws2, ["build", "//sqlite-cli:src"]);
      viaWmbRuns.push(cli(ws2, ["build", "--toolchain", kind, "//sqlite-cli:wasm"]).ms);
      directRuns.push(await directCompile(kind, join(ws2, "wmb-out/sqlite-cli")));
      rmSync(ws2, { recursive: true, force: true });
    }
    const viaWmb = Math.min(...viaWmbRuns);
    const direct = Math.min(...directRuns);
    row("compiles + link through wmb (wall, best of 2)", fmt(viaWmb), viaWmbRuns.map(fmt).join(", "));
    row("same compiles + link run directly (best of 2)", fmt(direct), `wmb overhead ratio ${(viaWmb / direct).toFixed(2)} (target < 1.10)`);
    const noop = [0, 1, 2].map(() => cli(ws, ["build", "--toolchain", kind, "//sqlite-cli:sealed"]).ms);
    row("no-op build (wall, median of 3)", fmt(median(noop)), "target < 300 ms");
    appendFileSync(join(ws, "sqlite-cli/rootfs/.sqliterc"), `-- bench ${Date.now()}\n`);
    row("rootfs-only rebuild (wall)", fmt(cli(ws, ["build", "--toolchain", kind, "//sqlite-cli:sealed"]).ms), "target < 1.5 s");
    if (kind === "hermetic") {
      const v = cli(ws, ["verify", "--toolchain", kind, "//sqlite-cli:sealed"]).ms;
      row("verify, 1 round (wall)", fmt(v), `${(v / cold).toFixed(2)} x cold build (target <= 1.1)`);
    }
    rmSync(ws, { recursive: true, force: true });
  }
}
