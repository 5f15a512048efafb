// Small real WASI 0.2 components for the format, spec and seal tests: a C `main` compiled by
// @yowasp/clang to wasm32-wasip1 (with the link flags a test asks for, e.g. --max-memory) and
// wrapped by jco's componentNew with the preview1 command adapter (fetched once by
// test/helpers/guest-fixture.ts). Cached in testCacheDir() by source, flags and versions.
import { testCacheDir } from "./test-cache.ts";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { componentNew } from "@bytecodealliance/jco-transpile/wasm-tools";
import { commands } from "@yowasp/clang";
import { commandAdapter } from "./guest-fixture.ts";

export const TINY_MAIN_C = `#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  const char *home = getenv("HOME");
  printf("tiny %d %s\\n", argc, home ? home : "-");
  FILE *f = fopen("/db/x", "w");
  if (f) fclose(f);
  return 0;
}
`;

export interface TinyComponent {
  core: Uint8Array;
  component: Uint8Array;
}

function clangVersion(): string {
  const entry = createRequire(import.meta.url).resolve("@yowasp/clang");
  return (JSON.parse(readFileSync(join(dirname(entry), "..", "package.json"), "utf8")) as { version: string }).version;
}

/** A component from `source` linked with `linkFlags` (e.g. ["-Wl,--max-memory=1048576"]). */
export async function tinyComponent(opts: { source?: string; linkFlags?: string[] } = {}): Promise<TinyComponent> {
  const source = opts.source ?? TINY_MAIN_C;
  const flags = opts.linkFlags ?? [];
  const key = createHash("sha256").update(JSON.stringify([source, flags, clangVersion(), 1])).digest("hex").slice(0, 24);
  const dir = join(testCacheDir(), `tiny-${key}`);
  const corePath = join(dir, "core.wasm");
  const componentPath = join(dir, "component.wasm");
  if (existsSync(componentPath)) return { core: readFileSync(corePath), component: readFileSync(componentPath) };

  const { "main.wasm": core } = (await commands.clang(["--target=wasm32-wasip1", "-O2", ...flags, "-o", "main.wasm", "main.c"], {
    "main.c": source,
  })) as { "main.wasm": Uint8Array };
  const component = await componentNew(core, [["wasi_snapshot_preview1", await commandAdapter()]]);
  mkdirSync(dir, { recursive: true });
  // Core first, component last: the component's presence means both are whole.
  for (const [path, bytes] of [[corePath, core], [componentPath, component]] as const) {
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  }
  return { core, component };
}
