// extract: named files out of a tarball (gzip or plain), optionally out of a tarball nested
// inside it, e.g. the sqlite-autoconf tarball that the sqlite3 npm package carries:
//
//   pkg.extract({
//     name: "src",
//     srcs: [":sqlite3_npm"],
//     archive: "package/deps/sqlite-autoconf-3520000.tar.gz",
//     files: {
//       "sqlite3.c": "sqlite-autoconf-3520000/sqlite3.c",
//       "sqlite3.h": "sqlite-autoconf-3520000/sqlite3.h",
//       "shell.c": "sqlite-autoconf-3520000/shell.c",
//     },
//   });
//
// Outputs are the keys of `files`, written with mode 0644 whatever the archive says.
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { readTar, TarFormatError } from "../src/formats/tar-reader.ts";
import { defineRule, type CommonAttrs } from "./rule.ts";

export interface ExtractAttrs extends CommonAttrs {
  /** Output path -> member path inside the (inner) archive. */
  files: Record<string, string>;
  /** Member of the input tarball that is itself a tarball; `files` are taken from it. */
  archive?: string;
  /** Which input is the tarball, when the target has several (default: its only input). */
  tarball?: string;
}

/** A relative path without "..", "." segments, backslashes or a leading "/". */
export function checkRelativePath(p: string, what: string): string {
  const clean = p.replace(/^\.\//, "");
  const segments = clean.split("/");
  if (clean === "" || p.startsWith("/") || /^[A-Za-z]:/.test(p) || p.includes("\\") || p.includes("\0") || segments.some((s) => s === ".." || s === "." || s === "")) {
    throw new Error(`extract: ${what} "${p}" must be a relative path without ".." or "." segments`);
  }
  return clean;
}

function outputsOf(a: ExtractAttrs): string[] {
  if (a.files === null || typeof a.files !== "object" || Object.keys(a.files).length === 0) {
    throw new Error(`extract: "files" must map at least one output name to a member path`);
  }
  return Object.keys(a.files).map((k) => checkRelativePath(k, "output"));
}

/** A decompressed tarball larger than this is refused (a gzip bomb), like an oversized entry. */
const MAX_ARCHIVE_BYTES = 2 * (1 << 30);

/** Read the wanted members of a tarball (gzip is detected) with the one tar reader. A wanted
 * member must be a regular file, present once: a link, or two entries of one name (which
 * would make the result depend on which one a tool takes), is refused. */
export function readMembers(tarball: Uint8Array, wanted: ReadonlySet<string>): Map<string, Uint8Array> {
  let bytes = tarball;
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: MAX_ARCHIVE_BYTES });
    } catch (e) {
      throw new Error(`extract: not a readable gzip stream: ${(e as Error).message}`);
    }
  }
  let entries;
  try {
    entries = readTar(bytes);
  } catch (e) {
    if (e instanceof TarFormatError) throw new Error(`extract: not a readable tarball: ${e.message}`);
    throw e;
  }
  const found = new Map<string, Uint8Array>();
  for (const e of entries) {
    const path = e.path.replace(/^(\.\/)+/, "");
    if (!wanted.has(path)) continue;
    if (e.type !== "file") throw new Error(`extract: member "${path}" is a ${e.type}, not a regular file`);
    if (found.has(path)) throw new Error(`extract: member "${path}" appears more than once in the tarball`);
    found.set(path, e.data);
  }
  return found;
}

export const extract = defineRule<ExtractAttrs>({
  name: "extract",
  version: 1,
  attrTypes: { files: "object", archive: "string?", tarball: "string?" },
  outputs: outputsOf,
  async run(ctx) {
    const { files, archive, tarball } = ctx.attrs;
    const members = Object.entries(files).map(([out, member]) => [checkRelativePath(out, "output"), checkRelativePath(member, "member")] as const);
    const inner = archive === undefined ? undefined : checkRelativePath(archive, "archive");

    const candidates = tarball === undefined ? ctx.inputs.map((i) => i.path) : [tarball];
    if (candidates.length !== 1) {
      throw new Error(`extract: ${ctx.label} has ${candidates.length} inputs; say which one is the tarball with "tarball"`);
    }
    const source = candidates[0]!;
    let bytes: Uint8Array = await fsp.readFile(join(ctx.dir, source));
    let from = source;
    if (inner !== undefined) {
      const got = readMembers(bytes, new Set([inner])).get(inner);
      if (!got) throw new Error(`extract: ${source} has no member "${inner}"`);
      bytes = got;
      from = `${source}!${inner}`;
    }
    const found = readMembers(bytes, new Set(members.map(([, m]) => m)));
    const missing = members.filter(([, m]) => !found.has(m)).map(([, m]) => m);
    if (missing.length > 0) throw new Error(`extract: ${from} has no member ${missing.map((m) => `"${m}"`).join(", ")}`);
    for (const [out, member] of members) {
      const dest = join(ctx.dir, out);
      await fsp.writeFile(dest, found.get(member)!, { mode: 0o644 });
    }
  },
});
