// What the tab proves before it runs a machine, with wmb's own spec code (src/formats, its
// hashing on @noble/hashes here): the spec against its seal and the identity in the URL, the
// kernel and rootfs against the spec, the rootfs's entries, the component's imports against the
// spec's bindings and policy, and every transpiled file against its BLAKE3. Each core module jco
// extracted must also lie byte for byte inside the kernel, so the code that is compiled is the
// sealed code; the JavaScript glue is what wmb's transpiler made of it, checked by its digest.
// Nothing is compiled or instantiated here: the worker gets the bytes only once all of this passed.
import { bindingDifferences, checkArtifact, checkSealedSpec, policyViolations, WASI_HOST, type SealedSpec } from "../../formats/machine-spec.ts";
import { readComponent } from "../../formats/wasm.ts";
import { readRootfsEntries, type RootfsEntry } from "../../formats/rootfs-entries.ts";
import { hashBytes } from "./browser-digest.ts";
import { WORKER_INTERFACES } from "./run-shared.ts";

export interface RunManifest {
  identity: string;
  spec: { digest: string; size: number };
  transpiled: Record<string, { digest: string; size: number }>;
}

export interface Step {
  what: string;
  state: "checking" | "ok" | "bad";
  detail?: string;
}

export interface VerifiedMachine {
  spec: SealedSpec;
  rootfs: RootfsEntry[];
  transpiled: Record<string, Uint8Array>;
  interfaces: string[];
}

/** A check failed: `message` is the one sentence the page shows. */
export class Refusal extends Error {}

export async function verifyMachine(
  identity: string,
  src: { manifest: string; blob: (digest: string) => string },
  step: (s: Step) => void,
  onSpec?: (spec: SealedSpec) => void,
): Promise<VerifiedMachine> {
  const fetchBytes = async (url: string, what: string): Promise<Uint8Array> => {
    const res = await fetch(url, { cache: "no-store" });
    if (!res.ok) throw new Refusal(`${cap(what)} could not be fetched (${res.status}); nothing was run.`);
    return new Uint8Array(await res.arrayBuffer());
  };
  const check = async <T>(what: string, fn: () => T | Promise<T>, detail?: (v: T) => string): Promise<T> => {
    step({ what, state: "checking" });
    try {
      const v = await fn();
      step({ what, state: "ok", detail: detail?.(v) });
      return v;
    } catch (e) {
      const sentence = e instanceof Refusal ? e.message : `${cap(String((e as Error)?.message ?? e).replace(/\.$/, ""))}; nothing was run.`;
      step({ what, state: "bad", detail: sentence });
      throw new Refusal(sentence);
    }
  };

  const manifestRes = await fetch(src.manifest, { cache: "no-store" });
  const manifest = (await manifestRes.json()) as RunManifest & { error?: string };
  if (!manifestRes.ok) throw new Refusal(manifest.error ?? `The machine's files could not be listed (${manifestRes.status}); nothing was run.`);

  const spec = await check(
    "the spec matches its seal and this identity",
    async () => {
      const bytes = await fetchBytes(src.blob(manifest.spec.digest), "the spec");
      const value = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
      const s = checkSealedSpec(value, {}, "the spec");
      if (s.seal.digest !== identity) throw new Refusal(`The spec is sealed as ${s.seal.digest}, not ${identity}; nothing was run.`);
      return s;
    },
    (s) => s.seal.digest,
  );
  onSpec?.(spec);
  const name = `${spec.name} ${spec.version}`;
  const kernel = await check(
    `the kernel of ${name}`,
    async () => {
      const b = await fetchBytes(src.blob(spec.kernel_ref.digest.slice(7)), `the kernel of ${name}`);
      checkArtifact(spec.kernel_ref, b, `the kernel of ${name}`);
      return b;
    },
    () => spec.kernel_ref.digest,
  );
  const rootfs = await check(
    `the rootfs of ${name}`,
    async () => {
      const b = await fetchBytes(src.blob(spec.rootfs_ref.digest.slice(7)), `the rootfs of ${name}`);
      checkArtifact(spec.rootfs_ref, b, `the rootfs of ${name}`);
      return readRootfsEntries(b);
    },
    (entries) => `${spec.rootfs_ref.digest} (${entries.length} entries)`,
  );
  const interfaces = await check(
    "the component's imports against the spec's bindings and policy",
    () => {
      const component = readComponent(kernel);
      const { missing, extra } = bindingDifferences(spec, component);
      if (missing.length || extra.length) throw new Refusal(`The spec's bindings do not match its component (${[...missing, ...extra].join(", ")}); nothing was run.`);
      const violations = policyViolations(component, spec.capability_profile);
      if (violations.length) throw new Refusal(`${violations.join(" ")} Nothing was run.`);
      const bound = spec.composition.bindings.filter((b) => b.consumer_id === spec.composition.root);
      const elsewhere = bound.filter((b) => b.provider_id !== WASI_HOST);
      if (elsewhere.length) throw new Refusal(`It binds ${elsewhere[0]!.import_name} to ${elsewhere[0]!.provider_id}, which the tab does not provide; nothing was run.`);
      const names = [...new Set(bound.map((b) => b.import_name.replace(/@.*$/, "")))].sort();
      const missingHere = names.filter((n) => !WORKER_INTERFACES.includes(n));
      if (missingHere.length) throw new Refusal(`The tab implements no ${missingHere.join(", ")}, which the machine is granted; run it with \`wmb run\`.`);
      return names;
    },
    (names) => `${names.length} interfaces granted`,
  );
  const transpiled: Record<string, Uint8Array> = {};
  for (const [file, ref] of Object.entries(manifest.transpiled).sort()) {
    transpiled[file] = await check(
      `transpiled ${file}`,
      async () => {
        const b = await fetchBytes(src.blob(ref.digest), `the transpiled ${file}`);
        const d = hashBytes(b);
        if (d !== ref.digest || b.length !== ref.size) throw new Refusal(`The transpiled ${file} hashes to blake3:${d} but its list says blake3:${ref.digest}; nothing was run.`);
        if (file.endsWith(".wasm") && indexOf(kernel, b) < 0) throw new Refusal(`The core module ${file} is not part of the sealed kernel; nothing was run.`);
        return b;
      },
      () => `blake3:${ref.digest}${file.endsWith(".wasm") ? ", inside the kernel" : ""}`,
    );
  }
  return { spec, rootfs, transpiled, interfaces };
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** Where `needle` starts in `hay`, or -1 (core modules are a few, the kernel a few MB). */
function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  if (needle.length === 0 || needle.length > hay.length) return -1;
  const first = needle[0]!;
  for (let i = hay.indexOf(first); i >= 0 && i <= hay.length - needle.length; i = hay.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && hay[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}
