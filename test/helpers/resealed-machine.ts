// A built machine copied into a directory of its own with its spec edited (and, optionally, its
// kernel or rootfs replaced) and sealed again: a spec whose seal is valid whatever it now says,
// which is what a test of `run`'s own checks needs (an edited but unsealed spec never gets past
// the seal check).
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeDeterministicTar } from "../../src/formats/det-tar.ts";
import { digestHexToInts, formatSpec, prefixedDigest, sealSpec, type ArtifactRef, type SealedSpec } from "../../src/formats/machine-spec.ts";

export interface Replacements {
  kernel?: Uint8Array;
  /** Rootfs files by path ("/.sqliterc"); directories end with "/" ("/db/"). */
  rootfs?: Record<string, string>;
}

/** `outDir` holds `<name>.json`, `<name>.wasm` and `<name>.rootfs.tar` (wmb-out of a seal target).
 * Returns the path of the new sealed spec. */
export function resealedMachine(outDir: string, name: string, edit: (spec: SealedSpec) => void = () => {}, replace: Replacements = {}): string {
  const dir = mkdtempSync(join(tmpdir(), `wmb-resealed-${name}-`));
  const spec = JSON.parse(readFileSync(join(outDir, `${name}.json`), "utf8")) as SealedSpec;
  const kernel = replace.kernel ?? readFileSync(join(outDir, `${name}.wasm`));
  const rootfs = replace.rootfs ? rootfsTar(replace.rootfs) : readFileSync(join(outDir, `${name}.rootfs.tar`));
  writeFileSync(join(dir, `${name}.wasm`), kernel);
  writeFileSync(join(dir, `${name}.rootfs.tar`), rootfs);
  rebind(spec.kernel_ref, kernel);
  rebind(spec.rootfs_ref, rootfs);
  spec.composition.components.find((c) => c.id === spec.composition.root)!.digest = digestHexToInts(spec.kernel_ref.digest);
  edit(spec);
  const path = join(dir, `${name}.json`);
  writeFileSync(path, formatSpec(sealSpec(spec)));
  return path;
}

function rebind(ref: ArtifactRef, bytes: Uint8Array): void {
  ref.digest = prefixedDigest(bytes);
  ref.size = bytes.length;
}

function rootfsTar(files: Record<string, string>): Uint8Array {
  const entries = Object.entries(files).map(([path, text]) =>
    path.endsWith("/") ? { path, type: "dir" as const } : { path, type: "file" as const, data: new TextEncoder().encode(text) },
  );
  return writeDeterministicTar(entries, { mtime: 0 });
}
