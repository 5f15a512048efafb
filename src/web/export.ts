// `wmb serve --export DIR MACHINE`: one machine's run page as static files any static host
// serves. The page is the served one (same bundle, same checks): it reads machine.json and
// blobs/<digest> next to it instead of asking a wmb process, and computes every BLAKE3 and the
// seal in the tab before anything is instantiated, exactly as when served.
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Store } from "../../store/store.ts";
import { WmbError } from "../errors.ts";
import type { LoadedMachine } from "../machine.ts";
import type { Digest } from "../digest.ts";
import type { RunManifest } from "./api.ts";
import { webAssets } from "./assets.ts";
import { shellHtml } from "./shell.ts";

export async function exportMachine(store: Store, m: LoadedMachine, dirArg: string): Promise<{ dir: string; files: number }> {
  const dir = resolve(dirArg);
  mkdirSync(dir, { recursive: true });
  if (readdirSync(dir).length > 0) throw new WmbError("USAGE", `${dir} is not empty; export into a new or empty directory.`, { subject: dir });
  const { transpiledFiles } = await import("../machine.ts");
  const { outputs } = await transpiledFiles(store, m.kernel, m.kernelDigest);
  const specDigest = m.specDigest ?? (await store.putBytes(m.specBytes)).digest;
  const blobs = new Map<Digest, Uint8Array>([
    [specDigest, m.specBytes],
    [m.kernelDigest, m.kernel],
    [m.rootfsDigest, m.rootfs],
  ]);
  const transpiled: RunManifest["transpiled"] = {};
  for (const [name, o] of Object.entries(outputs)) {
    const bytes = await store.readBlob(o.digest);
    blobs.set(o.digest, bytes);
    transpiled[name] = { digest: o.digest, size: bytes.length };
  }
  const manifest: RunManifest = { identity: m.identity, spec: { digest: specDigest, size: m.specBytes.length }, transpiled };
  let files = 0;
  const write = (rel: string, bytes: string | Uint8Array) => {
    writeFileSync(join(dir, rel), bytes);
    files++;
  };
  mkdirSync(join(dir, "assets"));
  mkdirSync(join(dir, "blobs"));
  for (const [name, bytes] of Object.entries(await webAssets())) write(join("assets", name), bytes);
  for (const [digest, bytes] of blobs) write(join("blobs", digest), bytes);
  write("machine.json", JSON.stringify(manifest, null, 2) + "\n");
  write("index.html", shellHtml({ mode: "static", assets: "./assets/", machine: { manifest: "./machine.json", blobs: "./blobs/", identity: m.identity } }, `${m.spec.name} ${m.spec.version} · wmb`));
  return { dir, files };
}
