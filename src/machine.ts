// Sealed machines in the store: find one by label, spec path or identity, prove every digest
// before anything runs, and keep the transpiled component per kernel digest.
// The spec and seal format: docs/ARCHITECTURE.md.
import { existsSync, promises as fsp } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Digest } from "./digest.ts";
import { WmbError } from "./errors.ts";
import { checkArtifact, checkSealedSpec, type ArtifactRef, type SealedSpec } from "./formats/machine-spec.ts";
import type { ClientOptions } from "./remote/oci/client.ts";
import type { OutputMap, Store } from "../store/store.ts";
import type { BuildSummary } from "./build.ts";
import type { Target } from "./build-file.ts";

export interface LoadedMachine {
  identity: string;
  spec: SealedSpec;
  /** Where it came from, for messages. */
  origin: string;
  kernel: Buffer;
  rootfs: Buffer;
  kernelDigest: Digest;
  rootfsDigest: Digest;
  specDigest?: Digest;
  /** The sealed spec file's bytes, as found. */
  specBytes: Buffer;
}

const IDENTITY = /^blake3:[0-9a-f]{64}$/;

export function isIdentity(ref: string): boolean {
  return IDENTITY.test(ref);
}

/** Remember a sealed spec (already in the CAS) by its identity, and root its blobs for gc. */
export function registerMachine(store: Store, spec: SealedSpec, specDigest: Digest, label?: string): void {
  store.registerMachine({ identity: spec.seal.digest, specDigest, kernelDigest: hexOf(spec.kernel_ref.digest), rootfsDigest: hexOf(spec.rootfs_ref.digest), label });
}

/** The sealed spec a target's rule declares among its outputs (see RuleDef.machineOutput),
 * checked against its seal; undefined for a target whose rule seals no machine. */
export async function sealedSpecOf(store: Store, target: Target, outputs: Record<string, Digest>): Promise<{ spec: SealedSpec; digest: Digest } | undefined> {
  const path = target.rule.machineOutput?.(target.attrs);
  if (path === undefined) return undefined;
  const digest = outputs[path];
  if (digest === undefined) throw new Error(`internal: ${target.label} has no output ${path}`);
  const what = `${target.label} (${path})`;
  let value: unknown;
  try {
    value = JSON.parse((await store.readBlob(digest)).toString("utf8"));
  } catch (e) {
    throw new WmbError("INTEGRITY", `${what} is not valid JSON (${(e as Error).message}); rebuild it with --no-cache.`, { subject: target.label });
  }
  return { spec: checkSealedSpec(value, {}, what), digest };
}

/** Register the machines the requested targets of a successful build sealed, so they run by identity. */
export async function registerBuiltMachines(store: Store, summary: BuildSummary): Promise<SealedSpec[]> {
  const found: SealedSpec[] = [];
  for (const label of summary.targets) {
    const outputs = summary.actions.find((a) => a.label === label)?.outputs ?? {};
    const sealed = await sealedSpecOf(store, summary.graph.get(label), outputs);
    if (!sealed) continue;
    registerMachine(store, sealed.spec, sealed.digest, label);
    found.push(sealed.spec);
  }
  return found;
}

/** A sealed spec given as a path or an identity (labels are built by the caller first). */
export async function loadMachine(store: Store, ref: string, remote: ClientOptions = {}): Promise<LoadedMachine> {
  let specBytes: Buffer;
  let origin: string;
  let specDir: string | undefined;
  let specDigest: Digest | undefined;
  if (isIdentity(ref)) {
    const stored = store.machineSpecDigest(ref);
    if (!stored) {
      throw new WmbError("USAGE", `No machine with identity ${ref} in the store ${store.dir}; build it, pull it (wmb pull oci://…@${ref}), or import its bundle with \`wmb store import\`.`, { subject: ref });
    }
    specDigest = stored;
    if ((await store.checkBlob(specDigest)) !== "ok") {
      throw new WmbError("INTEGRITY", `The stored spec of ${ref} is missing or corrupt (blob ${specDigest}); rebuild or re-import the machine.`, { subject: ref });
    }
    specBytes = await store.readBlob(specDigest);
    origin = ref;
  } else {
    const path = resolve(ref);
    if (!existsSync(path)) {
      throw new WmbError("USAGE", `${ref} is neither a label (//pkg:name), an identity (blake3:<64 hex>) nor an existing sealed spec file.`, { subject: ref });
    }
    specBytes = await fsp.readFile(path);
    origin = ref;
    specDir = dirname(path);
  }
  let value: unknown;
  try {
    value = JSON.parse(specBytes.toString("utf8"));
  } catch (e) {
    throw new WmbError("INTEGRITY", `${origin} is not valid JSON (${(e as Error).message}); it is not a sealed spec.`, { subject: origin });
  }
  // Shape and seal first (this also holds the root component's integer digest to the kernel's):
  // a spec that is not what it claims is refused before any artifact is read.
  const spec = checkSealedSpec(value, {}, origin);
  const kernel = await artifactBytes(store, spec.kernel_ref, "kernel", specDir, `the kernel of ${origin}`, remote);
  const rootfs = await artifactBytes(store, spec.rootfs_ref, "rootfs", specDir, `the rootfs of ${origin}`, remote);
  checkArtifact(spec.kernel_ref, kernel, `the kernel of ${origin}`);
  checkArtifact(spec.rootfs_ref, rootfs, `the rootfs of ${origin}`);
  const kernelDigest = hexOf(spec.kernel_ref.digest);
  const rootfsDigest = hexOf(spec.rootfs_ref.digest);
  return { identity: spec.seal.digest, spec, origin, kernel, rootfs, kernelDigest, rootfsDigest, specDigest, specBytes };
}

/** An artifact's bytes: from the store by digest when whole there, else from the spec's local
 * sources, else from its `oci` and `https` sources (verified, then admitted to the store). */
async function artifactBytes(store: Store, ref: ArtifactRef, role: "kernel" | "rootfs", specDir: string | undefined, what: string, remote: ClientOptions): Promise<Buffer> {
  const hex = hexOf(ref.digest);
  if ((await store.checkBlob(hex)) === "ok") return store.readBlob(hex);
  for (const s of ref.sources) {
    if (!specDir || typeof s.local !== "string") continue;
    if (s.local.includes("/") || s.local.includes("\\") || s.local === ".." || s.local === ".") {
      throw new WmbError("INTEGRITY", `${what} names the local source "${s.local}", which is not a plain file name next to the spec.`);
    }
    const p = join(specDir, s.local);
    if (existsSync(p)) return fsp.readFile(p);
  }
  if (ref.sources.some((s) => typeof s.oci === "string" || typeof s.https === "string")) {
    const { fetchFromSources } = await import("./remote/oci-machine.ts");
    if (await fetchFromSources(store, ref, role, what, remote)) return store.readBlob(hex);
  }
  throw new WmbError("INTEGRITY", `${what} (${ref.digest}) is neither in the store nor next to the spec, and the spec names no registry to fetch it from; rebuild the machine, pull it, or import its bundle.`);
}

function hexOf(prefixed: string): Digest {
  return prefixed.replace(/^blake3:/, "") as Digest;
}

/** The name of the V8 code cache of a transpiled component's module kept for this Node (V8
 * refuses one made by another Node, flags or build; the runner then writes a new one). */
const CODE_CACHE = `v8-code-cache/node-${process.version}-${process.arch}`;

/** The code cache kept for this kernel's transpiled module on this Node, when whole. */
export async function componentCodeCache(store: Store, kernelDigest: Digest): Promise<Digest | undefined> {
  const { TRANSPILER_ID } = await import("./run/transpile.ts");
  return store.transpiledExtra(kernelDigest, TRANSPILER_ID, CODE_CACHE);
}

/** Keep the code cache a run wrote (the file is moved into the store). */
export async function keepComponentCodeCache(store: Store, kernelDigest: Digest, file: string): Promise<void> {
  const { TRANSPILER_ID } = await import("./run/transpile.ts");
  const { digest } = await store.moveFile(file);
  store.recordTranspiledExtra(kernelDigest, TRANSPILER_ID, CODE_CACHE, digest);
}

/** The transpiled component, from the store when this kernel was transpiled before. */
export async function transpiledFiles(store: Store, kernel: Buffer, kernelDigest: Digest): Promise<{ outputs: OutputMap; cached: boolean }> {
  const { TRANSPILER_ID, transpileComponent } = await import("./run/transpile.ts");
  const hit = await store.transpiled(kernelDigest, TRANSPILER_ID);
  if (hit) return { outputs: hit, cached: true };
  const { files } = await transpileComponent(kernel);
  const outputs: OutputMap = {};
  for (const [name, bytes] of Object.entries(files)) {
    const { digest } = await store.putBytes(bytes);
    outputs[name] = { digest, executable: false };
  }
  store.recordTranspiled(kernelDigest, TRANSPILER_ID, outputs);
  return { outputs, cached: false };
}
