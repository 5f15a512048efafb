// One temp directory per `vitest run`, shared by every worker (for the sqlite-cli fixture).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    runDir: string;
  }
}

export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), "wmb-test-run-"));
  project.provide("runDir", dir);
  return () => {
    if (!process.env.WMB_KEEP_TEST_RUN) rmSync(dir, { recursive: true, force: true });
  };
}
