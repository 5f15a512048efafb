// Build progress for people: on a terminal a live status line (done/total and the running
// actions with their elapsed time); elsewhere one line per executed or failed action. It
// writes no colour, so NO_COLOR/FORCE_COLOR leave it as it is.
import type { ActionReport, BuildEvents } from "./build.ts";
import { terminalText } from "./terminal-text.ts";

export function progressReporter(stream: NodeJS.WriteStream, opts: { quiet?: boolean; verbose?: boolean } = {}): BuildEvents & { stop(): void } {
  // A dumb terminal cannot erase a line.
  const live = stream.isTTY === true && process.env.TERM !== "dumb" && !opts.quiet;
  let total = 0;
  let done = 0;
  const running = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  const clear = () => {
    if (live) stream.write("\r\x1b[K");
  };
  const draw = () => {
    if (!live) return;
    const now = performance.now();
    const names = [...running.entries()]
      .slice(0, 3)
      .map(([l, t]) => `${l} ${((now - t) / 1000).toFixed(1)}s`)
      .join(", ");
    const line = `[${done}/${total}] ${names}`;
    const width = (stream.columns || 100) - 1;
    stream.write(`\r\x1b[K${line.length > width ? line.slice(0, width - 1) + "…" : line}`);
  };
  // Elsewhere (a file, a pipe) the lines of one turn of the event loop go out in one write: a
  // build of 20,000 actions otherwise makes 20,000 writes (#16).
  let pending = "";
  const flush = () => {
    if (pending) stream.write(pending);
    pending = "";
  };
  const print = (text: string) => {
    if (!live) {
      if (!pending) setImmediate(flush);
      pending += text + "\n";
      return;
    }
    clear();
    stream.write(text + "\n");
    draw();
  };
  return {
    planned(n) {
      total = n;
      if (live) timer = setInterval(draw, 200).unref();
    },
    started(label) {
      running.set(label, performance.now());
      draw();
    },
    finished(r: ActionReport) {
      running.delete(r.label);
      done++;
      if (opts.quiet) return;
      if (r.status === "executed") print(`[${done}/${total}] built ${r.label} (${fmtMs(r.durationMs)})`);
      else if (r.status === "failed") print(`[${done}/${total}] FAILED ${r.label}`);
      else if (opts.verbose) print(`[${done}/${total}] ${r.status === "remote" ? "from the remote cache" : "cached"} ${r.label}`);
      else draw();
      if (r.divergentFrom?.length) {
        print(`warning: ${r.label} produced different output for a key seen before (not deterministic); both results are kept — see \`wmb query nondeterministic\``);
      }
    },
    warning(message) {
      // Warnings carry what remotes say (a registry's error): never printed raw.
      print(`warning: ${terminalText(message)}`);
    },
    log(label, line) {
      if (opts.verbose || !live) print(`${label}: ${line}`);
    },
    stop() {
      if (timer) clearInterval(timer);
      flush();
      clear();
    },
  };
}

export function fmtMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
