// What the run page and its worker share.
export { RUNNER_INTERFACES as WORKER_INTERFACES } from "../../run/runner-interfaces.ts";

/** The origin-private file system directory holding one writable path of one machine. */
export function opfsDirName(identity: string, guest: string): string {
  return `wmb-${identity.replace(/^blake3:/, "").slice(0, 32)}${guest.replace(/\//g, "_")}`;
}
