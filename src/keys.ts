// What an action key is made of. This is the one place that says it: `ActionKeyInputs`
// lists every input that can change an action's output, `actionKey` hashes its canonical
// encoding, and `diffKeyInputs` is what `wmb why` prints.
import { hashBytes, type ActionKey, type Digest } from "./digest.ts";
import { canonicalize } from "./formats/jcs.ts";

export interface ActionKeyInputs {
  /** Version of this encoding: bumping it invalidates every cached result (2: `executable`
   * and `order` entered the key). */
  format: 2;
  /** Rule name and version ("write@1"), plus the versions of in-process tools it runs
   * ("component@1+jco-transpile@0.15.0"): a rule bumps its version when its behaviour changes. */
  rule: string;
  /** The target's attributes minus `name` (renaming a target changes nothing it makes) and
   * `srcs` (sources enter below, by content). */
  attrs: Record<string, unknown>;
  /** Declared output paths: where the rule must write, so they shape what it does. */
  outputs: string[];
  /** Sandbox path -> content digest of every input: source files, and the *output* digests
   * of dependencies (not their keys: an identical rebuilt output stops the rebuild here). */
  inputs: Record<string, Digest>;
  /** Sandbox paths of the inputs placed executable (0555), sorted; every other input is read-only
   * 0444 (sources always are). A rule may read the mode (rootfs keeps it) or run the file. */
  executable: string[];
  /** Input paths in the order the action gets them (ctx.inputs, and the order they are placed in
   * the sandbox, which an unsorted directory listing shows), or null when that is sorted order:
   * a rule that concatenates its inputs makes other bytes when `srcs` is reordered. */
  order: string[] | null;
  /** Digest of the toolchain's bits for rules that compile, else null: switching
   * toolchains never reuses the other's outputs. */
  toolchain: Digest | null;
  /** The environment the action sees: the fixed sandbox variables and the rule's declared ones. */
  env: Record<string, string>;
}

/** What the key holds of an action's inputs, given in the order the action gets them: digests by
 * path, the executable ones, and that order when it is not sorted (the common case costs nothing). */
export function inputsForKey(inputs: readonly { path: string; digest: Digest; executable?: boolean }[]): Pick<ActionKeyInputs, "inputs" | "executable" | "order"> {
  const executable: string[] = [];
  let sorted = true;
  for (let i = 0; i < inputs.length; i++) {
    if (inputs[i]!.executable) executable.push(inputs[i]!.path);
    if (i > 0 && inputs[i - 1]!.path > inputs[i]!.path) sorted = false;
  }
  return {
    inputs: Object.fromEntries(inputs.map((i) => [i.path, i.digest])),
    executable: executable.sort(),
    order: sorted ? null : inputs.map((i) => i.path),
  };
}

/** The canonical encoding of key inputs: RFC 8785 JSON, the same canonical form the seal uses.
 * The members are written in their canonical (sorted) order here, and an env object shared by
 * many actions is encoded once: a build of thousands of actions encodes a key each (#16). The
 * text is canonicalize(k)'s, byte for byte (test/jcs.test.ts). */
export function encodeKeyInputs(k: ActionKeyInputs): string {
  if (Object.keys(k).length !== KEY_MEMBERS) return canonicalize(k);
  let env = encodedEnvs.get(k.env);
  if (env === undefined) encodedEnvs.set(k.env, (env = canonicalize(k.env)));
  return `{"attrs":${canonicalize(k.attrs)},"env":${env},"executable":${canonicalize(k.executable)},"format":${canonicalize(k.format)},"inputs":${canonicalize(k.inputs)},"order":${canonicalize(k.order)},"outputs":${canonicalize(k.outputs)},"rule":${canonicalize(k.rule)},"toolchain":${canonicalize(k.toolchain)}}`;
}

/** attrs, env, executable, format, inputs, order, outputs, rule, toolchain. */
const KEY_MEMBERS = 9;
/** Encoded env objects. An env is never changed once a plan holds it (planAction). */
const encodedEnvs = new WeakMap<object, string>();

export function actionKey(k: ActionKeyInputs): ActionKey {
  return keyOfEncoded(encodeKeyInputs(k));
}

/** The key of already encoded key inputs (a plan encodes them once: key, record, upload). */
export function keyOfEncoded(encoded: string): ActionKey {
  return hashBytes(encoded) as string as ActionKey;
}

export interface KeyChange {
  /** Dotted path of the entry, e.g. "inputs.greeting.txt" or "attrs.copts". */
  path: string;
  before: unknown;
  after: unknown;
}

/** Which entries differ between two key inputs, in a stable order. An input added or removed
 * is said once, under `inputs.`; its mode and place in the order are said for inputs both have. */
export function diffKeyInputs(before: ActionKeyInputs, after: ActionKeyInputs): KeyChange[] {
  const changes: KeyChange[] = [];
  const fields: (keyof ActionKeyInputs)[] = ["format", "rule", "toolchain", "outputs", "attrs", "env", "inputs", "executable", "order"];
  const inBoth = (p: string) => before.inputs?.[p] !== undefined && after.inputs?.[p] !== undefined;
  for (const f of fields) {
    const a = before[f];
    const b = after[f];
    if (f === "attrs" || f === "env" || f === "inputs") {
      const ao = (a ?? {}) as Record<string, unknown>;
      const bo = (b ?? {}) as Record<string, unknown>;
      for (const k of [...new Set([...Object.keys(ao), ...Object.keys(bo)])].sort()) {
        if (!same(ao[k], bo[k])) changes.push({ path: `${f}.${k}`, before: ao[k], after: bo[k] });
      }
    } else if (f === "executable") {
      // "executable.tool.sh: false -> true"
      const ax = new Set(before.executable ?? []);
      const bx = new Set(after.executable ?? []);
      for (const p of [...new Set([...ax, ...bx])].sort()) {
        if (ax.has(p) !== bx.has(p) && inBoth(p)) changes.push({ path: `executable.${p}`, before: ax.has(p), after: bx.has(p) });
      }
    } else if (f === "order") {
      const ao = inputOrder(before);
      const bo = inputOrder(after);
      if (!same(ao.filter(inBoth), bo.filter(inBoth))) changes.push({ path: "order", before: ao, after: bo });
    } else if (!same(a, b)) {
      changes.push({ path: f, before: a, after: b });
    }
  }
  return changes;
}

/** The order an action got its inputs in (`order`, or sorted when that is null). */
function inputOrder(k: ActionKeyInputs): string[] {
  return k.order ?? Object.keys(k.inputs ?? {}).sort();
}

function same(a: unknown, b: unknown): boolean {
  return a === undefined || b === undefined ? a === b : canonicalize(a) === canonicalize(b);
}
