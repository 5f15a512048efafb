// `npm run bench -- serve`: how `wmb serve`'s pages load on a large history, in Debian's
// Chromium: a store with 1,000 builds (the builds page shows 50 and pages), and one build of
// 20,000 recorded actions across 8 lanes (the timeline draws all of them on a canvas, the table
// shows 100 at a time). The history is written through the store's own API.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "../store/store.ts";
import type { ActionKey } from "../src/digest.ts";
import { median, row, section, fmt } from "./harness.ts";

const BUILDS = 1_000;
const ACTIONS = 20_000;
const LANES = 8;

export async function serveBench(): Promise<void> {
  section(`serve: page load on ${BUILDS} builds and a ${ACTIONS.toLocaleString("en")}-action timeline (Chromium)`);
  const { startChromium } = await import("../test/helpers/browser.ts");
  const ctx = await startChromium();
  if (typeof ctx === "string") {
    row("skipped", "-", ctx);
    return;
  }
  const dir = join(mkdtempSync(join(tmpdir(), "wmb-serve-bench-")), "store");
  const store = await Store.open(dir);
  for (let i = 0; i < BUILDS; i++) {
    const id = store.history.begin({ command: "build", targets: [`//bench:t${i % 7}`], workspace: "/bench" });
    store.history.recordAction({ buildId: id, label: `//bench:t${i % 7}`, key: `${i}`.padStart(64, "0") as ActionKey, status: i % 3 ? "cached" : "executed", durationMs: 5, startMs: 1, lane: 0 });
    store.history.finish(id, i % 50 === 49 ? "failed" : "ok", { counts: { executed: i % 3 ? 0 : 1, cached: i % 3 ? 1 : 0, remote: 0, failed: 0, skipped: 0 }, criticalPath: [`//bench:t${i % 7}`] });
  }
  const big = store.history.begin({ command: "build", targets: ["//bench:all"], workspace: "/bench" });
  const laneEnd = new Array<number>(LANES).fill(0);
  for (let i = 0; i < ACTIONS; i++) {
    const lane = i % LANES;
    const durationMs = 3 + ((i * 7919) % 40);
    store.history.recordAction({ buildId: big, label: `//bench/p${i % 100}:a${i}`, key: i.toString(16).padStart(64, "0") as ActionKey, status: i % 11 ? "executed" : "cached", durationMs, startMs: laneEnd[lane], lane });
    laneEnd[lane]! += durationMs + 1;
  }
  store.history.finish(big, "ok", { counts: { executed: ACTIONS - Math.ceil(ACTIONS / 11), cached: Math.ceil(ACTIONS / 11), remote: 0, failed: 0, skipped: 0 }, criticalPath: [] });

  const { serve } = await import("../src/web/server.ts");
  const running = await serve({ store, workspace: () => Promise.reject(new Error("no workspace in the bench")), host: "127.0.0.1", port: 0 });
  try {
    const page = await ctx.newPage();
    const time = async (url: string, ready: string): Promise<number> => {
      const t0 = performance.now();
      await page.goto(url);
      await page.waitForSelector(ready, { timeout: 120_000 });
      return performance.now() - t0;
    };
    const runs = (n: number, f: () => Promise<number>) => (async () => { const xs: number[] = []; for (let i = 0; i < n; i++) xs.push(await f()); return xs; })();
    const buildsPage = await runs(5, () => time(`${running.url}/builds`, "tr[data-build]"));
    row(`/builds of ${BUILDS} builds, to the table (median of 5)`, fmt(median(buildsPage)), `50 a page; ${(await (await fetch(`${running.url}/api/builds`)).text()).length} bytes of JSON`);
    const older = await runs(5, () => time(`${running.url}/builds?before=500`, "tr[data-build]"));
    row(`/builds?before=500 (an older page)`, fmt(median(older)));
    const json = await (await fetch(`${running.url}/api/builds/${big}`)).text();
    const timeline = await runs(3, () => time(`${running.url}/builds/${big}`, `canvas[data-actions="${ACTIONS}"]`));
    row(`/builds/<id> of ${ACTIONS} actions, to the drawn timeline (median of 3)`, fmt(median(timeline)), `${(json.length / 1e6).toFixed(1)} MB of JSON; table 100 rows a page`);
    const t0 = performance.now();
    await page.click("text=next →");
    await page.waitForSelector(`text=101–200 of ${ACTIONS}`, { timeout: 30_000 });
    row(`next page of its action table`, fmt(performance.now() - t0));
    await page.close();
  } finally {
    await running.close();
    await ctx.close();
    store.close();
  }
}
