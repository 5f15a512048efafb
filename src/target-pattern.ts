// Bazel's target patterns on the command line: `//pkg:all` (every target of a package),
// `//pkg/...` (every target of that package and the packages below it) and `//...` (every
// target). Anything else is a label. Expansion keeps the workspace's declaration order.
import { WmbError } from "./errors.ts";
import { canonicalLabel } from "./label.ts";
import { nearest } from "./nearest.ts";
import type { Target } from "./build-file.ts";

export function isTargetPattern(s: string): boolean {
  return s === "//..." || (s.startsWith("//") && (s.endsWith("/...") || s.endsWith(":all")));
}

/** Labels and patterns -> canonical labels, each once, in the order given. */
export function expandTargetPatterns(args: readonly string[], targets: ReadonlyMap<string, Target>): string[] {
  const out = new Set<string>();
  let packages: string[] | undefined;
  for (const arg of args) {
    if (!isTargetPattern(arg)) {
      out.add(canonicalLabel(arg));
      continue;
    }
    const under = arg === "//..." ? "" : arg.endsWith("/...") ? arg.slice(2, -4) : undefined;
    const pkg = under === undefined ? arg.slice(2, -4) : undefined;
    packages ??= [...new Set([...targets.values()].map((t) => t.pkg))];
    const matches = (p: string) => (under === undefined ? p === pkg : under === "" || p === under || p.startsWith(`${under}/`));
    if (!packages.some(matches)) {
      const wanted = pkg ?? under!;
      const near = nearest(wanted, packages);
      throw new WmbError("UNKNOWN_LABEL", `No package matches ${arg}; ${near.length ? `the nearest packages: ${near.map((p) => `//${p}`).join(", ")}.` : "run `wmb query targets` to list the packages."}`, { subject: arg });
    }
    for (const t of targets.values()) if (matches(t.pkg)) out.add(t.label);
  }
  return [...out];
}
