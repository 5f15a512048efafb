// Drive the wmb CLI as a user would: a temp workspace, a real store, a child process.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const WMB = join(REPO, "bin/wmb.mjs");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A fresh workspace in a temp dir with the given files (path -> content). */
export function makeWorkspace(files: Record<string, string>, prefix = "wmb-ws-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  writeFiles(dir, { "package.json": '{ "type": "module" }\n', ...files });
  return dir;
}

export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), content);
  }
}

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.WMB_STORE;
  return { ...env, ...extra };
}

export function wmbSync(cwd: string, args: string[], opts: { env?: Record<string, string>; input?: string } = {}): CliResult {
  const r = spawnSync(process.execPath, [WMB, ...args], { cwd, env: cleanEnv(opts.env), input: opts.input, encoding: "utf8", maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function wmb(cwd: string, args: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<CliResult> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [WMB, ...args], { cwd, env: cleanEnv(opts.env) });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b) => (stdout += b));
    child.stderr.on("data", (b) => (stderr += b));
    child.on("close", (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.input ?? "");
  });
}

export interface BuildJson {
  ok: boolean;
  counts: { executed: number; cached: number; failed: number; skipped: number };
  actions: { label: string; status: string; outputs?: Record<string, string> }[];
}

/** `wmb build --json`, parsed; throws with stderr when the build did not exit 0. */
export function buildJson(cwd: string, args: string[], env?: Record<string, string>): BuildJson {
  const r = wmbSync(cwd, ["build", "--json", ...args], { env });
  if (r.code !== 0) throw new Error(`wmb build ${args.join(" ")} exited ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as BuildJson;
}

export function executed(b: BuildJson): string[] {
  return b.actions.filter((a) => a.status === "executed").map((a) => a.label).sort();
}

/** A three-action chain (write a, run b from a, run c from b): the small graph the remote-cache
 * attack tests poison and rebuild. */
export const CHAIN_WORKSPACE = {
  "BUILD.ts": `export default (w) => {
  const p = w.package("p");
  p.write({ name: "a", out: "a.txt", content: "alpha\\n" });
  p.run({ name: "b", srcs: [":a"], outs: ["b.txt"], cmd: "cat a.txt a.txt > b.txt" });
  p.run({ name: "c", srcs: [":b"], outs: ["c.txt"], cmd: "tr a-z A-Z < b.txt > c.txt" });
};\n`,
};
