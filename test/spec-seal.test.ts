import { chmodSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { componentWit, parse } from "@bytecodealliance/jco-transpile/wasm-tools";
import { beforeAll, describe, expect, it } from "vitest";
import { rootfs } from "../rules/rootfs.ts";
import { seal } from "../rules/seal.ts";
import { spec } from "../rules/spec.ts";
import { readTar } from "../src/formats/tar-reader.ts";
import { canonicalBytes } from "../src/formats/jcs.ts";
import {
  blake3Hex,
  checkSealedSpec,
  digestHexToInts,
  digestIntsToHex,
  sealIdentity,
  sealSpec,
  validateMachineSpec,
  withSources,
  type MachineSpec,
  type SealedSpec,
} from "../src/formats/machine-spec.ts";
import { hashBytesReference } from "../src/digest.ts";
import { makeActionContext, runRule, TEST_ENV } from "./helpers/action-context.ts";
import { tinyComponent } from "./helpers/tiny-component.ts";

const REPO = join(import.meta.dirname, "..");
const TEMPLATE = readFileSync(join(REPO, "sqlite-cli/spec.template.json"), "utf8");
const SQLITERC = readFileSync(join(REPO, "sqlite-cli/rootfs/.sqliterc"), "utf8");
const MAX_128M = "-Wl,--max-memory=134217728";

async function buildRootfs(files: Record<string, string> = { "rootfs/.sqliterc": SQLITERC }): Promise<Uint8Array> {
  const map = Object.fromEntries(Object.keys(files).map((p) => [`/${p.replace(/^rootfs\//, "")}`, p]));
  const { outputPaths } = await runRule(rootfs, { name: "rootfs", files: map, dirs: ["/db"] }, { inputs: files });
  return readFileSync(outputPaths[0]!);
}

async function buildSpec(kernel: Uint8Array, rootfsTar: Uint8Array, template = TEMPLATE): Promise<string> {
  const { outputPaths } = await runRule(
    spec,
    { name: "spec", machine: "sqlite-cli", template: "spec.template.json", kernel: "component.wasm", rootfs: "rootfs.tar" },
    { inputs: { "spec.template.json": template, "component.wasm": kernel, "rootfs.tar": rootfsTar } },
  );
  return readFileSync(outputPaths[0]!, "utf8");
}

async function runSeal(specText: string, kernel: Uint8Array, rootfsTar: Uint8Array) {
  return runRule(
    seal,
    { name: "sealed", machine: "sqlite-cli", kernel: "component.wasm", rootfs: "rootfs.tar" },
    { inputs: { "sqlite-cli.spec.json": specText, "component.wasm": kernel, "rootfs.tar": rootfsTar } },
  );
}

describe("rootfs rule", () => {
  it("writes a deterministic tar of the files and dirs, stamped with SOURCE_DATE_EPOCH", async () => {
    const tar = await buildRootfs();
    const entries = readTar(tar);
    expect(entries.map((e) => [e.path, e.mode.toString(8), e.mtime, e.uid, e.uname])).toEqual([
      [".sqliterc", "644", 0, 0, ""],
      ["db/", "755", 0, 0, ""],
    ]);
    expect(new TextDecoder().decode(entries[0]!.data)).toBe(SQLITERC);
    expect(rootfs.outputs({ name: "rootfs", files: {} })).toEqual(["rootfs.tar"]);

    // Another epoch in the environment: same entries, another mtime.
    const action = await makeActionContext(rootfs, { name: "r", files: { "/etc/tool": "tool" }, dirs: ["/db"], out: "fs.tar" }, { inputs: { tool: "#!/bin/sh\n" } });
    chmodSync(join(action.dir, "tool"), 0o744);
    await rootfs.run({ ...action.ctx, env: { ...TEST_ENV, SOURCE_DATE_EPOCH: "1700000000" } });
    const other = readTar(readFileSync(action.outputPaths[0]!));
    expect(other.map((e) => [e.path, e.mode.toString(8), e.mtime])).toEqual([
      ["db/", "755", 1700000000],
      ["etc/", "755", 1700000000],
      ["etc/tool", "755", 1700000000],
    ]);
  });

  it("gives identical bytes for identical inputs, and different bytes when .sqliterc changes", async () => {
    const a = await buildRootfs();
    const b = await buildRootfs();
    const c = await buildRootfs({ "rootfs/.sqliterc": `${SQLITERC}.mode line\n` });
    expect(blake3Hex(a)).toBe(blake3Hex(b));
    expect(blake3Hex(a)).not.toBe(blake3Hex(c));
  });

  it("names the attribute when an input is missing, and refuses a bad SOURCE_DATE_EPOCH", async () => {
    await expect(runRule(rootfs, { name: "r", files: { "/x": "nope.txt" } }, { inputs: { "other.txt": "x" } })).rejects.toThrow(
      /attribute files\["\/x"\] names "nope.txt", which is not among its inputs \(other.txt\)/,
    );
    const action = await makeActionContext(rootfs, { name: "r", files: {} });
    await expect(rootfs.run({ ...action.ctx, env: { ...TEST_ENV, SOURCE_DATE_EPOCH: "yesterday" } })).rejects.toThrow(/SOURCE_DATE_EPOCH/);
  });
});

describe("spec and seal on a real component", () => {
  let kernel: Uint8Array;
  let tar: Uint8Array;
  let specText: string;
  let unsealed: MachineSpec;
  beforeAll(async () => {
    kernel = (await tinyComponent({ linkFlags: [MAX_128M] })).component;
    tar = await buildRootfs();
    specText = await buildSpec(kernel, tar);
    unsealed = JSON.parse(specText) as MachineSpec;
  });

  it("fills refs, the component digest and one binding per import from the bits", async () => {
    const kernelHex = hashBytesReference(kernel);
    expect(unsealed.kernel_ref).toEqual({ digest: `blake3:${kernelHex}`, size: kernel.length, media_type: "application/wasm", sources: [{ local: "sqlite-cli.wasm" }] });
    expect(unsealed.rootfs_ref).toEqual({
      digest: `blake3:${hashBytesReference(tar)}`,
      size: tar.length,
      media_type: "application/x-tar",
      sources: [{ local: "sqlite-cli.rootfs.tar" }],
    });
    expect(unsealed.composition.components).toEqual([{ id: "sqlite-cli", digest: Array.from(Buffer.from(kernelHex, "hex")) }]);
    const wit = await componentWit(kernel);
    const imports = [...wit.matchAll(/^\s*import (\S+);$/gm)].map((m) => m[1]);
    expect(unsealed.composition.bindings).toEqual(
      imports.map((i) => ({ consumer_id: "sqlite-cli", import_name: i, provider_id: "wasi-host", export_name: i })),
    );
    expect(unsealed.composition.bindings.map((b) => b.import_name)).toContainEqual(expect.stringMatching(/^wasi:filesystem\/types@0\.2\.\d+$/));
    expect(unsealed.capability_profile).toEqual({ cpus: 1, memory_bytes: 134217728, network: "deny", filesystem: { writable: ["/db"] } });
    expect(unsealed.composition.policy).toEqual({ determinism: "strict", capabilities: ["filesystem:writable:/db"] });
    expect(unsealed.seal).toBeUndefined();
    // Pretty JSON, members in sorted order, trailing newline.
    expect(specText.endsWith("}\n")).toBe(true);
    expect(Object.keys(JSON.parse(specText) as object)).toEqual(["capability_profile", "composition", "kernel_ref", "name", "rootfs_ref", "schema_version", "version"]);
  });

  it("seals with the BLAKE3 of the JCS bytes without the seal and the sources, and bundles kernel and rootfs", async () => {
    const { outputPaths, logs } = await runSeal(specText, kernel, tar);
    expect(outputPaths.map((p) => p.split("/").pop())).toEqual(["sqlite-cli.json", "sqlite-cli.wasm", "sqlite-cli.rootfs.tar"]);
    const sealed = JSON.parse(readFileSync(outputPaths[0]!, "utf8")) as SealedSpec;
    // Written out by hand (not through the code under test): the spec minus every ref's sources.
    const bare = ({ sources: _s, ...ref }: SealedSpec["kernel_ref"]) => ref;
    const expected = `blake3:${hashBytesReference(canonicalBytes({ ...unsealed, kernel_ref: bare(unsealed.kernel_ref), rootfs_ref: bare(unsealed.rootfs_ref) }))}`;
    expect(sealed.seal).toEqual({ algorithm: "blake3", canonicalization: "jcs-rfc8785", digest: expected });
    expect(sealIdentity(sealed)).toBe(expected);
    expect(logs.join("\n")).toContain(expected);
    expect(Buffer.from(readFileSync(outputPaths[1]!)).equals(Buffer.from(kernel))).toBe(true);
    expect(Buffer.from(readFileSync(outputPaths[2]!)).equals(Buffer.from(tar))).toBe(true);
    expect(checkSealedSpec(sealed, { kernel, rootfs: tar }).seal.digest).toBe(expected);
  });

  it("gives the same identity whatever the JSON formatting, and another one for another rootfs", async () => {
    const a = sealIdentity(unsealed);
    // Members in reverse order, other whitespace: the same JCS bytes.
    const reversed = Object.fromEntries(Object.entries(unsealed).reverse());
    const reordered = JSON.parse(JSON.stringify(reversed, null, 7)) as MachineSpec;
    expect(Object.keys(reordered)[0]).toBe("version");
    expect(sealIdentity(reordered)).toBe(a);
    const tar2 = await buildRootfs({ "rootfs/.sqliterc": ".mode csv\n" });
    const spec2 = JSON.parse(await buildSpec(kernel, tar2)) as MachineSpec;
    expect(sealIdentity(spec2)).not.toBe(a);
    expect(spec2.kernel_ref).toEqual(unsealed.kernel_ref);
  });

  it("refuses a spec that does not match the kernel or rootfs it is given", async () => {
    const otherTar = await buildRootfs({ "rootfs/.sqliterc": ".mode csv\n" });
    await expect(runSeal(specText, kernel, otherTar)).rejects.toThrow(/the rootfs rootfs.tar is \d+ bytes but the spec says \d+|the rootfs rootfs.tar hashes to blake3:[0-9a-f]{64} but the spec says/);
    const edited = JSON.parse(specText) as MachineSpec;
    edited.composition.bindings.pop();
    await expect(runSeal(JSON.stringify(edited), kernel, tar)).rejects.toThrow(/the component imports wasi:\S+, which the spec binds to nothing/);
  });

  it("refuses a template that fills what the rules fill, or a profile without its mount point", async () => {
    const t = JSON.parse(TEMPLATE) as Record<string, unknown>;
    await expect(buildSpec(kernel, tar, JSON.stringify({ ...t, kernel_ref: {} }))).rejects.toThrow(/sets "kernel_ref"/);
    await expect(buildSpec(kernel, tar, JSON.stringify({ ...t, name: "other" }))).rejects.toThrow(/names the machine "other"/);
    const noDb = (await runRule(rootfs, { name: "r", files: { "/.sqliterc": "rc" } }, { inputs: { rc: "x" } })).outputPaths[0]!;
    await expect(buildSpec(kernel, readFileSync(noDb))).rejects.toThrow(/makes \/db writable, but the rootfs rootfs.tar has no directory \/db/);
  });
});

describe("seal refusals", () => {
  it("refuses a component that imports wasi:sockets while network is denied", async () => {
    const kernel = await parse(`(component (import "wasi:sockets/tcp@0.2.3" (instance)) (import "wasi:cli/environment@0.2.3" (instance)) (core module (memory 1 16)))`);
    const tar = await buildRootfs();
    const specText = await buildSpec(kernel, tar);
    await expect(runSeal(specText, kernel, tar)).rejects.toThrow(
      'refusing to seal "sqlite-cli": the component imports wasi:sockets/tcp@0.2.3 but the capability profile says network: "deny".',
    );
    // The same component is sealable when the profile allows the network.
    const allowed = JSON.parse(TEMPLATE) as { capability_profile: { network: string } };
    allowed.capability_profile.network = "allow";
    await expect(runSeal(await buildSpec(kernel, tar, JSON.stringify(allowed)), kernel, tar)).resolves.toBeDefined();
  });

  it("refuses wasi:http too", async () => {
    const kernel = await parse(`(component (import "wasi:http/outgoing-handler@0.2.3" (instance)))`);
    const tar = await buildRootfs();
    await expect(runSeal(await buildSpec(kernel, tar), kernel, tar)).rejects.toThrow(/imports wasi:http\/outgoing-handler@0.2.3 but the capability profile says network: "deny"/);
  });

  it("refuses a memory maximum above memory_bytes, naming the numbers", async () => {
    const kernel = await parse(`(component (core module (memory 1 4096)))`);
    const tar = await buildRootfs();
    await expect(runSeal(await buildSpec(kernel, tar), kernel, tar)).rejects.toThrow(
      "the component's memory may grow to 268435456 bytes (module[0] memory 0: 4096 pages = 268435456 bytes), more than memory_bytes 134217728.",
    );
    const exact = await parse(`(component (core module (memory 1 2048)))`);
    await expect(runSeal(await buildSpec(exact, tar), exact, tar)).resolves.toBeDefined();
  });

  it("treats a memory without a maximum as exceeding memory_bytes", async () => {
    const { component } = await tinyComponent();
    const tar = await buildRootfs();
    await expect(runSeal(await buildSpec(component, tar), component, tar)).rejects.toThrow(
      /core module module\[0\] defines memory 0 with no maximum, so it could grow past memory_bytes 134217728; link with -Wl,--max-memory=134217728\./,
    );
  });

  it("refuses a component whose import is not WASI at spec time", async () => {
    const kernel = await parse(`(component (import "acme:db/query" (instance)))`);
    await expect(buildSpec(kernel, await buildRootfs())).rejects.toThrow(/imports "acme:db\/query", which is not a WASI interface/);
  });
});

describe("machine-spec helpers", () => {
  const kernel = new TextEncoder().encode("kernel bytes");
  const rootfsBytes = new TextEncoder().encode("rootfs bytes");
  const hex = hashBytesReference(kernel);
  const base: MachineSpec = {
    schema_version: 2,
    name: "m",
    version: "1",
    capability_profile: { cpus: 1, memory_bytes: 65536, network: "deny", filesystem: { writable: ["/db"] } },
    kernel_ref: { digest: `blake3:${hex}`, size: kernel.length, media_type: "application/wasm", sources: [{ local: "m.wasm" }] },
    rootfs_ref: { digest: `blake3:${hashBytesReference(rootfsBytes)}`, size: rootfsBytes.length, media_type: "application/x-tar", sources: [{ local: "m.rootfs.tar" }] },
    composition: { version: 1, root: "m", components: [{ id: "m", digest: digestHexToInts(hex) }], bindings: [], secrets: [], policy: { determinism: "strict", capabilities: [] } },
  };

  it("converts digests between hex and 32 integers", () => {
    const ints = digestHexToInts(`blake3:${hex}`);
    expect(ints).toHaveLength(32);
    expect(ints[0]).toBe(parseInt(hex.slice(0, 2), 16));
    expect(digestIntsToHex(ints)).toBe(hex);
    expect(() => digestHexToInts("blake3:xyz")).toThrow(/not a BLAKE3 digest/);
    expect(() => digestIntsToHex([1, 2, 3])).toThrow(/32 integers/);
  });

  it("checks a sealed spec: the seal, then the artifacts", () => {
    const sealed: SealedSpec = { ...base, seal: { algorithm: "blake3", canonicalization: "jcs-rfc8785", digest: sealIdentity(base) } };
    expect(checkSealedSpec(sealed, { kernel, rootfs: rootfsBytes })).toBe(sealed);
    expect(() => checkSealedSpec(base)).toThrow(/is not sealed/);
    const tampered = { ...sealed, capability_profile: { ...sealed.capability_profile, network: "allow" } };
    expect(() => checkSealedSpec(tampered, {}, "m.json")).toThrow(/^m.json does not match its seal: its content hashes to blake3:[0-9a-f]{64} but the seal says blake3:/);
    expect(() => checkSealedSpec(sealed, { kernel: new TextEncoder().encode("kernel bytez") })).toThrow(/the kernel of the machine spec hashes to blake3:[0-9a-f]{64} but the spec says blake3:/);
    // Same size, other bytes: the digest is what catches it.
    expect(kernel.length).toBe(rootfsBytes.length);
    expect(() => checkSealedSpec(sealed, { rootfs: kernel })).toThrow(/^the rootfs of the machine spec hashes to blake3:[0-9a-f]{64} but the spec says blake3:[0-9a-f]{64}\.$/);
    expect(() => checkSealedSpec(sealed, { rootfs: rootfsBytes.subarray(1) })).toThrow(`the rootfs of the machine spec is ${rootfsBytes.length - 1} bytes but the spec says ${rootfsBytes.length}.`);
    let thrown: unknown;
    try {
      checkSealedSpec(tampered);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toMatchObject({ code: "INTEGRITY", exitCode: 3 });
  });

  it("leaves sources out of the identity from schema_version 2 on: moving a machine keeps its identity", () => {
    const moved = withSources(sealSpec(base), { kernel: [{ oci: `127.0.0.1:5000/acme/m@sha256:${"a".repeat(64)}` }], rootfs: [] });
    expect(sealIdentity(moved)).toBe(sealIdentity(base));
    expect(checkSealedSpec(moved).seal.digest).toBe(sealIdentity(base));
    // Every other member still counts.
    expect(sealIdentity({ ...base, version: "2" })).not.toBe(sealIdentity(base));
    expect(sealIdentity({ ...base, kernel_ref: { ...base.kernel_ref, media_type: "application/x-wasm" } })).not.toBe(sealIdentity(base));
    // Version 1 sealed its sources: the same move changes a version 1 identity.
    const v1 = { ...base, schema_version: 1 };
    expect(sealIdentity({ ...v1, kernel_ref: { ...v1.kernel_ref, sources: [{ local: "other.wasm" }] } })).not.toBe(sealIdentity(v1));
  });

  it("validates shape and consistency with a path in the message", () => {
    expect(validateMachineSpec(base)).toBe(base);
    const bad = (patch: (s: MachineSpec) => void) => {
      const s = JSON.parse(JSON.stringify(base)) as MachineSpec;
      patch(s);
      return () => validateMachineSpec(s);
    };
    expect(bad((s) => (s.schema_version = 3))).toThrow(/schema_version must be 1 or 2, got 3/);
    expect(bad((s) => (s.rootfs_ref.sources = [{ oci: "127.0.0.1:5000/acme/m:latest" }]))).toThrow(/rootfs_ref.sources\[0\].oci must be "<registry>\/<repository>@sha256:<64 hex>"/);
    expect(bad((s) => (s.kernel_ref.sources = [{ https: "http://example.invalid/m.wasm" }]))).toThrow(/kernel_ref.sources\[0\].https must be an "https:\/\/" URL/);
    // A machine in transit names no source; a version 1 spec sealed its sources, so it needs one.
    expect(bad((s) => (s.kernel_ref.sources = []))).not.toThrow();
    expect(bad((s) => ((s.schema_version = 1), (s.kernel_ref.sources = [])))).toThrow(/kernel_ref.sources must name at least one source/);
    expect(bad((s) => (s.kernel_ref.digest = "sha256:00" as never))).toThrow(/kernel_ref.digest must be "blake3:"/);
    expect(bad((s) => (s.composition.components[0]!.digest[0] = 256))).toThrow(/composition.components\[0\].digest must be 32 integers/);
    expect(bad((s) => (s.composition.components[0]!.digest[0] = (s.composition.components[0]!.digest[0]! + 1) % 256))).toThrow(/not the kernel's blake3:/);
    expect(bad((s) => (s.composition.root = "x"))).toThrow(/composition.root names "x"/);
    expect(bad((s) => (s.rootfs_ref.sources = [{ local: "../etc/passwd" }]))).toThrow(/rootfs_ref.sources\[0\].local must be a relative path/);
    expect(bad((s) => (s.capability_profile.network = "maybe" as never))).toThrow(/network must be "deny" or "allow"/);
    expect(bad((s) => (s.capability_profile.filesystem.writable = ["db"]))).toThrow(/writable\[0\] must be an absolute path/);
    expect(bad((s) => (s.capability_profile.filesystem.writable = ["/"]))).toThrow(/writable\[0\] must name a directory below \/ in normal form, not "\/"/);
    expect(bad((s) => (s.capability_profile.filesystem.writable = ["/db/./x"]))).toThrow(/normal form/);
    expect(bad((s) => (s.capability_profile.filesystem.writable = ["/db", "/db/sub"]))).toThrow(/writable\[1\] .*"\/db\/sub" repeats or lies inside writable\[0\] "\/db"/);
  });
});

describe("the sqlite-cli package files", () => {
  // What the .sqliterc does to the machine's output is tested where the machine runs (run.test.ts).
  it("has a template with sqlite-cli's profile, and a .sqliterc of dot-commands only", () => {
    const t = JSON.parse(TEMPLATE) as MachineSpec;
    expect(t.name).toBe("sqlite-cli");
    expect(t.capability_profile).toEqual({ cpus: 1, memory_bytes: 134217728, network: "deny", filesystem: { writable: ["/db"] } });
    expect(t.composition.policy.capabilities).toEqual(["filesystem:writable:/db"]);
    const lines = SQLITERC.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("--"));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l).toMatch(/^\.[a-z]+/);
  });
});
