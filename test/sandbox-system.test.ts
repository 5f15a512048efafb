// The system toolchain's clang and wasm-ld are host commands: they run under bwrap with the
// action at /build, so //sqlite-cli:sealed comes out the same from checkouts in any directory.
import { systemToolchainInstalled } from "./helpers/system-toolchain.ts";
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { wmb } from "./helpers/cli.ts";
import { copyWorkspace } from "./helpers/sqlite-fixture.ts";
import { probeBwrap } from "../src/sandbox-bwrap.ts";

const systemInstalled = systemToolchainInstalled;
const bwrapWorks = (await probeBwrap()).ok;
const MODE = process.env.WMB_TEST_SANDBOX ?? "bwrap";

interface BuildJson {
  actions: { label: string; rule: string; status: string; sandbox?: string; outputs?: Record<string, string> }[];
}

describe.skipIf(!systemInstalled || !bwrapWorks)("the system toolchain in the sandbox", () => {
  it("builds //sqlite-cli:sealed sandboxed, with the same identity from two checkouts in different directories", async () => {
    // A store holding only the two fetches (the shared fixture's may hold system compiles
    // already); each checkout builds on its own copy, at a path of a different length.
    const checkouts = [copyWorkspace(), join(mkdtempSync(join(tmpdir(), "wmb-another-checkout-")), "a", "b")];
    cpSync(checkouts[0]!, checkouts[1]!, { recursive: true });
    const fetched = join(mkdtempSync(join(tmpdir(), "wmb-fetched-")), "store");
    const f = await wmb(checkouts[0]!, ["build", "--store", fetched, "//sqlite-cli:sqlite3_npm", "//sqlite-cli:jco_npm"]);
    if (f.code !== 0) throw new Error(`fetching failed:\n${f.stderr}`);
    const builds = await Promise.all(
      checkouts.map(async (ws) => {
        const store = join(ws, ".wmb-copy");
        cpSync(fetched, store, { recursive: true });
        const r = await wmb(ws, ["build", "--json", "-j", "1", "--toolchain", "system", "--sandbox", MODE, "--store", store, "//sqlite-cli:sealed"]);
        if (r.code !== 0) throw new Error(`system build in ${ws} failed:\n${r.stderr}`);
        return JSON.parse(r.stdout) as BuildJson;
      }),
    );
    for (const b of builds) {
      const compiles = b.actions.filter((a) => a.rule.startsWith("wasi_"));
      expect(compiles.length).toBeGreaterThan(0);
      for (const c of compiles) expect(c).toMatchObject({ status: "executed", sandbox: "bwrap" });
    }
    const sealed = builds.map((b) => b.actions.find((a) => a.label === "//sqlite-cli:sealed")!.outputs);
    expect(sealed[1]).toEqual(sealed[0]);
  }, 240_000);
});
