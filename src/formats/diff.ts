// Explains how two versions of an output differ, in the terms of its kind, for `wmb verify`:
// tar archives by entry and field, wasm binaries by section, JSON by path, text by lines
// (a unified diff), anything else by the first differing byte. Every report carries a `text`
// ready to print, capped so one divergent output never floods the terminal.
import { looksLikeTar, readTar, type TarEntry } from "./tar-reader.ts";
import { isWasm, readWasmSections, type WasmSection } from "./wasm.ts";

export type DiffKind = "identical" | "tar" | "wasm" | "json" | "text" | "binary";

export type TarField = "type" | "mode" | "owner" | "mtime" | "size" | "content" | "linkname" | "pax";

export interface TarEntryChange {
  path: string;
  fields: { field: TarField; a: string; b: string }[];
}

export interface WasmSectionChange {
  /** "type", "core module", "custom:name" … */
  name: string;
  change: "added" | "removed" | "changed";
  /** Index among the sections of a and b (absent on the side that lacks it). */
  indexA?: number;
  indexB?: number;
  sizeA?: number;
  sizeB?: number;
  /** For a changed core module or component section: its own sections that differ. */
  nested?: WasmSectionChange[];
}

export interface JsonChange {
  /** "$.composition.bindings[2].import_name"; values are JSON text, "(absent)" when missing. */
  path: string;
  a: string;
  b: string;
}

interface Common {
  /** One line, e.g. "tar: 1 entry changed (mtime)". */
  summary: string;
  /** The full human-readable explanation (capped). */
  text: string;
}

export type DiffReport = Common &
  (
    | { kind: "identical" }
    | { kind: "tar"; added: string[]; removed: string[]; changed: TarEntryChange[]; orderDiffers: boolean }
    | { kind: "wasm"; moduleKindA: string; moduleKindB: string; sections: WasmSectionChange[] }
    | { kind: "json"; changes: JsonChange[] }
    | { kind: "text"; changedLines: number }
    | { kind: "binary"; offset: number; sizeA: number; sizeB: number }
  );

const MAX_TEXT_LINES = 40;
const MAX_ITEMS = 50;

/** Compare `a` (e.g. the recorded output) with `b` (the rebuilt one); `nameHint` is the output's path. */
export function diffArtifacts(a: Uint8Array, b: Uint8Array, nameHint: string): DiffReport {
  if (equalBytes(a, b)) return { kind: "identical", summary: `${nameHint}: identical (${a.length} bytes)`, text: `${nameHint}: identical` };
  const lower = nameHint.toLowerCase();
  const attempts: (() => DiffReport | undefined)[] = [];
  if (lower.endsWith(".tar") || (looksLikeTar(a) && looksLikeTar(b))) attempts.push(() => diffTar(a, b, nameHint));
  if (lower.endsWith(".wasm") || (isWasm(a) && isWasm(b))) attempts.push(() => diffWasm(a, b, nameHint));
  if (lower.endsWith(".json")) attempts.push(() => diffJson(a, b, nameHint));
  attempts.push(() => diffText(a, b, nameHint));
  for (const attempt of attempts) {
    // A reader that fails (a truncated tar, a corrupt wasm) hands over to the next kind.
    try {
      const r = attempt();
      if (r) return r;
    } catch {
      // fall through
    }
  }
  return diffBinary(a, b, nameHint);
}

// ---- tar -----------------------------------------------------------------------------------

function diffTar(a: Uint8Array, b: Uint8Array, name: string): DiffReport {
  const ea = readTar(a);
  const eb = readTar(b);
  const ma = new Map(ea.map((e) => [e.path, e]));
  const mb = new Map(eb.map((e) => [e.path, e]));
  const added = eb.filter((e) => !ma.has(e.path)).map((e) => e.path);
  const removed = ea.filter((e) => !mb.has(e.path)).map((e) => e.path);
  const changed: TarEntryChange[] = [];
  const contentDiffs = new Map<string, string[]>();
  for (const x of ea) {
    const y = mb.get(x.path);
    if (!y) continue;
    const fields = tarFieldChanges(x, y);
    if (fields.length) changed.push({ path: x.path, fields });
    if (fields.some((f) => f.field === "content") && contentDiffs.size < 3) {
      const t = textDiff(x.data, y.data);
      if (t) contentDiffs.set(x.path, t.lines);
    }
  }
  const common = (entries: TarEntry[], other: Map<string, TarEntry>) => entries.filter((e) => other.has(e.path)).map((e) => e.path);
  const orderA = common(ea, mb);
  const orderB = common(eb, ma);
  const orderDiffers = orderA.some((p, i) => p !== orderB[i]);

  const parts: string[] = [];
  if (added.length) parts.push(`${added.length} added`);
  if (removed.length) parts.push(`${removed.length} removed`);
  if (changed.length) {
    const fields = [...new Set(changed.flatMap((c) => c.fields.map((f) => f.field)))];
    parts.push(`${changed.length} changed (${fields.join(", ")})`);
  }
  if (orderDiffers) parts.push("entry order differs");
  if (parts.length === 0) parts.push("same entries, different archive bytes (padding or header layout)");
  const lines: string[] = [`--- a/${name}`, `+++ b/${name}`];
  for (const p of removed.slice(0, MAX_ITEMS)) lines.push(`- ${p}`);
  for (const p of added.slice(0, MAX_ITEMS)) lines.push(`+ ${p}`);
  for (const c of changed.slice(0, MAX_ITEMS)) {
    lines.push(`~ ${c.path}: ${c.fields.map((f) => `${f.field} ${f.a} -> ${f.b}`).join(", ")}`);
    for (const l of contentDiffs.get(c.path) ?? []) lines.push(`    ${l}`);
  }
  if (orderDiffers) {
    const i = orderA.findIndex((p, k) => p !== orderB[k]);
    lines.push(`order: entry ${i} is ${orderA[i]} in a, ${orderB[i]} in b`);
  }
  return { kind: "tar", added, removed, changed, orderDiffers, summary: `tar ${name}: ${parts.join(", ")}`, text: cap(lines) };
}

function tarFieldChanges(x: TarEntry, y: TarEntry): TarEntryChange["fields"] {
  const out: TarEntryChange["fields"] = [];
  const add = (field: TarField, a: string, b: string) => {
    if (a !== b) out.push({ field, a, b });
  };
  add("type", x.type, y.type);
  add("mode", x.mode.toString(8).padStart(4, "0"), y.mode.toString(8).padStart(4, "0"));
  add("owner", `${x.uid}:${x.gid} (${x.uname || "-"}:${x.gname || "-"})`, `${y.uid}:${y.gid} (${y.uname || "-"}:${y.gname || "-"})`);
  add("mtime", String(x.mtime), String(y.mtime));
  add("size", String(x.size), String(y.size));
  if (!equalBytes(x.data, y.data)) {
    const i = firstDifference(x.data, y.data);
    out.push({ field: "content", a: `byte ${i}: ${hexAround(x.data, i)}`, b: hexAround(y.data, i) });
  }
  add("linkname", x.linkname, y.linkname);
  add("pax", paxText(x.pax), paxText(y.pax));
  return out;
}

function paxText(p: Record<string, string>): string {
  const keys = Object.keys(p).sort();
  return keys.length ? keys.map((k) => `${k}=${p[k]}`).join(" ") : "(none)";
}

// ---- wasm ----------------------------------------------------------------------------------

function diffWasm(a: Uint8Array, b: Uint8Array, name: string): DiffReport {
  const sa = readWasmSections(a);
  const sb = readWasmSections(b);
  const sections = diffSections(a, sa.sections, b, sb.sections, 0);
  const lines: string[] = [`--- a/${name} (${sa.kind}, ${a.length} bytes, ${sa.sections.length} sections)`, `+++ b/${name} (${sb.kind}, ${b.length} bytes, ${sb.sections.length} sections)`];
  if (sa.kind !== sb.kind) lines.push(`kind: ${sa.kind} -> ${sb.kind}`);
  const describe = (changes: WasmSectionChange[], indent: string) => {
    for (const c of changes.slice(0, MAX_ITEMS)) {
      const where = c.change === "added" ? `#${c.indexB}` : c.change === "removed" ? `#${c.indexA}` : `#${c.indexA}/#${c.indexB}`;
      const sizes = c.change === "added" ? `${c.sizeB} bytes` : c.change === "removed" ? `${c.sizeA} bytes` : `${c.sizeA} -> ${c.sizeB} bytes`;
      lines.push(`${indent}${c.change === "added" ? "+" : c.change === "removed" ? "-" : "~"} section ${where} ${c.name}: ${sizes}`);
      if (c.nested) describe(c.nested, `${indent}    `);
    }
  };
  describe(sections, "");
  const counts = ["changed", "added", "removed"].map((k) => [k, sections.filter((s) => s.change === k).length] as const).filter(([, n]) => n > 0);
  const summary = `wasm ${name}: ${counts.map(([k, n]) => `${n} section${n === 1 ? "" : "s"} ${k}`).join(", ") || "same sections, different bytes"}` +
    (sections[0] ? ` (first: ${sections[0].name})` : "");
  return { kind: "wasm", moduleKindA: sa.kind, moduleKindB: sb.kind, sections, summary, text: cap(lines) };
}

function diffSections(a: Uint8Array, sa: WasmSection[], b: Uint8Array, sb: WasmSection[], depth: number): WasmSectionChange[] {
  const out: WasmSectionChange[] = [];
  const pairs = alignBy(sa.map((s) => s.name), sb.map((s) => s.name));
  for (const [i, j] of pairs) {
    if (i !== undefined && j !== undefined) {
      const x = sa[i]!;
      const y = sb[j]!;
      const bx = a.subarray(x.contentOffset, x.contentOffset + x.size);
      const by = b.subarray(y.contentOffset, y.contentOffset + y.size);
      if (equalBytes(bx, by)) continue;
      const change: WasmSectionChange = { name: x.name, change: "changed", indexA: i, indexB: j, sizeA: x.size, sizeB: y.size };
      // A nested module or component is a binary of its own: say which of its sections differ.
      if ((x.name === "core module" || x.name === "component") && depth < 2) {
        try {
          change.nested = diffSections(bx, readWasmSections(bx).sections, by, readWasmSections(by).sections, depth + 1);
        } catch {
          // Not parseable: the size change says enough.
        }
      }
      out.push(change);
    } else if (i !== undefined) {
      out.push({ name: sa[i]!.name, change: "removed", indexA: i, sizeA: sa[i]!.size });
    } else {
      out.push({ name: sb[j!]!.name, change: "added", indexB: j, sizeB: sb[j!]!.size });
    }
  }
  return out;
}

// ---- json ----------------------------------------------------------------------------------

function diffJson(a: Uint8Array, b: Uint8Array, name: string): DiffReport | undefined {
  let ja: unknown;
  let jb: unknown;
  try {
    ja = JSON.parse(decodeUtf8(a)!);
    jb = JSON.parse(decodeUtf8(b)!);
  } catch {
    return undefined;
  }
  const changes: JsonChange[] = [];
  jsonChanges(ja, jb, "$", changes);
  const lines = [`--- a/${name}`, `+++ b/${name}`];
  if (changes.length === 0) lines.push("same JSON value, different formatting or member order");
  for (const c of changes.slice(0, MAX_ITEMS)) lines.push(`${c.path}: ${c.a} -> ${c.b}`);
  if (changes.length > MAX_ITEMS) lines.push(`… and ${changes.length - MAX_ITEMS} more paths`);
  const summary = changes.length
    ? `json ${name}: ${changes.length} path${changes.length === 1 ? "" : "s"} differ (first: ${changes[0]!.path})`
    : `json ${name}: same value, different formatting`;
  return { kind: "json", changes, summary, text: cap(lines) };
}

function jsonChanges(a: unknown, b: unknown, path: string, out: JsonChange[]): void {
  if (out.length > MAX_ITEMS) return;
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      if (i >= a.length) out.push({ path: `${path}[${i}]`, a: "(absent)", b: show(b[i]) });
      else if (i >= b.length) out.push({ path: `${path}[${i}]`, a: show(a[i]), b: "(absent)" });
      else jsonChanges(a[i], b[i], `${path}[${i}]`, out);
    }
    return;
  }
  if (isObj(a) && isObj(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const p = /^[A-Za-z_$][\w$]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`;
      if (!(k in b)) out.push({ path: p, a: show(a[k]), b: "(absent)" });
      else if (!(k in a)) out.push({ path: p, a: "(absent)", b: show(b[k]) });
      else jsonChanges(a[k], b[k], p, out);
    }
    return;
  }
  if (!Object.is(a, b) && JSON.stringify(a) !== JSON.stringify(b)) out.push({ path, a: show(a), b: show(b) });
}

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}…` : s;
}

// ---- text ----------------------------------------------------------------------------------

function diffText(a: Uint8Array, b: Uint8Array, name: string): DiffReport | undefined {
  const diff = textDiff(a, b, 3, MAX_TEXT_LINES - 2);
  if (!diff) return undefined;
  const { lines, changedLines } = diff;
  const first = lines[0];
  return {
    kind: "text",
    changedLines,
    summary: `text ${name}: ${changedLines} line${changedLines === 1 ? "" : "s"} differ${first ? ` (${first})` : ""}`,
    text: cap([`--- a/${name}`, `+++ b/${name}`, ...lines]),
  };
}

/** A unified diff body of two UTF-8 texts (undefined when either is not text), at most `max` lines. */
function textDiff(a: Uint8Array, b: Uint8Array, context = 1, max = 10): { lines: string[]; changedLines: number } | undefined {
  const ta = decodeUtf8(a);
  const tb = decodeUtf8(b);
  if (ta === undefined || tb === undefined) return undefined;
  const la = ta.split("\n");
  const lb = tb.split("\n");
  // Trim the common head and tail, so the line alignment only runs over the region that changed.
  let head = 0;
  while (head < la.length && head < lb.length && la[head] === lb[head]) head++;
  let tail = 0;
  while (tail < la.length - head && tail < lb.length - head && la[la.length - 1 - tail] === lb[lb.length - 1 - tail]) tail++;
  const ma = la.slice(head, la.length - tail);
  const mb = lb.slice(head, lb.length - tail);
  const ops: { op: " " | "-" | "+"; line: string }[] = [];
  for (let k = Math.max(0, head - context); k < head; k++) ops.push({ op: " ", line: la[k]! });
  if (ma.length * mb.length <= 4_000_000) {
    for (const [i, j] of alignBy(ma, mb)) {
      if (i !== undefined && j !== undefined) ops.push({ op: " ", line: ma[i]! });
      else if (i !== undefined) ops.push({ op: "-", line: ma[i]! });
      else ops.push({ op: "+", line: mb[j!]! });
    }
  } else {
    // Too large to align line by line: show the changed region as removed then added.
    for (const l of ma) ops.push({ op: "-", line: l });
    for (const l of mb) ops.push({ op: "+", line: l });
  }
  for (let k = la.length - tail; k < Math.min(la.length, la.length - tail + context); k++) ops.push({ op: " ", line: la[k]! });
  const out = [`@@ -${head + 1},${ma.length} +${head + 1},${mb.length} @@`];
  for (const o of ops) {
    if (out.length >= max) {
      out.push(`… (${ops.length - out.length + 1} more lines)`);
      break;
    }
    out.push(`${o.op}${o.line}`);
  }
  return { lines: out, changedLines: ops.filter((o) => o.op !== " ").length };
}

function decodeUtf8(bytes: Uint8Array): string | undefined {
  if (bytes.includes(0)) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

// ---- binary --------------------------------------------------------------------------------

function diffBinary(a: Uint8Array, b: Uint8Array, name: string): DiffReport {
  const offset = firstDifference(a, b);
  const lines = [
    `--- a/${name} (${a.length} bytes)`,
    `+++ b/${name} (${b.length} bytes)`,
    `first difference at byte ${offset} (0x${offset.toString(16)})`,
    `a: ${hexAround(a, offset)}`,
    `b: ${hexAround(b, offset)}`,
  ];
  return { kind: "binary", offset, sizeA: a.length, sizeB: b.length, summary: `binary ${name}: first difference at byte ${offset} (sizes ${a.length} and ${b.length})`, text: lines.join("\n") };
}

/** 8 bytes before and 8 from `i`, as hex, with the differing byte in brackets. */
function hexAround(bytes: Uint8Array, i: number): string {
  const from = Math.max(0, i - 8);
  const parts: string[] = [];
  for (let k = from; k < Math.min(bytes.length, i + 8); k++) {
    const h = bytes[k]!.toString(16).padStart(2, "0");
    parts.push(k === i ? `[${h}]` : h);
  }
  if (i >= bytes.length) parts.push("[end]");
  return parts.join(" ");
}

// ---- shared --------------------------------------------------------------------------------

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/** Longest-common-subsequence alignment of two sequences: pairs [i, j], [i, undefined] or [undefined, j], in order. */
function alignBy(a: readonly string[], b: readonly string[]): [number | undefined, number | undefined][] {
  const n = a.length;
  const m = b.length;
  const lcs = new Uint32Array((n + 1) * (m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * (m + 1) + j] = a[i] === b[j] ? lcs[(i + 1) * (m + 1) + j + 1]! + 1 : Math.max(lcs[(i + 1) * (m + 1) + j]!, lcs[i * (m + 1) + j + 1]!);
    }
  }
  const out: [number | undefined, number | undefined][] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) out.push([i++, j++]);
    else if (lcs[(i + 1) * (m + 1) + j]! >= lcs[i * (m + 1) + j + 1]!) out.push([i++, undefined]);
    else out.push([undefined, j++]);
  }
  while (i < n) out.push([i++, undefined]);
  while (j < m) out.push([undefined, j++]);
  return out;
}

function cap(lines: string[]): string {
  if (lines.length <= MAX_TEXT_LINES) return lines.join("\n");
  return [...lines.slice(0, MAX_TEXT_LINES - 1), `… (${lines.length - MAX_TEXT_LINES + 1} more lines)`].join("\n");
}
