// The pieces of `wmb serve` that need no browser: the one URL parser, and the critical path a
// build records.
import { describe, expect, it } from "vitest";
import { parseRoute, RouteError } from "../src/web/routes.ts";
import { criticalPath } from "../src/critical-path.ts";

const refused = (path: string) => {
  try {
    parseRoute(path);
  } catch (e) {
    if (e instanceof RouteError) return e.status;
    throw e;
  }
  return 200;
};

describe("parseRoute", () => {
  it("reads labels (with or without //, slashes in packages), identities and build numbers", () => {
    expect(parseRoute("/targets/sqlite-cli:sealed")).toEqual({ kind: "page", page: "target", label: "//sqlite-cli:sealed" });
    expect(parseRoute("/api/targets/examples%2Fwordcount:sealed/why")).toEqual({ kind: "api-why", label: "//examples/wordcount:sealed" });
    expect(parseRoute("/api/targets/%2F%2Fsqlite-cli%3Awasm")).toEqual({ kind: "api-target", label: "//sqlite-cli:wasm" });
    expect(parseRoute("/builds/12/")).toEqual({ kind: "page", page: "build", id: 12 });
    expect(parseRoute(`/machines/blake3:${"a".repeat(64)}/blobs/${"b".repeat(64)}`)).toEqual({ kind: "blob", identity: `blake3:${"a".repeat(64)}`, digest: "b".repeat(64) });
  });

  it("refuses .. in any spelling, and anything that is not its grammar", () => {
    for (const p of ["/builds/..", "/targets/%2e%2e", "/targets/a%2f..%2fb:c", "/targets/examples%2F.%2Fx:y", "/assets/..%2f..%2fetc%2fpasswd", "/assets/app.js%00", "/machines/..%5c..", "/builds/1e3", "/builds/0", "/machines/blake3:ABC", `/machines/blake3:${"a".repeat(64)}/blobs/..`, "/api/targets/sqlite-cli:sealed/..", "/assets/index.html", "/%"]) {
      expect(refused(p), p).not.toBe(200);
    }
  });
});

describe("criticalPath", () => {
  it("walks back from the last action to finish through the dependency that finished last", () => {
    const path = criticalPath([
      { label: "a", startMs: 0, durationMs: 10, deps: [] },
      { label: "b", startMs: 0, durationMs: 50, deps: [] },
      { label: "c", startMs: 50, durationMs: 5, deps: ["a", "b"] },
      { label: "d", startMs: 12, durationMs: 20, deps: ["a"] },
      { label: "e", startMs: 55, durationMs: 1, deps: ["c", "d"] },
    ]);
    expect(path).toEqual(["b", "c", "e"]);
    expect(criticalPath([])).toEqual([]);
  });
});
