// Expanding glob patterns against a package directory, when BUILD.ts is loaded.
import { readdirSync } from "node:fs";
import { join, relative, sep } from "node:path";

/** Files (not directories, not symlinks) under `dir` matching any pattern, sorted. */
export function expandGlobs(dir: string, patterns: string[]): string[] {
  const res = patterns.map(globToRegExp);
  const out: string[] = [];
  const walk = (d: string) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const full = join(d, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.isFile()) {
        const rel = relative(dir, full).split(sep).join("/");
        if (res.some((r) => r.test(rel))) out.push(rel);
      }
    }
  };
  walk(dir);
  return out.sort();
}

export function globToRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*" && pattern[i + 1] === "*") {
      // "**/" matches zero or more directories.
      if (pattern[i + 2] === "/") {
        re += "(?:.*/)?";
        i += 2;
      } else {
        re += ".*";
        i += 1;
      }
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}
