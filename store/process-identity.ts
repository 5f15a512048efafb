// Who a process is, in a form that survives pid reuse: pid, the kernel's start time for it
// (clock ticks since boot, /proc/<pid>/stat field 22), the boot id and the host. A lock or a
// sandbox naming a process is stale when no process has that pid *and* that start time on this
// boot, whatever `kill(pid, 0)` says.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";

export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks since boot; undefined where /proc is not there. */
  start?: string;
  boot?: string;
  host: string;
}

let bootId: string | undefined | null;
function currentBoot(): string | undefined {
  if (bootId === undefined) {
    try {
      bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    } catch {
      bootId = null;
    }
  }
  return bootId ?? undefined;
}

/** The start time of a running process, or undefined when it is not running (or no /proc). */
export function processStart(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so count from its end.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

let self: ProcessIdentity | undefined;
export function selfIdentity(): ProcessIdentity {
  self ??= { pid: process.pid, start: processStart(process.pid), boot: currentBoot(), host: hostname() };
  return self;
}

/** "pid start boot host" (one line; start and boot "-" when unknown). */
export function formatIdentity(p: ProcessIdentity): string {
  return `${p.pid} ${p.start ?? "-"} ${p.boot ?? "-"} ${p.host}`;
}

/** Reads formatIdentity's line, and the older "pid host". */
export function parseIdentity(text: string): ProcessIdentity | undefined {
  const f = text.trim().split(" ");
  const pid = Number(f[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  if (f.length === 2) return { pid, host: f[1]! };
  if (f.length !== 4) return undefined;
  return { pid, start: f[1] === "-" ? undefined : f[1], boot: f[2] === "-" ? undefined : f[2], host: f[3]! };
}

/** "alive" | "dead" on this host; "unknown" for another host's process (only its user can say). */
export function liveness(p: ProcessIdentity): "alive" | "dead" | "unknown" {
  const me = selfIdentity();
  if (p.host !== me.host) return "unknown";
  if (p.boot && me.boot && p.boot !== me.boot) return "dead"; // the host rebooted since
  if (p.start && me.start !== undefined) return processStart(p.pid) === p.start ? "alive" : "dead";
  try {
    process.kill(p.pid, 0);
    return "alive";
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM" ? "alive" : "dead";
  }
}
