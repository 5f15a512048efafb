// One temp directory per `vitest run`, shared by every worker (for the sqlite-cli fixture).
// WMB_TEST_RUN_DIR names a directory to use (and keep) instead, so a developer iterating on one
// suite builds the sqlite-cli fixture once across runs, not once per run.
// Every other temp file of the run (workspaces, stores, registries, sshd homes, sandboxes of the
// CLI processes the tests start) goes under one TMPDIR of the run, removed at the end, so a test
// run leaves nothing behind in /tmp (WMB_KEEP_TEST_RUN=1 keeps it for a post-mortem).
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
  // Workers and the processes they start inherit it; set before any worker exists. What tests
  // cache across runs stays in the system temp directory (test/helpers/test-cache.ts).
  process.env.WMB_TEST_CACHE ??= join(tmpdir(), "wmb-test-cache");
  const scratch = mkdtempSync(join(tmpdir(), "wmb-test-tmp-"));
  process.env.TMPDIR = scratch;
  return () => {
    if (process.env.WMB_KEEP_TEST_RUN) return;
    if (!kept) rmSync(dir, { recursive: true, force: true });
    try {
      rmSync(scratch, { recursive: true, force: true });
    } catch (e) {
      // A test that made a directory unwritable on purpose: say so, do not fail the run.
      process.stderr.write(`note: could not remove all of ${scratch}: ${(e as Error).message}\n`);
    }
  };
}
