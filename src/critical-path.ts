// The critical path of a finished build: the chain of actions that decided how long it took.
// Walk back from the action that finished last to the dependency of it that finished last,
// and so on (Bazel's critical path from actual timings): speeding up anything off that chain
// would not have made this build shorter.

export interface TimedAction {
  label: string;
  /** ms after the build started */
  startMs: number;
  durationMs: number;
  deps: readonly string[];
}

/** Labels first to last; empty when nothing was timed. */
export function criticalPath(actions: readonly TimedAction[]): string[] {
  const byLabel = new Map(actions.map((a) => [a.label, a]));
  const end = (a: TimedAction) => a.startMs + a.durationMs;
  let last: TimedAction | undefined;
  for (const a of actions) if (!last || end(a) > end(last)) last = a;
  const path: string[] = [];
  const seen = new Set<string>();
  while (last && !seen.has(last.label)) {
    seen.add(last.label);
    path.push(last.label);
    let next: TimedAction | undefined;
    for (const d of last.deps) {
      const dep = byLabel.get(d);
      if (dep && (!next || end(dep) > end(next))) next = dep;
    }
    last = next;
  }
  return path.reverse();
}
