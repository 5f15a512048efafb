// Type errors in BUILD.ts, found by the workspace's own TypeScript when it has a tsconfig.json.
// Runs only when BUILD.ts changed (the loader caches what passed), so a no-op build never pays.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { WmbError } from "./errors.ts";

function tscPath(root: string): string | undefined {
  try {
    const pj = createRequire(join(root, "package.json")).resolve("typescript/package.json");
    const bin = join(dirname(pj), "bin", "tsc");
    return existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}

/** Throws the first type error tsc reports in BUILD.ts; does nothing without tsconfig.json or TypeScript. */
export async function checkBuildFileTypes(root: string, buildFile: string): Promise<void> {
  if (!existsSync(join(root, "tsconfig.json"))) return;
  const tsc = tscPath(root);
  if (!tsc) return;
  const output = await new Promise<string>((resolve) => {
    execFile(process.execPath, [tsc, "--noEmit", "--pretty", "false", "-p", root], { cwd: root, maxBuffer: 16 << 20 }, (_err, stdout) => resolve(stdout));
  });
  // "BUILD.ts(12,5): error TS2322: Type 'number' is not assignable to type 'string'."
  const m = /^BUILD\.ts\((\d+),(\d+)\): error (TS\d+): (.*)$/m.exec(output);
  if (m) {
    throw new WmbError("BUILD_FILE", `BUILD.ts:${m[1]}:${m[2]}: type error ${m[3]}: ${m[4].replace(/\.$/, "")}; fix ${buildFile} and run again.`, { subject: buildFile });
  }
}
