// `npm run bench`: prints figures; it asserts nothing. Sections: engine, sqlite-cli, run, verify.
import { engineBench } from "./engine-bench.ts";

export async function main(args: string[]): Promise<number> {
  const only = new Set(args);
  const want = (s: string) => only.size === 0 || only.has(s);
  console.log(`wmb benchmark — node ${process.version}, ${(await import("node:os")).availableParallelism()} cores`);
  if (want("engine")) await engineBench();
  return 0;
}
