// The target graph: checks that every dependency exists and that there is no cycle, and
// answers closure / reverse-dependency questions. One target is one action.
import { WmbError } from "./errors.ts";
import { nearest } from "./nearest.ts";
import type { Target } from "./build-file.ts";

export class Graph {
  readonly targets: Map<string, Target>;
  private readonly rdepsMap = new Map<string, string[]>();

  constructor(targets: Map<string, Target>) {
    this.targets = targets;
    for (const t of targets.values()) {
      for (const d of t.deps) {
        if (!targets.has(d)) {
          throw new WmbError("UNKNOWN_LABEL", `${t.declaredAt}: ${t.label} depends on ${d}, which is not declared; ${suggest(d, targets)}.`, { subject: d });
        }
        const list = this.rdepsMap.get(d) ?? [];
        list.push(t.label);
        this.rdepsMap.set(d, list);
      }
    }
    this.checkAcyclic();
  }

  get(label: string): Target {
    const t = this.targets.get(label);
    if (!t) throw new WmbError("UNKNOWN_LABEL", `Unknown target ${label}; ${suggest(label, this.targets)}.`, { subject: label });
    return t;
  }

  /** The targets `roots` need, dependencies before dependents (a deterministic order). */
  closure(roots: string[]): Target[] {
    const order: Target[] = [];
    const seen = new Set<string>();
    const visit = (label: string) => {
      if (seen.has(label)) return;
      seen.add(label);
      const t = this.get(label);
      for (const d of t.deps) visit(d);
      order.push(t);
    };
    for (const r of roots) visit(r);
    return order;
  }

  /** Direct dependents of a target. */
  dependents(label: string): string[] {
    return this.rdepsMap.get(label) ?? [];
  }

  /** Every target that depends on `label`, directly or not. */
  reverseClosure(label: string): string[] {
    const out = new Set<string>();
    const stack = [label];
    while (stack.length) {
      for (const r of this.dependents(stack.pop()!)) {
        if (!out.has(r)) {
          out.add(r);
          stack.push(r);
        }
      }
    }
    return [...out].sort();
  }

  private checkAcyclic(): void {
    const state = new Map<string, 1 | 2>(); // 1 = on the stack, 2 = done
    const stack: string[] = [];
    const visit = (label: string) => {
      const s = state.get(label);
      if (s === 2) return;
      if (s === 1) {
        const cycle = [...stack.slice(stack.indexOf(label)), label];
        throw new WmbError("CYCLE", `Dependency cycle: ${cycle.join(" -> ")}; remove one of these dependencies in BUILD.ts (${this.targets.get(label)!.declaredAt}).`, { subject: label });
      }
      state.set(label, 1);
      stack.push(label);
      for (const d of this.targets.get(label)!.deps) visit(d);
      stack.pop();
      state.set(label, 2);
    };
    for (const label of [...this.targets.keys()].sort()) visit(label);
  }
}

function suggest(label: string, targets: Map<string, Target>): string {
  const near = nearest(label, targets.keys());
  if (near.length) return `the nearest declared: ${near.join(", ")}`;
  const pkg = label.slice(2).split(":")[0];
  const inPkg = [...targets.keys()].filter((l) => l.startsWith(`//${pkg}:`)).slice(0, 5);
  return inPkg.length ? `targets in //${pkg} are ${inPkg.join(", ")}` : "run `wmb query targets` to list the declared targets";
}
