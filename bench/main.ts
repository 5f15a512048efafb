// `npm run bench`: prints figures; it asserts nothing. Sections (all by default, or name
// them): startup, engine, scale, sqlite, system, run, sandbox, oci, ssh, remote, trust, serve.
import { availableParallelism } from "node:os";
import { engineBench } from "./engine-bench.ts";
import { runBench } from "./run-bench.ts";
import { scaleBench } from "./scale-bench.ts";
import { sqliteBench } from "./sqlite-bench.ts";

export async function main(args: string[]): Promise<number> {
  const only = new Set(args);
  const want = (s: string) => only.size === 0 || only.has(s);
  console.log(`wmb benchmark — node ${process.version}, ${availableParallelism()} cores`);
  if (want("startup")) await (await import("./startup-bench.ts")).startupBench();
  if (want("engine")) await engineBench();
  if (want("scale")) await scaleBench();
  const kinds = (["hermetic", "system"] as const).filter((k) => want(k === "hermetic" ? "sqlite" : "system"));
  if (kinds.length) await sqliteBench([...kinds]);
  if (want("run")) await runBench();
  if (want("sandbox")) await (await import("./sandbox-bench.ts")).sandboxBench();
  if (want("oci")) await (await import("./oci-bench.ts")).ociBench();
  if (want("ssh")) await (await import("./ssh-bench.ts")).sshBench();
  if (want("remote")) await (await import("./remote-cache-bench.ts")).remoteCacheBench();
  if (want("trust")) await (await import("./trust-bench.ts")).trustBench();
  if (want("serve")) await (await import("./serve-bench.ts")).serveBench();
  return 0;
}
