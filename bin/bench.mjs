#!/usr/bin/env node
// `npm run bench`: registers tsx and runs the benchmark suite (bench/main.ts).
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { register } from "tsx/esm/api";

// Figures are for the CLI as installed: bundle the sources first, so bin/wmb.mjs runs dist/.
spawnSync(process.execPath, [fileURLToPath(new URL("./build-dist.mjs", import.meta.url))], { stdio: "inherit" });
register();
const { main } = await import("../bench/main.ts");
process.exitCode = await main(process.argv.slice(2));
