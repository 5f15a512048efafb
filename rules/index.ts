// The rule library BUILD.ts sees: one method per rule on every package, plus macros
// (functions that declare several targets).
import { copy, glob, run, write } from "./generic.ts";
import { rootfs } from "./rootfs.ts";
import { seal } from "./seal.ts";
import { spec } from "./spec.ts";

export const library = { write, run, copy, glob, rootfs, spec, seal };
export type Library = typeof library;

export const macros = {};
export type Macros = typeof macros;
