#!/usr/bin/env node
// Entry point: registers tsx so the engine and BUILD.ts load as TypeScript, then runs the CLI.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
