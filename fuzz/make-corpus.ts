// Writes the seed corpus (fuzz/corpus/<target>/) from real files: a sealed sqlite-cli machine
// (spec, rootfs, its OCI index and manifests, a bundle of a small machine), a small real
// component, real ssh frames. Run once by hand when a format changes:
//   npx tsx fuzz/make-corpus.ts <dir with sqlite-cli.json, .wasm, .rootfs.tar>
// The files are small and checked in; the fuzzers mutate them.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { checkSealedSpec, digestHexToInts, formatSpec, sealSpec } from "../src/formats/machine-spec.ts";
import { readComponent } from "../src/formats/wasm.ts";
import { writeDeterministicTar } from "../src/formats/det-tar.ts";
import { hashBytes } from "../src/digest.ts";
import { machineArtifact } from "../src/remote/machine-artifact.ts";
import { sha256Of } from "../src/remote/oci/client.ts";
import { FrameWriter, MAGIC } from "../src/remote/ssh/frames.ts";
import { remoteCommand } from "../src/remote/ssh/target.ts";
import { tinyComponent } from "../test/helpers/tiny-component.ts";

const CORPUS = new URL("./corpus/", import.meta.url).pathname;
const put = (target: string, name: string, bytes: Uint8Array | string) => {
  mkdirSync(join(CORPUS, target), { recursive: true });
  writeFileSync(join(CORPUS, target, name), bytes);
};

const dir = process.argv[2];
if (!dir) throw new Error("usage: npx tsx fuzz/make-corpus.ts <dir holding sqlite-cli.json, sqlite-cli.wasm, sqlite-cli.rootfs.tar>");
const specBytes = readFileSync(join(dir, "sqlite-cli.json"));
const kernel = readFileSync(join(dir, "sqlite-cli.wasm"));
const rootfs = readFileSync(join(dir, "sqlite-cli.rootfs.tar"));
const spec = checkSealedSpec(JSON.parse(specBytes.toString("utf8")));

put("spec", "sqlite-cli.json", specBytes);
put("jcs", "sqlite-cli.json", specBytes);
put("rootfs", "sqlite-cli.rootfs.tar", rootfs);
put("tar", "sqlite-cli.rootfs.tar", rootfs);

// OCI documents as `wmb push` writes them.
const artifact = machineArtifact(spec, readComponent(kernel), sha256Of(kernel), sha256Of(rootfs));
put("oci-index", "sqlite-cli.index.json", artifact.index.bytes);
for (const m of artifact.manifests) put("oci-manifest", `${m.role}.json`, m.bytes);

// A small real machine: the tiny component, a rootfs of one file, sealed; and its bundle layout.
const tiny = (await tinyComponent()).component;
put("wasm", "tiny.component.wasm", tiny);
const tinyRootfs = writeDeterministicTar([{ path: "etc", type: "dir" }, { path: "etc/motd", type: "file", data: new TextEncoder().encode("hi\n") }], { mtime: 0 });
const tinySpec = sealSpec({
  ...spec,
  name: "tiny",
  kernel_ref: { ...spec.kernel_ref, digest: `blake3:${hashBytes(tiny)}`, size: tiny.length, sources: [] },
  rootfs_ref: { ...spec.rootfs_ref, digest: `blake3:${hashBytes(tinyRootfs)}`, size: tinyRootfs.length, sources: [] },
  composition: { ...spec.composition, components: spec.composition.components.map((c) => (c.id === spec.composition.root ? { ...c, digest: digestHexToInts(hashBytes(tiny)) } : c)) },
});
put("spec", "tiny.json", formatSpec(tinySpec));
const { makeBundle } = await import("../src/bundle.ts");
const tinySpecBytes = Buffer.from(formatSpec(tinySpec));
const bundle = await makeBundle({
  identity: tinySpec.seal.digest,
  spec: tinySpec,
  origin: "tiny",
  kernel: Buffer.from(tiny),
  rootfs: Buffer.from(tinyRootfs),
  kernelDigest: hashBytes(tiny),
  rootfsDigest: hashBytes(tinyRootfs),
  specBytes: tinySpecBytes,
});
put("bundle", "tiny.wmb-bundle", bundle);

// docker config.json as docker login writes it, and a token answer.
put("docker-config", "auths.json", JSON.stringify({ auths: { "127.0.0.1:5000": { auth: Buffer.from("user:pass").toString("base64") } }, credHelpers: { "other.example": "none" } }, null, 2));
put("token-answer", "token.json", JSON.stringify({ token: "abc.def.ghi", access_token: "abc.def.ghi", expires_in: 300, issued_at: "2026-01-01T00:00:00Z" }));

// ssh: a real session's first frames (hello, query, a blob chunk) and a --request word.
const out = new PassThrough();
const chunks: Buffer[] = [];
out.on("data", (c: Buffer) => chunks.push(c));
out.write(MAGIC);
const w = new FrameWriter(out);
await w.json({ t: "hello", protocol: 2, wmb: "0.1.0", node: process.version, store: "/srv/wmb/store", free_bytes: 1 << 30 });
await w.json({ t: "query", identity: spec.seal.digest, blobs: [{ role: "spec", digest: hashBytes(specBytes), size: specBytes.length }] });
await w.bytes(0x42, specBytes.subarray(0, 300));
await w.json({ t: "run", identity: spec.seal.digest, args: ["-version"], mounts: [], db: "/srv/data" });
put("ssh-frames", "session.bin", Buffer.concat(chunks));
const line = remoteCommand("wmb", { store: "/srv/wmb/store", tty: { identity: spec.seal.digest, args: [":memory:", "select 1;"], mounts: ["/data=/srv/d"], db: "/srv/db" } });
put("ssh-request", "tty.txt", line.split(" ").at(-1)!);

// BUILD.ts attributes: the sqlite-cli package's declarations, as data (see targets/build-attrs.ts).
put("build-attrs", "rules.json", JSON.stringify([
  ["write", { name: "w", out: "w.txt", content: "hello\n" }],
  ["run", { name: "r", srcs: [":w"], outs: ["r.txt"], cmd: "tr a-z A-Z < w.txt > r.txt" }],
  ["seal", { name: "sealed", machine: "sqlite-cli", spec: ":spec" }],
]));
console.log(`corpus written to ${CORPUS}`);
