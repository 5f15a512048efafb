// What the tests that start real servers (registry, sshd) share: a free loopback port, and
// killing every server a test forgot to stop when the worker exits.
import type { ChildProcess } from "node:child_process";
import { createServer } from "node:net";

/** A port that was free a moment ago (the caller must cope with losing the race). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** Remember a server process until it exits, so the worker's exit kills it if a test did not. */
export function track(child: ChildProcess): void {
  live.add(child);
  child.once("exit", () => live.delete(child));
}
