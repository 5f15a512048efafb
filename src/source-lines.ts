// The one thing wmb needs from a source map (v3): which original line a generated position
// comes from, to name the BUILD.ts line of a declaration or an error when BUILD.ts runs compiled
// through node:vm, where Node applies no source map (build-file.ts).

/** Per generated line (0-based): [generated column, original line, …], columns ascending. */
export type LineMap = number[][];

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function decodeVlq(segment: string): number[] {
  const values: number[] = [];
  let value = 0;
  let shift = 0;
  for (const ch of segment) {
    const digit = BASE64.indexOf(ch);
    if (digit < 0) throw new Error(`not a source-map segment: ${segment}`);
    value += (digit & 31) << shift;
    if (digit & 32) {
      shift += 5;
    } else {
      values.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
  return values;
}

/** The line map of a source map's `mappings`. */
export function lineMapOf(mappings: string): LineMap {
  const map: LineMap = [];
  let originalLine = 0;
  for (const line of mappings.split(";")) {
    const entries: number[] = [];
    let column = 0; // generated columns restart on every line; the other fields run on
    for (const segment of line.split(",")) {
      if (segment === "") continue;
      const [col, , lineDelta] = decodeVlq(segment);
      column += col!;
      if (lineDelta === undefined) continue; // a segment that maps to nothing
      originalLine += lineDelta;
      entries.push(column, originalLine);
    }
    map.push(entries);
  }
  return map;
}

/** The original line (1-based) of a generated position (1-based line and column), if mapped. */
export function originalLine(map: LineMap, line: number, column: number): number | undefined {
  const entries = map[line - 1];
  if (!entries || entries.length === 0) return undefined;
  let found = entries[1]!;
  for (let i = 0; i < entries.length; i += 2) {
    if (entries[i]! > column - 1) break;
    found = entries[i + 1]!;
  }
  return found + 1;
}
