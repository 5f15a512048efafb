// BLAKE3 as the store names blobs: the official empty-input test vector pins both the native
// implementation and the pure-JS reference, so a swapped library cannot silently rename blobs.
import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashBytes, hashBytesReference, hashFile, hashImplementation } from "../src/digest.ts";

const EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

describe("BLAKE3", () => {
  it("matches the official test vector for empty input, in bytes, files and the reference", async () => {
    expect(hashImplementation()).toBe("native"); // the fast path is the one in use here
    expect(hashBytes(new Uint8Array(0))).toBe(EMPTY);
    expect(hashBytes("")).toBe(EMPTY);
    expect(hashBytesReference(new Uint8Array(0))).toBe(EMPTY);
    const f = join(mkdtempSync(join(tmpdir(), "wmb-digest-")), "empty");
    writeFileSync(f, "");
    expect(await hashFile(f)).toEqual({ digest: EMPTY, size: 0 });
  });

  it("hashes a string as its UTF-8 bytes (keys are strings; the native module takes them as is)", () => {
    for (const text of ["abc", "h\u00e9llo \u2713 \u{1d11e}", "lone \ud800 surrogate", "x".repeat(100_000)]) {
      expect(hashBytes(text)).toBe(hashBytesReference(Buffer.from(text, "utf8")));
    }
  });

  it("gives the same digest across the 1 MiB read-chunk boundary of hashFile", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wmb-digest-"));
    for (const n of [(1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 1024]) {
      const data = Buffer.alloc(n, 0).map((_, i) => i % 251);
      const f = join(dir, `f${n}`);
      writeFileSync(f, data);
      expect((await hashFile(f)).digest).toBe(hashBytesReference(data));
    }
  });
});
