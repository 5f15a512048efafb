// Every URL `wmb serve` answers, parsed in one place. Each path segment is percent-decoded once
// and then held to the grammar of what it names (a build id, a label through the one label
// parser, an identity, a BLAKE3 digest, an asset of a fixed list), so no segment can name a file:
// nothing is ever joined to a path, and `..` in any spelling is refused before a route is chosen.
import { canonicalLabel } from "../label.ts";
import { isWmbError } from "../errors.ts";

export type Route =
  | { kind: "page"; page: "builds" | "build" | "target" | "graph" | "machines" | "machine" | "run"; id?: number; label?: string; identity?: string }
  | { kind: "asset"; name: string }
  | { kind: "api-builds" }
  | { kind: "api-build"; id: number }
  | { kind: "api-trace"; id: number }
  | { kind: "api-target"; label: string }
  | { kind: "api-why"; label: string }
  | { kind: "api-graph" }
  | { kind: "api-machines" }
  | { kind: "api-machine"; identity: string }
  | { kind: "api-run"; identity: string }
  | { kind: "blob"; identity: string; digest: string };

/** A request the routes refuse: 400 (malformed, traversal) or 404 (no such route). */
export class RouteError extends Error {
  constructor(
    readonly status: 400 | 404,
    message: string,
  ) {
    super(message);
  }
}

/** The page's own files (bundled at prepare time, see bin/web-bundle.mjs). */
export const ASSETS = ["app.js", "app.css", "run-worker.js"] as const;

const BUILD_ID = /^[1-9][0-9]{0,15}$/;
const IDENTITY = /^blake3:[0-9a-f]{64}$/;
const DIGEST = /^[0-9a-f]{64}$/;

export function parseRoute(rawPath: string): Route {
  if (!rawPath.startsWith("/")) throw new RouteError(400, "A path must start with /.");
  const segments = rawPath
    .slice(1)
    .split("/")
    .map((s) => {
      let d: string;
      try {
        d = decodeURIComponent(s);
      } catch {
        throw new RouteError(400, `The path segment ${JSON.stringify(s)} is not valid percent-encoding.`);
      }
      // Refused in any spelling (%2e%2e, a%2f..%2fb, a backslash, NUL): a segment is a name (a
      // label may hold slashes), never a path.
      if (d.includes("\0") || d.includes("\\") || /(^|\/)\.\.?(\/|$)/.test(d)) {
        throw new RouteError(400, `The path segment ${JSON.stringify(s)} is not a name wmb serves.`);
      }
      return d;
    });
  if (segments.length > 1 && segments[segments.length - 1] === "") segments.pop();
  const [a, b, c, d, ...rest] = segments;
  if (rest.length) throw notFound(rawPath);
  if (a === "" && b === undefined) return { kind: "page", page: "builds" };
  if (a === "assets" && b !== undefined && c === undefined) {
    if (!(ASSETS as readonly string[]).includes(b)) throw notFound(rawPath);
    return { kind: "asset", name: b };
  }
  if (a === "builds") {
    if (b === undefined) return { kind: "page", page: "builds" };
    if (c === undefined) return { kind: "page", page: "build", id: buildId(b) };
  }
  if (a === "targets" && b !== undefined && c === undefined) return { kind: "page", page: "target", label: label(b) };
  if (a === "graph" && b === undefined) return { kind: "page", page: "graph" };
  if (a === "machines") {
    if (b === undefined) return { kind: "page", page: "machines" };
    const identity = machineIdentity(b);
    if (c === undefined) return { kind: "page", page: "machine", identity };
    if (c === "run" && d === undefined) return { kind: "page", page: "run", identity };
    if (c === "blobs" && d !== undefined) return { kind: "blob", identity, digest: blobDigest(d) };
  }
  if (a === "api") {
    if (b === "builds") {
      if (c === undefined) return { kind: "api-builds" };
      const id = buildId(c);
      if (d === undefined) return { kind: "api-build", id };
      if (d === "trace.json") return { kind: "api-trace", id };
    }
    if (b === "targets" && c !== undefined) {
      if (d === undefined) return { kind: "api-target", label: label(c) };
      if (d === "why") return { kind: "api-why", label: label(c) };
    }
    if (b === "graph" && c === undefined) return { kind: "api-graph" };
    if (b === "machines") {
      if (c === undefined) return { kind: "api-machines" };
      const identity = machineIdentity(c);
      if (d === undefined) return { kind: "api-machine", identity };
      if (d === "run.json") return { kind: "api-run", identity };
    }
  }
  throw notFound(rawPath);
}

function notFound(path: string): RouteError {
  return new RouteError(404, `Nothing is served at ${path}.`);
}

function buildId(s: string): number {
  if (!BUILD_ID.test(s)) throw new RouteError(400, `${JSON.stringify(s)} is not a build number.`);
  return Number(s);
}

function machineIdentity(s: string): string {
  if (!IDENTITY.test(s)) throw new RouteError(400, `${JSON.stringify(s)} is not a machine identity (blake3:<64 hex>).`);
  return s;
}

function blobDigest(s: string): string {
  if (!DIGEST.test(s)) throw new RouteError(400, `${JSON.stringify(s)} is not a BLAKE3 digest (64 hex).`);
  return s;
}

/** A label as the URL carries it: `//pkg:name`, or `pkg:name` without the slashes. */
export function label(s: string): string {
  try {
    return canonicalLabel(s.startsWith("//") ? s : `//${s}`);
  } catch (e) {
    if (isWmbError(e)) throw new RouteError(400, e.message);
    throw e;
  }
}
