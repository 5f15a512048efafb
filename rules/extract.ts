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
import { dirname, join } from "node:path";
import { Parser, type ReadEntry } from "tar";
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

const FILE_TYPES = new Set(["File", "OldFile", "ContiguousFile"]);

/** Read the wanted members of a tarball (gzip is detected) into memory. */
export function readMembers(tarball: Uint8Array, wanted: ReadonlySet<string>): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    const found = new Map<string, Buffer>();
    const parser = new Parser({
      strict: true,
      onReadEntry(entry: ReadEntry) {
        const path = entry.path.replace(/^\.\//, "");
        if (!wanted.has(path)) return entry.resume();
        if (!FILE_TYPES.has(entry.type)) {
          entry.resume();
          return reject(new Error(`extract: member "${path}" is a ${entry.type}, not a regular file`));
        }
        const chunks: Buffer[] = [];
        entry.on("data", (c: Buffer) => chunks.push(c));
        entry.on("end", () => found.set(path, Buffer.concat(chunks)));
      },
    });
    parser.on("error", (e: Error) => reject(new Error(`extract: not a readable tarball: ${e.message}`)));
    parser.on("end", () => resolve(found));
    parser.end(Buffer.from(tarball.buffer, tarball.byteOffset, tarball.byteLength));
  });
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
      const got = (await readMembers(bytes, new Set([inner]))).get(inner);
      if (!got) throw new Error(`extract: ${source} has no member "${inner}"`);
      bytes = got;
      from = `${source}!${inner}`;
    }
    const found = await readMembers(bytes, new Set(members.map(([, m]) => m)));
    const missing = members.filter(([, m]) => !found.has(m)).map(([, m]) => m);
    if (missing.length > 0) throw new Error(`extract: ${from} has no member ${missing.map((m) => `"${m}"`).join(", ")}`);
    for (const [out, member] of members) {
      const dest = join(ctx.dir, out);
      await fsp.mkdir(dirname(dest), { recursive: true });
      await fsp.writeFile(dest, found.get(member)!, { mode: 0o644 });
    }
  },
});
