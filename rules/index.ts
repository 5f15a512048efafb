// The rule library BUILD.ts sees: one method per rule on every package, plus macros
// (functions that declare several targets).
import { component } from "./component.ts";
import { extract } from "./extract.ts";
import { fetchPackage } from "./fetch.ts";
import { copy, glob, run, write } from "./generic.ts";
import { rootfs } from "./rootfs.ts";
import { seal } from "./seal.ts";
import { spec } from "./spec.ts";
import { wasiBinary, wasiCompile, wasiLink, type WasiBinaryOptions } from "./wasi-cc.ts";

export const library = {
  write,
  run,
  copy,
  glob,
  fetch: fetchPackage,
  extract,
  wasi_compile: wasiCompile,
  wasi_link: wasiLink,
  component,
  rootfs,
  spec,
  seal,
};
export type Library = typeof library;

interface MacroPackage {
  wasi_compile(attrs: Parameters<typeof wasiCompile.outputs>[0]): string;
  wasi_link(attrs: Parameters<typeof wasiLink.outputs>[0]): string;
}

export const macros = {
  /** One wasi_compile target per C file ("<name>_<stem>"), then one wasi_link target "<name>". */
  wasi_binary(pkg: MacroPackage, o: WasiBinaryOptions): string {
    const { compiles, link } = wasiBinary(o);
    for (const c of compiles) pkg.wasi_compile(c);
    return pkg.wasi_link(link);
  },
};
export type Macros = typeof macros;
