// What a sealed machine is granted when it runs, derived from its spec alone: argv[0] is its
// name, one writable host directory per declared writable path, and exactly the WASI
// interfaces its composition binds to the host. What seal checked is checked again here
// (the bindings match the component; no network import under `network: "deny"`; memories
// within `memory_bytes`), since a spec may have been sealed by anything; and every bound
// interface must be one the runner implements, so a gap is named before anything starts.
import { isAbsolute, join, posix, resolve } from "node:path";
import { WmbError } from "../errors.ts";
import { bindingDifferences, policyViolations, WASI_HOST, type SealedSpec } from "../formats/machine-spec.ts";
import { readComponent } from "../formats/wasm.ts";
import { RUNNER_INTERFACES, type WritableMount } from "./runtime.ts";

export interface MachineGrant {
  argv0: string;
  mounts: WritableMount[];
  /** Unversioned WASI interface names ("wasi:cli/stdout"). */
  interfaces: string[];
  /** The runner executes the guest on one thread (WASI 0.2 has no threads): any `cpus` >= 1
   * is honoured, as an upper bound the guest never reaches. */
  threads: 1;
}

/** Where a machine's writable paths live by default: one directory per machine under the store. */
export function machineDataDir(storeDir: string, identity: string): string {
  return join(storeDir, "machines", identity.replace(/^blake3:/, ""));
}

/** The guest path `--db DIR` stands for. */
export const DB_PATH = "/db";

/**
 * `requested`: guest path -> host directory from the command line (`--mount`, `--db`); a path
 * the spec does not declare is a usage error. A declared path without a flag gets a directory
 * under `defaultRoot` (machineDataDir: one per machine, kept between runs).
 */
export function machineGrant(spec: SealedSpec, kernel: Uint8Array, requested: ReadonlyMap<string, string>, defaultRoot: string): MachineGrant {
  const what = `${spec.name} (${spec.seal.digest})`;
  const component = readComponent(kernel);
  const { missing, extra } = bindingDifferences(spec, component);
  if (missing.length || extra.length) {
    throw new WmbError(
      "INTEGRITY",
      `Refusing to run ${what}: its spec's bindings do not match its component (${[...missing.map((m) => `unbound import ${m}`), ...extra.map((e) => `binding for absent import ${e}`)].join(", ")}); rebuild the spec and seal it again.`,
      { subject: spec.seal.digest },
    );
  }
  const violations = policyViolations(component, spec.capability_profile);
  if (violations.length) {
    throw new WmbError("INTEGRITY", `Refusing to run ${what}: ${violations.join(" ")}`, { subject: spec.seal.digest });
  }

  const interfaces = boundInterfaces(spec, what);

  const writable = spec.capability_profile.filesystem.writable;
  for (const [guest] of requested) {
    if (!writable.includes(guest)) {
      const declared = writable.length ? `its writable paths are ${writable.join(", ")}` : "it declares no writable path";
      throw new WmbError("USAGE", `${spec.name} cannot mount ${guest}: ${declared}, so there is nothing to mount${guest === DB_PATH ? " with --db" : ""}.`, { subject: guest });
    }
  }
  const mounts = writable.map((guest) => ({
    guest,
    host: resolve(requested.get(guest) ?? join(defaultRoot, encodeURIComponent(guest.slice(1)))),
  }));
  return { argv0: spec.name, mounts, interfaces, threads: 1 };
}

/** The interfaces the root component's bindings take from the host; each must be one the runner
 * implements, and nothing may be bound to another provider (this runtime composes nothing). */
function boundInterfaces(spec: SealedSpec, what: string): string[] {
  const bindings = spec.composition.bindings.filter((b) => b.consumer_id === spec.composition.root);
  const elsewhere = bindings.filter((b) => b.provider_id !== WASI_HOST).map((b) => `${b.import_name} to ${b.provider_id}`);
  const interfaces = [...new Set(bindings.filter((b) => b.provider_id === WASI_HOST).map((b) => unversioned(b.import_name)))].sort();
  const unimplemented = interfaces.filter((i) => !RUNNER_INTERFACES.includes(i));
  if (elsewhere.length || unimplemented.length) {
    const gaps = [...elsewhere.map((e) => `it binds ${e}, a provider this runtime does not have`), ...unimplemented.map((i) => `this runtime implements no ${i}`)];
    throw new WmbError("ACTION_FAILED", `Cannot run ${what}: ${gaps.join("; ")}; run it on a runtime that provides them.`, { subject: spec.seal.digest });
  }
  return interfaces;
}

/** `--mount /guest=HOSTDIR` values (and `--db DIR`) as guest path -> host directory. */
export function parseMounts(mountFlags: readonly string[], db: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  const add = (given: string, host: string, flag: string) => {
    if (!isAbsolute(given) || host === "") throw new WmbError("USAGE", `${flag} needs /guest/path=HOSTDIR, got "${given}=${host}".`, { subject: flag });
    // Compared with the spec's paths, which are normalized ("/db", never "/db/" or "/x/../db").
    const guest = posix.normalize(given).replace(/(.)\/$/, "$1");
    if (out.has(guest)) throw new WmbError("USAGE", `${guest} is mounted twice; give it one host directory.`, { subject: guest });
    out.set(guest, host);
  };
  for (const m of mountFlags) {
    const eq = m.indexOf("=");
    add(eq < 0 ? m : m.slice(0, eq), eq < 0 ? "" : m.slice(eq + 1), "--mount");
  }
  if (db !== undefined) add(DB_PATH, db, "--db");
  return out;
}

function unversioned(name: string): string {
  const at = name.indexOf("@");
  return at < 0 ? name : name.slice(0, at);
}
