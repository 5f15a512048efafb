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
    // At most `jobs` running: a plain counter, since a queue library's per-task bookkeeping
    // (async hooks) costs more than a cached action itself. A task a finished one unblocked
    // runs before the tasks that were ready from the start (depth first, as make goes): a chain
    // of a quick in-process action and a command then overlaps with the next chain, instead of
    // every in-process action running first while no command does (#16).
    const initial: string[] = [];
    let next = 0;
    const unblocked: string[] = [];
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
        const deps = dependents.get(id) ?? [];
        // Reversed onto the stack, so they start in the order they were declared.
        for (let i = deps.length - 1; i >= 0; i--) {
          const r = deps[i]!;
          const left = waiting.get(r)! - 1;
          waiting.set(r, left);
          if (left === 0) unblocked.push(r);
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
      while (running < jobs && (unblocked.length > 0 || next < initial.length)) {
        running++;
        void runTask(unblocked.pop() ?? initial[next++]!);
      }
      if (running === 0 && unblocked.length === 0 && next === initial.length) finish();
    };
    for (const n of nodes) if (n.deps.length === 0) initial.push(n.id);
    pump();
  });
}

/** At most `n` holders at once, served in the order they asked: the build gives each action's
 * own work (its rule running: a command, a compile) a slot, so -j bounds that work while the
 * engine's bookkeeping around it (keys, lookups, admitting outputs) overlaps with it (#16). */
export class Slots {
  private free: number;
  private readonly queue: (() => void)[] = [];

  constructor(n: number) {
    this.free = Math.max(1, n);
  }

  async hold<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.queue.push(r));
    try {
      return await fn();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.free++;
    }
  }
}
