#!/usr/bin/env node
// `npm run bench`: registers tsx and runs the benchmark suite (bench/main.ts).
import { register } from "tsx/esm/api";

register();
const { main } = await import("../bench/main.ts");
process.exitCode = await main(process.argv.slice(2));
