// Timing helpers for the benchmark: wall time of CLI runs, medians, a table printer.
import { spawnSync } from "node:child_process";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const WMB = join(REPO, "bin/wmb.mjs");

export function cli(cwd: string, args: string[], env: Record<string, string> = {}): { ms: number; stdout: string; stderr: string } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [WMB, ...args], { cwd, encoding: "utf8", env: { ...process.env, ...env }, maxBuffer: 256 << 20 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`wmb ${args.join(" ")} exited ${r.status}:\n${r.stderr}`);
  return { ms, stdout: r.stdout, stderr: r.stderr };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function row(name: string, value: string, note = ""): void {
  console.log(`${name.padEnd(52)} ${value.padStart(14)}  ${note}`);
}

export function section(title: string): void {
  console.log(`\n== ${title}`);
}

export const fmt = (ms: number) => (ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`);

/** Run `body` with a loopback docker-registry (test/helpers/registry.ts), or print why the
 * section is skipped. */
export async function withRegistry(body: (host: string) => Promise<void> | void): Promise<void> {
  const { registryInstalled, startRegistry } = await import("../test/helpers/registry.ts");
  if (!registryInstalled) {
    row("skipped", "-", "docker-registry is not installed (apt-get install docker-registry)");
    return;
  }
  const reg = await startRegistry();
  try {
    await body(reg.host);
  } finally {
    await reg.stop();
  }
}
