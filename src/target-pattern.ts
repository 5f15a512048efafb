// Bazel's target patterns on the command line: `//pkg:all` (every target of a package),
// `//pkg/...` (every target of that package and the packages below it) and `//...` (every
// target); Bazel's longer spellings `//pkg/...:all` and `//...:all` mean the same. Anything
// else is a label. Expansion keeps the workspace's declaration order.
import { WmbError } from "./errors.ts";
import { canonicalLabel } from "./label.ts";
import { nearest } from "./nearest.ts";
import type { Target } from "./build-file.ts";

interface TargetPattern {
  /** "" is the root package. */
  pkg: string;
  /** Also the packages below `pkg`. */
  recursive: boolean;
}

function parsePattern(s: string): TargetPattern | undefined {
  if (!s.startsWith("//")) return undefined;
  const all = s.endsWith(":all");
  const body = s.slice(2, all ? -4 : undefined);
  if (body === "...") return { pkg: "", recursive: true };
  if (body.endsWith("/...")) return { pkg: body.slice(0, -4), recursive: true };
  return all ? { pkg: body, recursive: false } : undefined;
}

export function isTargetPattern(s: string): boolean {
  return parsePattern(s) !== undefined;
}

/** Labels and patterns -> canonical labels, each once, in the order given. */
export function expandTargetPatterns(args: readonly string[], targets: ReadonlyMap<string, Target>): string[] {
  const out = new Set<string>();
  let packages: string[] | undefined;
  for (const arg of args) {
    const pattern = parsePattern(arg);
    if (!pattern) {
      out.add(canonicalLabel(arg));
      continue;
    }
    const { pkg, recursive } = pattern;
    const matches = (p: string) => p === pkg || (recursive && (pkg === "" || p.startsWith(`${pkg}/`)));
    packages ??= [...new Set([...targets.values()].map((t) => t.pkg))];
    // Packages exist only through their targets, so a pattern that names one matches something.
    if (!packages.some(matches)) throw noPackage(arg, pkg, packages);
    for (const t of targets.values()) if (matches(t.pkg)) out.add(t.label);
  }
  return [...out];
}

function noPackage(arg: string, pkg: string, packages: string[]): WmbError {
  const near = nearest(pkg, packages);
  const hint = near.length ? `the nearest packages: ${near.map((p) => `//${p}`).join(", ")}` : "run `wmb query targets` to list the targets and their packages";
  return new WmbError("UNKNOWN_LABEL", `No package matches ${arg}; ${hint}.`, { subject: arg });
}
