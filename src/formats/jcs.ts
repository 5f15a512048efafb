// RFC 8785 JSON Canonicalization Scheme (JCS): the one byte encoding of a JSON value that the
// seal's identity is computed over.
//
// - Object members are sorted by their names' UTF-16 code units (what Array#sort does by default).
// - Numbers use the ECMAScript Number-to-String serialization (what JSON.stringify does), so
//   1e+30, 0.002, 5e-324 and -0 -> 0 come out as the RFC demands.
// - Strings use JSON.stringify's escaping, which is the RFC's: \b \t \n \f \r \" \\ and \u00xx
//   (lowercase hex) for the other control characters, everything else as is.
// - Anything that is not I-JSON is refused instead of silently dropped or coerced: non-finite
//   numbers, undefined, functions, symbols, bigints, lone surrogates, cycles, and objects that are
//   not plain (Date, Map, typed arrays …: their JSON form depends on toJSON, not on their data).

export class CanonicalizationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CanonicalizationError";
  }
}

/** The canonical JSON text of `value`. */
export function canonicalize(value: unknown): string {
  try {
    return fast(value, 0);
  } catch (e) {
    if (e !== REFUSED) throw e;
  }
  // The careful path: names where the value is not I-JSON (or decides a deep or cyclic one).
  const parts: string[] = [];
  write(value, "$", parts, new Set());
  return parts.join("");
}

/** What `fast` throws at anything it does not take: `canonicalize` then walks `write`. */
const REFUSED = Symbol("refused");
/** Deeper than this (or a cycle) goes the careful way, which tracks ancestors. */
const FAST_DEPTH = 64;

/** The same text for ordinary values, without the careful path's bookkeeping: it runs for
 * every action key of every build (#16). */
function fast(value: unknown, depth: number): string {
  switch (typeof value) {
    case "string":
      if (!isWellFormed(value)) throw REFUSED;
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw REFUSED;
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "object":
      break;
    default:
      throw REFUSED;
  }
  if (value === null) return "null";
  if (depth > FAST_DEPTH) throw REFUSED;
  if (Array.isArray(value)) {
    let s = "[";
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) throw REFUSED;
      s += (i > 0 ? "," : "") + fast(value[i], depth + 1);
    }
    return s + "]";
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw REFUSED;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let s = "{";
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    if (!isWellFormed(k)) throw REFUSED;
    s += (i > 0 ? "," : "") + JSON.stringify(k) + ":" + fast(obj[k], depth + 1);
  }
  return s + "}";
}

/** String.prototype.isWellFormed (Node 20): no lone surrogate. */
const isWellFormed = (s: string): boolean => (s as string & { isWellFormed(): boolean }).isWellFormed();

/** The canonical JSON text of `value` as UTF-8 bytes (what a digest is computed over). */
export function canonicalBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(canonicalize(value));
}

function write(value: unknown, path: string, out: string[], ancestors: Set<object>): void {
  switch (typeof value) {
    case "string":
      out.push(serializeString(value, path));
      return;
    case "number":
      if (!Number.isFinite(value)) throw new CanonicalizationError(`${path} is ${value}, which JSON cannot represent.`);
      out.push(JSON.stringify(value));
      return;
    case "boolean":
      out.push(value ? "true" : "false");
      return;
    case "object":
      break;
    default:
      throw new CanonicalizationError(`${path} is of type ${typeof value}, which JSON cannot represent.`);
  }
  if (value === null) {
    out.push("null");
    return;
  }
  if (ancestors.has(value)) throw new CanonicalizationError(`${path} refers back to one of its ancestors (a cycle).`);
  ancestors.add(value);
  if (Array.isArray(value)) {
    out.push("[");
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out.push(",");
      if (!(i in value)) throw new CanonicalizationError(`${path}[${i}] is a hole in a sparse array.`);
      write(value[i], `${path}[${i}]`, out, ancestors);
    }
    out.push("]");
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const kind = (value as object).constructor?.name ?? "object";
      throw new CanonicalizationError(`${path} is a ${kind}, not a plain object.`);
    }
    const obj = value as Record<string, unknown>;
    // Default sort compares UTF-16 code units, exactly what RFC 8785 section 3.2.3 asks.
    const keys = Object.keys(obj).sort();
    out.push("{");
    keys.forEach((k, i) => {
      if (i > 0) out.push(",");
      const childPath = `${path}.${k}`;
      out.push(serializeString(k, childPath), ":");
      write(obj[k], childPath, out, ancestors);
    });
    out.push("}");
  }
  ancestors.delete(value);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function serializeString(s: string, path: string): string {
  const m = LONE_SURROGATE.exec(s);
  if (m) {
    const hex = m[0].charCodeAt(0).toString(16);
    throw new CanonicalizationError(`${path} holds a lone surrogate U+${hex.toUpperCase()} at index ${m.index}, which is not valid Unicode.`);
  }
  return JSON.stringify(s);
}
