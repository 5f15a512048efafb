// Mutations over a seed corpus, as fast-check arbitraries (so a failing input shrinks to the
// fewest, smallest mutations): bit flips, truncations, splices with another seed, oversized
// length fields (binary and the octal ASCII tar uses), duplicated and reordered chunks.
import fc from "fast-check";

export type Mutation =
  | { op: "flip"; at: number; bit: number }
  | { op: "byte"; at: number; value: number }
  | { op: "truncate"; at: number }
  | { op: "splice"; at: number; other: number; from: number; length: number }
  | { op: "length"; at: number; width: 2 | 4 | 8; value: "max" | "huge" | "zero" | "off-by-one" }
  | { op: "octal"; at: number }
  | { op: "duplicate"; at: number; length: number }
  | { op: "swap"; a: number; b: number; length: number }
  | { op: "insert"; at: number; bytes: Uint8Array };

/** Positions are fractions of the input's length (0..1), so a mutation applies to any input. */
const pos = fc.double({ min: 0, max: 1, noNaN: true });

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("flip" as const), at: pos, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant("byte" as const), at: pos, value: fc.constantFrom(0, 0x7f, 0x80, 0xff, 0x22, 0x5c, 0x2f, 0x2e, 0x0a, 0x30, 0x39) }),
  fc.record({ op: fc.constant("truncate" as const), at: pos }),
  fc.record({ op: fc.constant("splice" as const), at: pos, other: fc.nat(), from: pos, length: fc.integer({ min: 1, max: 4096 }) }),
  fc.record({ op: fc.constant("length" as const), at: pos, width: fc.constantFrom(2 as const, 4 as const, 8 as const), value: fc.constantFrom("max" as const, "huge" as const, "zero" as const, "off-by-one" as const) }),
  fc.record({ op: fc.constant("octal" as const), at: pos }),
  fc.record({ op: fc.constant("duplicate" as const), at: pos, length: fc.integer({ min: 1, max: 1024 }) }),
  fc.record({ op: fc.constant("swap" as const), a: pos, b: pos, length: fc.integer({ min: 1, max: 1024 }) }),
  fc.record({ op: fc.constant("insert" as const), at: pos, bytes: fc.uint8Array({ maxLength: 64 }) }),
);

export function applyMutations(seed: Uint8Array, mutations: readonly Mutation[], corpus: readonly Uint8Array[]): Uint8Array {
  let b = Buffer.from(seed);
  const at = (f: number) => Math.min(b.length, Math.floor(f * b.length));
  for (const m of mutations) {
    switch (m.op) {
      case "flip": {
        if (b.length === 0) break;
        const i = Math.min(b.length - 1, at(m.at));
        b[i] = b[i]! ^ (1 << m.bit);
        break;
      }
      case "byte": {
        if (b.length === 0) break;
        b[Math.min(b.length - 1, at(m.at))] = m.value;
        break;
      }
      case "truncate":
        b = b.subarray(0, at(m.at));
        break;
      case "splice": {
        const other = corpus.length ? Buffer.from(corpus[m.other % corpus.length]!) : b;
        const from = Math.floor(m.from * other.length);
        b = Buffer.concat([b.subarray(0, at(m.at)), other.subarray(from, from + m.length), b.subarray(at(m.at))]);
        break;
      }
      case "length": {
        const i = at(m.at);
        if (i + m.width > b.length) break;
        const max = (1n << BigInt(8 * m.width)) - 1n;
        const current = m.width === 2 ? BigInt(b.readUInt16BE(i)) : m.width === 4 ? BigInt(b.readUInt32BE(i)) : b.readBigUInt64BE(i);
        const value = m.value === "max" ? max : m.value === "huge" ? (max >> 1n) + 1n : m.value === "zero" ? 0n : current < max ? current + 1n : max;
        if (m.width === 2) b.writeUInt16BE(Number(value), i);
        else if (m.width === 4) b.writeUInt32BE(Number(value), i);
        else b.writeBigUInt64BE(value, i);
        break;
      }
      case "octal": {
        // A tar size or checksum field: 11 octal digits, the largest a ustar field holds.
        const i = at(m.at);
        b = Buffer.concat([b.subarray(0, i), Buffer.from("77777777777\0"), b.subarray(Math.min(b.length, i + 12))]);
        break;
      }
      case "duplicate": {
        const i = at(m.at);
        b = Buffer.concat([b.subarray(0, i + m.length), b.subarray(i, i + m.length), b.subarray(i + m.length)]);
        break;
      }
      case "swap": {
        const [i, j] = [at(m.a), at(m.b)].sort((x, y) => x - y) as [number, number];
        const n = Math.min(m.length, j - i, b.length - j);
        if (n <= 0) break;
        const first = Buffer.from(b.subarray(i, i + n));
        b = Buffer.concat([b.subarray(0, i), b.subarray(j, j + n), b.subarray(i + n, j), first, b.subarray(j + n)]);
        break;
      }
      case "insert":
        b = Buffer.concat([b.subarray(0, at(m.at)), m.bytes, b.subarray(at(m.at))]);
        break;
    }
  }
  return new Uint8Array(b);
}

/** Inputs made from the corpus by 1 to 8 mutations (or none: the seed as it is). */
export function mutatedCorpus(corpus: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  if (corpus.length === 0) return fc.uint8Array({ maxLength: 4096 });
  return fc
    .tuple(fc.nat({ max: corpus.length - 1 }), fc.array(mutation, { minLength: 0, maxLength: 8 }))
    .map(([i, ms]) => applyMutations(corpus[i]!, ms, corpus));
}

/** A change to a JSON document: the value at a path (each step a fraction picking a member or
 * an element) replaced, removed, or duplicated under another key. */
interface JsonEdit {
  path: number[];
  change: { to: unknown } | { remove: true } | { copyAs: string };
}

const hostileJson = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, -1, 0, 1.5, 2 ** 53, 1e308, -0, "", "x".repeat(70_000), [], {}, [[[[[]]]]], "../../etc/passwd", "\u0000", "\ud800", true),
);
const jsonEdit: fc.Arbitrary<JsonEdit> = fc.record({
  path: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 5 }),
  change: fc.oneof(fc.record({ to: hostileJson }), fc.constant({ remove: true as const }), fc.record({ copyAs: fc.constantFrom("__proto__", "constructor", "x", "") })),
});

function applyJsonEdit(doc: unknown, e: JsonEdit): unknown {
  if (e.path.length === 0 || doc === null || typeof doc !== "object") return "to" in e.change ? e.change.to : doc;
  const keys = Array.isArray(doc) ? doc.map((_, i) => i) : Object.keys(doc);
  if (keys.length === 0) return doc;
  const k = keys[Math.min(keys.length - 1, Math.floor(e.path[0]! * keys.length))]!;
  if (Array.isArray(doc)) {
    const copy = [...(doc as unknown[])];
    const i = k as number;
    if (e.path.length === 1 && "remove" in e.change) copy.splice(i, 1);
    else if (e.path.length === 1 && "copyAs" in e.change) copy.push(copy[i]);
    else copy[i] = applyJsonEdit(copy[i], { ...e, path: e.path.slice(1) });
    return copy;
  }
  const copy: Record<string, unknown> = { ...(doc as Record<string, unknown>) };
  const key = k as string;
  if (e.path.length === 1 && "remove" in e.change) delete copy[key];
  // defineProperty: "__proto__" becomes a member, as JSON.parse makes it, not the prototype.
  else if (e.path.length === 1 && "copyAs" in e.change) Object.defineProperty(copy, e.change.copyAs, { value: copy[key], enumerable: true, configurable: true, writable: true });
  else copy[key] = applyJsonEdit(copy[key], { ...e, path: e.path.slice(1) });
  return copy;
}

/** JSON documents made from the JSON seeds by 1 to 4 edits, written compact or indented. */
export function editedJson(corpus: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const docs = corpus.flatMap((c) => {
    try {
      return [JSON.parse(Buffer.from(c).toString("utf8")) as unknown];
    } catch {
      return [];
    }
  });
  if (docs.length === 0) return mutatedCorpus(corpus);
  return fc
    .tuple(fc.nat({ max: docs.length - 1 }), fc.array(jsonEdit, { minLength: 1, maxLength: 4 }), fc.boolean())
    .map(([i, edits, pretty]) => new TextEncoder().encode(JSON.stringify(edits.reduce(applyJsonEdit, docs[i]), null, pretty ? 2 : undefined)));
}

/** For JSON formats: byte mutations and structural edits, half each. */
export function jsonInputs(corpus: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.oneof(mutatedCorpus(corpus), editedJson(corpus));
}
