// spec: the unsealed machine spec, from a template (the parts people write: name, version,
// capability profile, composition policy) and the built artifacts (the parts read from the
// bits: the kernel's and rootfs's refs, the component's digest, one binding per WASI import
// the component really has).
import { readTar } from "../src/formats/tar-reader.ts";
import {
  artifactRef,
  digestHexToInts,
  formatSpec,
  KERNEL_MEDIA_TYPE,
  ROOTFS_MEDIA_TYPE,
  validateMachineSpec,
  wasiBindings,
  type MachineSpec,
} from "../src/formats/machine-spec.ts";
import { readComponent } from "../src/formats/wasm.ts";
import { readInput, writeOutput } from "./input-file.ts";
import { defineRule, type CommonAttrs } from "./rule.ts";

export interface SpecAttrs extends CommonAttrs {
  /** The machine's name; must equal the template's "name". */
  machine: string;
  /** Input path of the template (e.g. "spec.template.json"). */
  template: string;
  /** Input path of the WASI 0.2 component (the kernel). */
  kernel: string;
  /** Input path of the rootfs tar. */
  rootfs: string;
  /** File name the spec gives the kernel next to it (kernel_ref.sources[0].local); default "<machine>.wasm". */
  kernelFile?: string;
  /** Same for the rootfs; default "<machine>.rootfs.tar". */
  rootfsFile?: string;
  /** Output file name; default "<machine>.spec.json" (the sealed one is "<machine>.json"). */
  out?: string;
}

/** Members the spec rule writes; a template that sets them is refused rather than overwritten. */
const FILLED = ["kernel_ref", "rootfs_ref"] as const;
const FILLED_IN_COMPOSITION = ["components", "bindings"] as const;

export const spec = defineRule<SpecAttrs>({
  name: "spec",
  version: 1,
  attrTypes: { machine: "string", template: "string", kernel: "string", rootfs: "string", kernelFile: "string?", rootfsFile: "string?", out: "string?" },
  outputs: (a) => [specOutput(a)],
  async run(ctx) {
    const a = ctx.attrs;
    const fail = (why: string): never => {
      throw new Error(`${ctx.label}: ${why}`);
    };
    const [templateBytes, kernel, rootfs] = await Promise.all([
      readInput(ctx, a.template, "template"),
      readInput(ctx, a.kernel, "kernel"),
      readInput(ctx, a.rootfs, "rootfs"),
    ]);

    let template: Record<string, unknown>;
    try {
      template = JSON.parse(new TextDecoder().decode(templateBytes)) as Record<string, unknown>;
    } catch (e) {
      return fail(`the template ${a.template} is not valid JSON: ${(e as Error).message}.`);
    }
    if (template === null || typeof template !== "object" || Array.isArray(template)) return fail(`the template ${a.template} must hold a JSON object.`);
    if (template.name !== a.machine) fail(`the template ${a.template} names the machine ${JSON.stringify(template.name)}, but the target says machine: "${a.machine}".`);
    for (const k of [...FILLED, "seal"]) if (k in template) fail(`the template ${a.template} sets "${k}", which the spec and seal rules fill in; remove it.`);
    const composition = (template.composition ?? {}) as Record<string, unknown>;
    for (const k of FILLED_IN_COMPOSITION) {
      if (k in composition) fail(`the template ${a.template} sets "composition.${k}", which the spec rule reads from the component; remove it.`);
    }

    let component;
    try {
      component = readComponent(kernel);
    } catch (e) {
      return fail(`the kernel ${a.kernel} is not a WebAssembly component: ${(e as Error).message}`);
    }
    const rootId = composition.root;
    if (typeof rootId !== "string" || rootId === "") return fail(`the template ${a.template} must set composition.root to the component's id.`);
    let bindings;
    try {
      bindings = wasiBindings(rootId, component);
    } catch (e) {
      return fail((e as Error).message);
    }

    const kernelRef = artifactRef(kernel, KERNEL_MEDIA_TYPE, a.kernelFile ?? `${a.machine}.wasm`);
    const filled = {
      ...template,
      kernel_ref: kernelRef,
      rootfs_ref: artifactRef(rootfs, ROOTFS_MEDIA_TYPE, a.rootfsFile ?? `${a.machine}.rootfs.tar`),
      composition: {
        ...composition,
        components: [{ id: rootId, digest: digestHexToInts(kernelRef.digest) }],
        bindings,
      },
    };
    let machine: MachineSpec;
    try {
      machine = validateMachineSpec(filled, "the filled-in spec");
    } catch (e) {
      return fail((e as Error).message);
    }
    checkProfileAgainstRootfs(machine, rootfs, a.rootfs, fail);
    await writeOutput(ctx, specOutput(a), formatSpec(machine));
  },
});

export function specOutput(a: SpecAttrs): string {
  return a.out ?? `${a.machine}.spec.json`;
}

/** Each writable path is a directory of the rootfs (its mount point) and a declared capability. */
export function checkProfileAgainstRootfs(machine: MachineSpec, rootfs: Uint8Array, rootfsName: string, fail: (why: string) => never): void {
  let dirs: Set<string>;
  try {
    dirs = new Set(readTar(rootfs).filter((e) => e.type === "dir").map((e) => `/${e.path.replace(/^\.?\/+|\/+$/g, "")}`));
  } catch (e) {
    return fail(`the rootfs ${rootfsName} is not a tar archive: ${(e as Error).message}`);
  }
  const caps = new Set(machine.composition.policy.capabilities);
  for (const w of machine.capability_profile.filesystem.writable) {
    if (!dirs.has(w)) fail(`the profile makes ${w} writable, but the rootfs ${rootfsName} has no directory ${w} to mount it on; add it to the rootfs target's dirs.`);
    if (!caps.has(`filesystem:writable:${w}`)) fail(`the profile makes ${w} writable, but composition.policy.capabilities lacks "filesystem:writable:${w}".`);
  }
}
