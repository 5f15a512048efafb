// Where the time goes, as a Chrome trace-event file (Bazel's --profile convention; Perfetto and
// chrome://tracing open it): `--profile FILE` on any command, or WMB_TRACE=FILE. Off, every call
// here is one branch. Timestamps are microseconds since the process started.
import { writeFileSync } from "node:fs";

export interface TraceEvent {
  name: string;
  cat: string;
  ph: "X" | "i";
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

let events: TraceEvent[] | undefined;
let output: string | undefined;

const us = (ms: number) => Math.round(ms * 1000);

/** Start recording, with the spans start-up already took (bin/wmb.mjs marks them). */
export function startTrace(file: string): void {
  if (events) return;
  events = [];
  output = file;
  const marks = globalThis as { __wmbEntry?: number; __wmbLoaded?: number };
  if (marks.__wmbEntry !== undefined) {
    span("node start-up", "startup", 0, marks.__wmbEntry);
    if (marks.__wmbLoaded !== undefined) span("load wmb modules", "startup", marks.__wmbEntry, marks.__wmbLoaded - marks.__wmbEntry);
  }
}

export function tracing(): boolean {
  return events !== undefined;
}

/** A finished span: `startMs` from performance.now(). `tid` separates parallel actions. */
export function span(name: string, cat: string, startMs: number, durMs: number, tid = 0, args?: Record<string, unknown>): void {
  events?.push(traceEvent(name, cat, startMs, durMs, tid, args));
}

/** A complete span as the trace holds it (also how `wmb serve` rebuilds a build's trace from
 * its history: an action's lane N is tid N + 1, as here). */
export function traceEvent(name: string, cat: string, startMs: number, durMs: number, tid = 0, args?: Record<string, unknown>): TraceEvent {
  return { name, cat, ph: "X", ts: us(startMs), dur: us(durMs), pid: 1, tid, args };
}

/** The trace file's text. */
export function traceText(list: TraceEvent[]): string {
  return JSON.stringify({ traceEvents: list, displayTimeUnit: "ms" });
}

/** Time `fn` as a span when tracing. */
export async function traced<T>(name: string, cat: string, fn: () => Promise<T>): Promise<T> {
  if (!events) return fn();
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    span(name, cat, t0, performance.now() - t0);
  }
}

/** Write the trace (once, at exit). */
export function writeTrace(): void {
  if (!events || !output) return;
  writeFileSync(output, traceText(events));
  process.stderr.write(`wrote trace ${output} (${events.length} events; open it in Perfetto or chrome://tracing)\n`);
  events = undefined;
}
