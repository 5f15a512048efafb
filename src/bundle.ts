// Bundles: one tar holding a sealed spec and every blob it references, with a manifest.
// Import checks every digest and the seal before admitting anything into a store.
import { hashBytes, type Digest } from "./digest.ts";
import { WmbError } from "./errors.ts";
import { writeDeterministicTar } from "./formats/det-tar.ts";
import { readTar, TarFormatError } from "./formats/tar-reader.ts";
import { checkSealedSpec } from "./formats/machine-spec.ts";
import { registerMachine, type LoadedMachine } from "./machine.ts";
import type { Store } from "../store/store.ts";

export const BUNDLE_FORMAT = "wmb-bundle/1";

interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  identity: string;
  spec: Digest;
  blobs: { digest: Digest; size: number; role: "spec" | "kernel" | "rootfs" }[];
}

export async function makeBundle(m: LoadedMachine): Promise<Uint8Array> {
  const specBytes = m.specBytes;
  const specDigest = hashBytes(specBytes);
  const blobs: { digest: Digest; data: Uint8Array; role: "spec" | "kernel" | "rootfs" }[] = [
    { digest: specDigest, data: specBytes, role: "spec" },
    { digest: m.kernelDigest, data: m.kernel, role: "kernel" },
    { digest: m.rootfsDigest, data: m.rootfs, role: "rootfs" },
  ];
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    identity: m.identity,
    spec: specDigest,
    blobs: blobs.map((b) => ({ digest: b.digest, size: b.data.length, role: b.role })),
  };
  return writeDeterministicTar(
    [
      { path: "manifest.json", type: "file", data: new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n") },
      { path: "blobs", type: "dir" },
      ...dedupe(blobs).map((b) => ({ path: `blobs/${b.digest}`, type: "file" as const, data: b.data })),
    ],
    { mtime: 0 },
  );
}

function dedupe<T extends { digest: string }>(xs: T[]): T[] {
  const seen = new Set<string>();
  return xs.filter((x) => (seen.has(x.digest) ? false : (seen.add(x.digest), true)));
}

/** Verify a bundle completely, then admit its blobs and register the machine. Returns the identity. */
export async function importBundle(store: Store, bytes: Uint8Array, what: string): Promise<{ identity: string; blobs: number }> {
  const bad = (why: string) => new WmbError("INTEGRITY", `${what} ${why}; nothing was imported.`, { subject: what });
  let entries;
  try {
    entries = readTar(bytes);
  } catch (e) {
    throw bad(`is not a readable bundle (${e instanceof TarFormatError ? e.message : String(e)})`);
  }
  const files = new Map<string, Uint8Array>();
  for (const e of entries) {
    if (e.type === "dir" && e.path.replace(/\/$/, "") === "blobs") continue;
    if (e.type !== "file") throw bad(`holds "${e.path}", which is not a regular file`);
    if (e.path !== "manifest.json" && !/^blobs\/[0-9a-f]{64}$/.test(e.path)) throw bad(`holds an unexpected entry "${e.path}"`);
    if (files.has(e.path)) throw bad(`holds "${e.path}" twice`);
    files.set(e.path, e.data);
  }
  const manifestBytes = files.get("manifest.json");
  if (!manifestBytes) throw bad("has no manifest.json");
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(Buffer.from(manifestBytes).toString("utf8")) as BundleManifest;
  } catch {
    throw bad("has a manifest.json that is not JSON");
  }
  if (manifest.format !== BUNDLE_FORMAT) throw bad(`has format ${JSON.stringify(manifest.format)}, not ${BUNDLE_FORMAT}`);
  const blobs = new Map<Digest, Uint8Array>();
  for (const [path, data] of files) {
    if (path === "manifest.json") continue;
    const named = path.slice("blobs/".length) as Digest;
    const actual = hashBytes(data);
    if (actual !== named) throw bad(`holds blob ${named} whose bytes hash to ${actual}`);
    blobs.set(named, data);
  }
  const byRole = (role: string): { digest: Digest; data: Uint8Array } => {
    const b = manifest.blobs?.find((x) => x.role === role);
    const data = b && blobs.get(b.digest);
    if (!b || !data) throw bad(`lacks its ${role} blob`);
    return { digest: b.digest, data };
  };
  const specBlob = byRole("spec");
  let spec;
  try {
    spec = checkSealedSpec(JSON.parse(Buffer.from(specBlob.data).toString("utf8")), {}, `the spec in ${what}`);
  } catch (e) {
    if (e instanceof WmbError) throw new WmbError("INTEGRITY", `${e.message} Nothing was imported.`, { subject: what });
    throw bad("holds a spec that is not JSON");
  }
  // Every blob already hashes to its name: the artifacts are right when the names are the refs'.
  for (const [role, ref] of [["kernel", spec.kernel_ref], ["rootfs", spec.rootfs_ref]] as const) {
    const b = byRole(role);
    if (ref.digest !== `blake3:${b.digest}` || ref.size !== b.data.length) {
      throw bad(`holds a ${role} (blake3:${b.digest}, ${b.data.length} bytes) that is not the spec's (${ref.digest}, ${ref.size} bytes)`);
    }
  }
  if (spec.seal.digest !== manifest.identity) throw bad(`says identity ${manifest.identity} but its spec is sealed as ${spec.seal.digest}`);
  if (blobs.size !== new Set(manifest.blobs.map((b) => b.digest)).size) throw bad("holds blobs its manifest does not list");
  // Everything checked: admit.
  for (const data of blobs.values()) await store.putBytes(data);
  registerMachine(store, spec, specBlob.digest);
  return { identity: spec.seal.digest, blobs: blobs.size };
}
