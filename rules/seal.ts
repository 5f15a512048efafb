// seal: checks a machine spec against the bits it names and against its own capability
// profile, then stamps it with its identity. Outputs the sealed spec and, next to it, the
// kernel and rootfs under the names the spec's `sources: [{local}]` give them, so the three
// files of wmb-out/<pkg>/ are a self-contained machine that `wmb run <file>.json` can check.
//
// Refusals (the action fails with a sentence that names the import or the numbers):
// - the component imports wasi:sockets/* or wasi:http/* while the profile says network: "deny";
// - the memories the component's core modules define may grow, together, past memory_bytes;
//   a memory with no declared maximum counts as exceeding any memory_bytes (it is unbounded);
// - the spec does not match the kernel or rootfs it is given (digest, size, bindings), or the
//   profile's writable paths have no mount point in the rootfs.
import { bindingDifferences, checkArtifact, formatSpec, policyViolations, sealSpec, validateMachineSpec } from "../src/formats/machine-spec.ts";
import { readComponent } from "../src/formats/wasm.ts";
import { readInput, writeOutput } from "./input-file.ts";
import { defineRule, type CommonAttrs } from "./rule.ts";
import { checkProfileAgainstRootfs } from "./spec.ts";

export interface SealAttrs extends CommonAttrs {
  /** The machine's name; the sealed spec is "<machine>.json". */
  machine: string;
  /** Input path of the unsealed spec; default "<machine>.spec.json". */
  spec?: string;
  /** Input path of the component the spec describes. */
  kernel: string;
  /** Input path of the rootfs tar the spec describes. */
  rootfs: string;
  /** Names to publish the kernel and rootfs under; must match the spec's sources[].local.
   * Defaults "<machine>.wasm" and "<machine>.rootfs.tar" (the spec rule's defaults). */
  kernelFile?: string;
  rootfsFile?: string;
  /** Also output the kernel and rootfs next to the sealed spec (default true). */
  bundle?: boolean;
}

export const seal = defineRule<SealAttrs>({
  name: "seal",
  version: 1,
  attrTypes: {
    machine: "string",
    spec: "string?",
    kernel: "string",
    rootfs: "string",
    kernelFile: "string?",
    rootfsFile: "string?",
    bundle: "boolean?",
  },
  outputs: (a) => (a.bundle === false ? [sealedOutput(a)] : [sealedOutput(a), kernelFile(a), rootfsFile(a)]),
  machineOutput: sealedOutput,
  machineName: (a) => a.machine,
  async run(ctx) {
    const a = ctx.attrs;
    const fail = (why: string): never => {
      throw new Error(`${ctx.label}: ${why}`);
    };
    const specPath = a.spec ?? `${a.machine}.spec.json`;
    const [specBytes, kernel, rootfs] = await Promise.all([
      readInput(ctx, specPath, "spec"),
      readInput(ctx, a.kernel, "kernel"),
      readInput(ctx, a.rootfs, "rootfs"),
    ]);
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(specBytes));
    } catch (e) {
      return fail(`the spec ${specPath} is not valid JSON: ${(e as Error).message}.`);
    }
    const machine = labelled(ctx.label, () => validateMachineSpec(parsed, `the spec ${specPath}`));
    if (machine.name !== a.machine) fail(`the spec ${specPath} describes the machine "${machine.name}", but the target says machine: "${a.machine}".`);
    labelled(ctx.label, () => checkArtifact(machine.kernel_ref, kernel, `the kernel ${a.kernel}`));
    labelled(ctx.label, () => checkArtifact(machine.rootfs_ref, rootfs, `the rootfs ${a.rootfs}`));
    if (a.bundle !== false) {
      for (const [ref, file, what] of [[machine.kernel_ref, kernelFile(a), "kernel"], [machine.rootfs_ref, rootfsFile(a), "rootfs"]] as const) {
        if (!ref.sources.some((s) => s.local === file)) {
          fail(`the spec's ${what}_ref has no source {local: "${file}"}, the name this target publishes the ${what} under; set ${what}File on both targets alike.`);
        }
      }
    }

    let component;
    try {
      component = readComponent(kernel);
    } catch (e) {
      return fail(`the kernel ${a.kernel} is not a WebAssembly component: ${(e as Error).message}`);
    }
    const { missing, extra } = bindingDifferences(machine, component);
    if (missing.length) fail(`the component imports ${missing.join(", ")}, which the spec binds to nothing; rebuild the spec.`);
    if (extra.length) fail(`the spec binds ${extra.join(", ")}, which the component does not import; rebuild the spec.`);

    const violations = policyViolations(component, machine.capability_profile);
    if (violations.length) fail(`refusing to seal "${machine.name}": ${violations.join(" ")}`);
    checkProfileAgainstRootfs(machine, rootfs, a.rootfs, fail);

    const sealed = sealSpec(machine);
    await writeOutput(ctx, sealedOutput(a), formatSpec(sealed));
    if (a.bundle !== false) {
      await writeOutput(ctx, kernelFile(a), kernel);
      await writeOutput(ctx, rootfsFile(a), rootfs);
    }
    ctx.log(`${machine.name} sealed as ${sealed.seal.digest}`);
  },
});

export function sealedOutput(a: SealAttrs): string {
  return `${a.machine}.json`;
}

/** Errors of the shared spec checks, prefixed with the target they stopped. */
function labelled<T>(label: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new Error(`${label}: ${(e as Error).message}`, { cause: e });
  }
}

function kernelFile(a: SealAttrs): string {
  return a.kernelFile ?? `${a.machine}.wasm`;
}

function rootfsFile(a: SealAttrs): string {
  return a.rootfsFile ?? `${a.machine}.rootfs.tar`;
}
