// What the bwrap sandbox costs: the same command actions run with --sandbox bwrap and with
// --sandbox none, per action on //examples and for the system toolchain's cold sqlite build.
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { probeBwrap } from "../src/sandbox-bwrap.ts";
import { cli, fmt, median, REPO, row, section } from "./harness.ts";

const ROUNDS = 7;

interface BuildJson {
  duration_ms: number;
  actions: { rule: string; status: string; duration_ms: number; sandbox?: string }[];
}

/** Median per-command-action time and median build wall time of `--no-cache` builds. */
function examples(mode: "bwrap" | "none", store: string): { perAction: number; wall: number } {
  const perAction: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const r = cli(REPO, ["build", "--json", "--no-cache", "-j", "1", "--sandbox", mode, "//examples:hello"], { WMB_STORE: store });
    const json = JSON.parse(r.stdout) as BuildJson;
    const commands = json.actions.filter((a) => a.sandbox === mode && a.status === "executed");
    perAction.push(...commands.map((a) => a.duration_ms));
    wall.push(r.ms);
  }
  return { perAction: median(perAction), wall: median(wall) };
}

function systemCold(mode: "bwrap" | "none", fetched: string): number {
  const store = join(mkdtempSync(join(tmpdir(), "wmb-bench-sbx-")), "store");
  cpSync(fetched, store, { recursive: true });
  return cli(REPO, ["build", "--toolchain", "system", "--sandbox", mode, "--store", store, "//sqlite-cli:sealed"]).ms;
}

export async function sandboxBench(): Promise<void> {
  section("sandbox (bwrap vs --sandbox none)");
  const probe = await probeBwrap();
  if (!probe.ok) {
    row("skipped", "-", probe.reason);
    return;
  }
  const store = mkdtempSync(join(tmpdir(), "wmb-bench-sbx-"));
  examples("none", store); // warm-up: fetch-free, fills the store
  const none = examples("none", store);
  const bwrap = examples("bwrap", store);
  row("//examples command action, none (median)", fmt(none.perAction));
  row("//examples command action, bwrap (median)", fmt(bwrap.perAction), `x${(bwrap.perAction / none.perAction).toFixed(2)}, +${fmt(bwrap.perAction - none.perAction)} per action`);
  row("//examples:hello --no-cache build, none (wall)", fmt(none.wall));
  row("//examples:hello --no-cache build, bwrap (wall)", fmt(bwrap.wall), `x${(bwrap.wall / none.wall).toFixed(2)}`);
  try {
    (await import("../rules/toolchain.ts")).createToolchain("system", { jobs: 1 });
  } catch (e) {
    row("system toolchain cold build", "-", (e as Error).message);
    return;
  }
  const fetched = join(mkdtempSync(join(tmpdir(), "wmb-bench-sbx-")), "store");
  cli(REPO, ["build", "--store", fetched, "//sqlite-cli:sqlite3_npm", "//sqlite-cli:jco_npm"]);
  const coldNone = systemCold("none", fetched);
  const coldBwrap = systemCold("bwrap", fetched);
  row("system toolchain cold //sqlite-cli:sealed, none", fmt(coldNone));
  row("system toolchain cold //sqlite-cli:sealed, bwrap", fmt(coldBwrap), `x${(coldBwrap / coldNone).toFixed(2)}`);
}
