// Names for temporary files that no other process or call picks at the same time: the pid, a
// per-process counter and a random part. Plain Math.random is enough here (nothing depends on
// it being unguessable), and it spares every command the load of node:crypto (#12).

let counter = 0;

export function uniqueSuffix(): string {
  counter++;
  return `${process.pid}-${counter.toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}
