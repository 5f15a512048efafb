// component: a wasm32-wasip1 core module -> a WASI 0.2 component, by wasm-tools'
// `component new` (from @bytecodealliance/jco-transpile) with the WASI preview1 *command*
// adapter, which maps the module's wasi_snapshot_preview1 imports onto wasi:cli and
// friends and exports wasi:cli/run. The adapter is an input (fetched from the
// @bytecodealliance/jco tarball), so its bytes are part of the key.
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import { packageVersion } from "../src/package-version.ts";
import { importModule } from "../src/import-module.ts";
import { defineRule, type CommonAttrs } from "./rule.ts";

export interface ComponentAttrs extends CommonAttrs {
  /** The core module, sandbox-relative. */
  module: string;
  /** wasi_snapshot_preview1.command.wasm, sandbox-relative. */
  adapter: string;
  /** Component to write; default "<name>.wasm". */
  out?: string;
}

/** The import module name the adapter replaces. */
const PREVIEW1 = "wasi_snapshot_preview1";

export const component = defineRule<ComponentAttrs>({
  name: "component",
  version: 1,
  // The output also depends on the jco-transpile (wasm-tools) version.
  tools: `jco-transpile@${packageVersion("@bytecodealliance/jco-transpile")}`,
  attrTypes: { module: "string", adapter: "string", out: "string?" },
  outputs: (a) => [a.out ?? `${a.name}.wasm`],
  async run(ctx) {
    const { module, adapter } = ctx.attrs;
    const [core, shim] = await Promise.all([fsp.readFile(join(ctx.dir, module)), fsp.readFile(join(ctx.dir, adapter))]);
    for (const [what, bytes] of [["module", core], ["adapter", shim]] as const) {
      // A core module starts \0asm, version 1; a component has layer 1 in bytes 6..7.
      if (bytes.length < 8 || bytes.readUInt32BE(0) !== 0x0061736d || bytes[6] !== 0) {
        throw new Error(`${ctx.label}: ${what} ${what === "module" ? module : adapter} is not a core wasm module`);
      }
    }
    const { componentNew } = await importModule<typeof import("@bytecodealliance/jco-transpile/wasm-tools")>("@bytecodealliance/jco-transpile/wasm-tools");
    let bytes: Uint8Array;
    try {
      bytes = await componentNew(core, [[PREVIEW1, shim]]);
    } catch (e) {
      throw new Error(`${ctx.label}: componentNew(${module}, adapter ${adapter}) failed: ${(e as Error).message ?? String(e)}`);
    }
    const dest = join(ctx.dir, ctx.outputs[0]!);
    await fsp.writeFile(dest, bytes, { mode: 0o644 });
  },
});
