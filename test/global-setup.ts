// One temp directory per `vitest run`, shared by every worker (for the sqlite-cli fixture).
// WMB_TEST_RUN_DIR names a directory to use (and keep) instead, so a developer iterating on one
// suite builds the sqlite-cli fixture once across runs, not once per run.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    runDir: string;
  }
}

export default function setup(project: TestProject): () => void {
  const kept = process.env.WMB_TEST_RUN_DIR;
  if (kept) mkdirSync(kept, { recursive: true });
  const dir = kept ?? mkdtempSync(join(tmpdir(), "wmb-test-run-"));
  project.provide("runDir", dir);
  return () => {
    if (!kept && !process.env.WMB_KEEP_TEST_RUN) rmSync(dir, { recursive: true, force: true });
  };
}
