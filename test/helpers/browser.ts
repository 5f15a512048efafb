// Debian's Chromium, headless, driven by playwright-core: never a downloaded browser. A fresh
// profile per launch. Tests that need it skip, saying so in one line, when it cannot start.
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { REPO } from "./cli.ts";

export const CHROMIUM = "/usr/bin/chromium";
const ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update"];

/** A browser context, or the one-line reason it could not start. */
export async function startChromium(): Promise<BrowserContext | string> {
  try {
    const { chromium } = await import("playwright-core");
    return await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "wmb-chromium-")), {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      viewport: { width: 1280, height: 860 },
      timeout: 60_000,
    });
  } catch (e) {
    return `chromium cannot start here (${String((e as Error)?.message ?? e).split("\n")[0]})`;
  }
}

/** Where the tests' screenshots go (kept after the run, to look at): test-artifacts/ or WMB_TEST_ARTIFACTS. */
export function artifactDir(name: string): string {
  const dir = join(process.env.WMB_TEST_ARTIFACTS ?? join(REPO, "test-artifacts"), name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export async function screenshot(page: Page, dir: string, name: string): Promise<void> {
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}
