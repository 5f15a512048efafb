// The scheduler: runs a DAG of tasks in dependency order with bounded parallelism. It knows
// nothing of keys or caches; the rebuilder decides what each task does.

export interface SchedulerOptions {
  jobs: number;
  /** Go on with everything that does not depend on a failure. */
  keepGoing: boolean;
  signal: AbortSignal;
}

export interface ScheduleResult {
  failed: Map<string, unknown>;
  /** Not run because a dependency failed, the build stopped, or it was interrupted. */
  skipped: string[];
}

/** `nodes` in any order; `deps` of each must be among them. */
export async function schedule(
  nodes: { id: string; deps: string[] }[],
  run: (id: string) => Promise<void>,
  opts: SchedulerOptions,
): Promise<ScheduleResult> {
  const jobs = Math.max(1, opts.jobs);
  const waiting = new Map<string, number>();
  const dependents = new Map<string, string[]>();
  for (const n of nodes) {
    waiting.set(n.id, n.deps.length);
    for (const d of n.deps) {
      const list = dependents.get(d) ?? [];
      list.push(n.id);
      dependents.set(d, list);
    }
  }
  const failed = new Map<string, unknown>();
  const done = new Set<string>();
  let stopped = false;

  return new Promise<ScheduleResult>((resolve) => {
    // Ready tasks in FIFO order, at most `jobs` running: a plain counter, since a queue
    // library's per-task bookkeeping (async hooks) costs more than a cached action itself.
    const ready: string[] = [];
    let next = 0;
    let running = 0;
    const finish = () => {
      const skipped = nodes.map((n) => n.id).filter((id) => !done.has(id) && !failed.has(id));
      resolve({ failed, skipped });
    };
    const runTask = async (id: string) => {
      try {
        if (stopped || opts.signal.aborted) return;
        await run(id);
        done.add(id);
        for (const r of dependents.get(id) ?? []) {
          const left = waiting.get(r)! - 1;
          waiting.set(r, left);
          if (left === 0) ready.push(r);
        }
      } catch (e) {
        failed.set(id, e);
        if (!opts.keepGoing) stopped = true;
      } finally {
        running--;
        pump();
      }
    };
    const pump = () => {
      while (running < jobs && next < ready.length) {
        running++;
        void runTask(ready[next++]!);
      }
      if (running === 0 && next === ready.length) finish();
    };
    for (const n of nodes) if (n.deps.length === 0) ready.push(n.id);
    pump();
  });
}
