import { describe, expect, it } from "vitest";
import { canonicalBytes, canonicalize, CanonicalizationError } from "../src/formats/jcs.ts";
import { encodeKeyInputs, type ActionKeyInputs } from "../src/keys.ts";
import { SANDBOX_ENV } from "../src/sandbox.ts";

function fromIeeeHex(hex: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${hex}`));
  return view.getFloat64(0);
}

describe("RFC 8785 JCS", () => {
  it("canonicalizes the RFC's section 3.2.2 example", () => {
    // The input text of the RFC, parsed as JSON: numbers and escapes as written there.
    const input = JSON.parse(String.raw`{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }`);
    expect(canonicalize(input)).toBe(
      String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
    );
  });

  it("sorts member names by UTF-16 code units (section 3.2.3)", () => {
    const input = JSON.parse(String.raw`{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }`);
    const values = Object.values(JSON.parse(canonicalize(input)) as Record<string, string>);
    // Object.values would reorder integer-like keys; read the order from the text instead.
    const order = [...canonicalize(input).matchAll(/:"([^"]+)"/g)].map((m) => m[1]);
    expect(order).toEqual([
      "Carriage Return",
      "One",
      "Control",
      "Latin Small Letter O With Diaeresis",
      "Euro Sign",
      "Emoji: Grinning Face",
      "Hebrew Letter Dalet With Dagesh",
    ]);
    expect(values).toHaveLength(7);
    // UTF-16 order puts U+1F600 (surrogates D83D..) before U+FB33, unlike code point order.
    expect(canonicalize({ "\ufb33": 1, "\ud83d\ude00": 2 })).toBe('{"😀":2,"דּ":1}');
  });

  it("encodes the section 3.2.4 example as the RFC's UTF-8 bytes", () => {
    const bytes = canonicalBytes(JSON.parse(String.raw`{"peach":"This sorting order","péché":"is wrong according to French","pêche":"but canonicalization MUST","sin":"ignore locale"}`));
    const text = new TextDecoder().decode(bytes);
    expect(text).toBe('{"peach":"This sorting order","péché":"is wrong according to French","pêche":"but canonicalization MUST","sin":"ignore locale"}');
    // "é" is two UTF-8 bytes: c3 a9.
    const at = '{"peach":"This sorting order",'.length;
    expect(Array.from(bytes.subarray(at, at + 6))).toEqual([0x22, 0x70, 0xc3, 0xa9, 0x63, 0x68]);
    expect(bytes.length).toBe(text.length + 3); // three 2-byte characters
  });

  it("serializes numbers as in Appendix B", () => {
    const table: [string, string][] = [
      ["0000000000000000", "0"],
      ["8000000000000000", "0"],
      ["0000000000000001", "5e-324"],
      ["8000000000000001", "-5e-324"],
      ["7fefffffffffffff", "1.7976931348623157e+308"],
      ["ffefffffffffffff", "-1.7976931348623157e+308"],
      ["4340000000000000", "9007199254740992"],
      ["c340000000000000", "-9007199254740992"],
      ["4430000000000000", "295147905179352830000"],
      ["44b52d02c7e14af5", "9.999999999999997e+22"],
      ["44b52d02c7e14af6", "1e+23"],
      ["44b52d02c7e14af7", "1.0000000000000001e+23"],
      ["444b1ae4d6e2ef4e", "999999999999999700000"],
      ["444b1ae4d6e2ef4f", "999999999999999900000"],
      ["444b1ae4d6e2ef50", "1e+21"],
      ["3eb0c6f7a0b5ed8c", "9.999999999999997e-7"],
      ["3eb0c6f7a0b5ed8d", "0.000001"],
      ["41b3de4355555553", "333333333.3333332"],
      ["41b3de4355555554", "333333333.33333325"],
      ["41b3de4355555555", "333333333.3333333"],
      ["41b3de4355555556", "333333333.3333334"],
      ["41b3de4355555557", "333333333.33333343"],
      ["becbf647612f3696", "-0.0000033333333333333333"],
      ["43143ff3c1cb0959", "1424953923781206.2"],
    ];
    for (const [hex, expected] of table) expect(canonicalize(fromIeeeHex(hex)), hex).toBe(expected);
  });

  it("refuses NaN and Infinity (Appendix B)", () => {
    expect(() => canonicalize(fromIeeeHex("7fffffffffffffff"))).toThrow(/NaN/);
    expect(() => canonicalize({ a: [fromIeeeHex("7ff0000000000000")] })).toThrow(/\$\.a\[0\] is Infinity/);
  });

  it("escapes strings as the RFC does", () => {
    expect(canonicalize("\u0000\u0008\t\n\u000b\f\r\u001f \"\\/\u007f\u00e9")).toBe('"\\u0000\\b\\t\\n\\u000b\\f\\r\\u001f \\"\\\\/\u007fé"');
  });

  it("refuses values that are not I-JSON", () => {
    expect(() => canonicalize({ a: undefined })).toThrow(CanonicalizationError);
    expect(() => canonicalize([() => 1])).toThrow(/function/);
    expect(() => canonicalize(10n)).toThrow(/bigint/);
    expect(() => canonicalize(new Date(0))).toThrow(/Date, not a plain object/);
    expect(() => canonicalize(new Uint8Array(2))).toThrow(/Uint8Array/);
    expect(() => canonicalize("a\ud800b")).toThrow(/lone surrogate U\+D800 at index 1/);
    expect(() => canonicalize({ ["\udc00"]: 1 })).toThrow(/lone surrogate/);
    // eslint-disable-next-line no-sparse-arrays
    expect(() => canonicalize([1, , 3])).toThrow(/hole/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalize(cyclic)).toThrow(/cycle/);
  });

  it("accepts the same object twice when it is not a cycle, and objects without a prototype", () => {
    const shared = { x: 1 };
    const bare = Object.create(null) as Record<string, unknown>;
    bare.b = 2;
    bare.a = shared;
    expect(canonicalize({ p: shared, q: shared, r: bare })).toBe('{"p":{"x":1},"q":{"x":1},"r":{"a":{"x":1},"b":2}}');
  });

  it("does not depend on insertion order or whitespace", () => {
    const a = JSON.parse('{"b": [1, {"y": 2, "x": 1}], "a": "z"}');
    const b = JSON.parse('{"a":"z","b":[1,{"x":1,"y":2}]}');
    expect(canonicalize(a)).toBe(canonicalize(b));
    expect(canonicalize(a)).toBe('{"a":"z","b":[1,{"x":1,"y":2}]}');
  });

  it("encodes action key inputs exactly as canonicalize does (members in order, shared env encoded once)", () => {
    const key = (over: Partial<ActionKeyInputs> & Record<string, unknown>): ActionKeyInputs =>
      ({ format: 2, rule: "run@1", attrs: { cmd: "tr v V < w.txt > r.txt", outs: ["r.txt"], "é": { b: 1e21, a: [true, null, "\u2028"] } }, outputs: ["r.txt"], inputs: { "w.txt": "ab".repeat(32), "a b": "cd".repeat(32) }, executable: [], order: null, toolchain: null, env: SANDBOX_ENV as Record<string, string>, ...over }) as ActionKeyInputs;
    const variants = [key({}), key({ toolchain: "ef".repeat(32) as never }), key({ env: { ...SANDBOX_ENV, CC: "clang" } }), key({ extra: "x" }), key({ attrs: {} }), key({ executable: ["a b"], order: ["w.txt", "a b"] })];
    for (const k of variants) {
      expect(encodeKeyInputs(k)).toBe(canonicalize(k));
      expect(encodeKeyInputs(k)).toBe(canonicalize(k)); // the second time from the encoded env
    }
  });
});
