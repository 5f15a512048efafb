import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 900_000,
    // Suites spawn CLI processes and compilers; two cores, so keep files sequential-ish.
    fileParallelism: true,
    maxWorkers: 2,
    globalSetup: ["test/global-setup.ts"],
  },
});
