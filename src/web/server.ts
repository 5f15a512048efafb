// `wmb serve`: an HTTP server over the store's read API (api.ts) and the page's bundled assets.
// Every URL is parsed by routes.ts before anything is read; requests naming another host than
// the one served are refused (a page elsewhere cannot reach a loopback server through DNS
// rebinding), and nothing outside the store, the workspace's BUILD.ts and the assets is served.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { readFile } from "node:fs/promises";
import type { Store } from "../../store/store.ts";
import type { LoadedWorkspace } from "../build-file.ts";
import type { Digest } from "../digest.ts";
import { isWmbError } from "../errors.ts";
import { WebApi } from "./api.ts";
import { parseRoute, RouteError, type Route } from "./routes.ts";
import { shellHtml } from "./shell.ts";
import { webAssets } from "./assets.ts";

export interface ServeOptions {
  store: Store;
  workspace: () => Promise<LoadedWorkspace>;
  host: string;
  port: number;
}

export interface RunningServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** The page runs only its own bundled code and fetches only from this origin. Its run worker
 * (which inherits this policy) evaluates the component's module and compiles its core modules,
 * both checked against their digests first: hence the two evals. */
const CSP = "default-src 'self'; script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self'; connect-src 'self'";
const TYPES: Record<string, string> = { js: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8" };

export async function serve(opts: ServeOptions): Promise<RunningServer> {
  const api = new WebApi(opts.store, opts.workspace);
  const assets = await webAssets();
  const transpiledList = async (kernelDigest: Digest): Promise<Record<string, Digest> | undefined> => {
    const { TRANSPILER_ID } = await import("../run/transpile.ts");
    const files = await opts.store.transpiled(kernelDigest, TRANSPILER_ID);
    return files && Object.fromEntries(Object.entries(files).map(([name, f]) => [name, f.digest]));
  };
  const transpile = async (kernel: Buffer, kernelDigest: Digest): Promise<Record<string, Digest>> => {
    // A store of its own: admitting blobs holds the store lock shared until that store closes,
    // and this server would otherwise hold it as long as it runs (store gc waits for it).
    const { Store } = await import("../../store/store.ts");
    const { transpiledFiles } = await import("../machine.ts");
    const s = await Store.open(opts.store.dir);
    try {
      const { outputs } = await transpiledFiles(s, kernel, kernelDigest);
      return Object.fromEntries(Object.entries(outputs).map(([name, o]) => [name, o.digest]));
    } finally {
      s.close();
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, allowedHosts: Set<string>): Promise<void> => {
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "text/plain; charset=utf-8", "wmb serve only reads.\n");
    if (!allowedHosts.has((req.headers.host ?? "").toLowerCase())) return send(res, 421, "text/plain; charset=utf-8", "This server answers for its own address only.\n");
    const raw = req.url ?? "/";
    const q = raw.indexOf("?");
    const path = q < 0 ? raw : raw.slice(0, q);
    const query = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
    if (path === "/favicon.ico") return send(res, 204, "image/x-icon", "");
    let route: Route;
    try {
      route = parseRoute(path);
    } catch (e) {
      if (e instanceof RouteError) return sendError(res, path, e.status, e.message);
      throw e;
    }
    try {
      switch (route.kind) {
        case "page":
          return send(res, 200, "text/html; charset=utf-8", shellHtml({ mode: "served", assets: "/assets/" }, `wmb · ${route.page}`));
        case "asset": {
          const ext = route.name.slice(route.name.lastIndexOf(".") + 1);
          return send(res, 200, TYPES[ext]!, assets[route.name]!, { "cache-control": "no-cache" });
        }
        case "api-builds":
          return json(res, api.builds(query));
        case "api-build":
          return json(res, api.build(route.id));
        case "api-trace":
          return send(res, 200, "application/json", api.trace(route.id), { "content-disposition": `attachment; filename="wmb-build-${route.id}.trace.json"` });
        case "api-target":
          return json(res, api.target(route.label));
        case "api-why":
          return json(res, api.why(route.label, query));
        case "api-graph":
          return json(res, await api.graph(query));
        case "api-machines":
          return json(res, await api.machines());
        case "api-machine":
          return json(res, await api.machine(route.identity));
        case "api-run":
          return json(res, await api.runManifest(route.identity, transpiledList, transpile));
        case "blob": {
          // As stored, unchecked: the tab is what checks them (a corrupt blob is refused there,
          // and nothing runs).
          const allowed = await api.machineBlobs(route.identity, transpiledList);
          const digest = route.digest as Digest;
          const bytes = allowed.has(digest) ? await readFile(opts.store.blobPath(digest)).catch(() => undefined) : undefined;
          if (!bytes) return sendError(res, path, 404, `${route.identity} has no blob ${digest} in this store.`);
          return send(res, 200, "application/octet-stream", bytes, { "cache-control": "no-cache" });
        }
      }
    } catch (e) {
      if (e instanceof RouteError) return sendError(res, path, e.status, e.message);
      if (isWmbError(e)) return sendError(res, path, e.code === "INTEGRITY" ? 409 : 400, e.message);
      throw e;
    }
  };

  const server = createServer((req, res) => {
    handle(req, res, allowedHosts).catch((e) => {
      process.stderr.write(`wmb serve: ${(e as Error)?.stack ?? e}\n`);
      if (!res.headersSent) sendError(res, req.url ?? "/", 500, "wmb serve failed on this request; see its terminal.");
      else res.destroy();
    });
  });
  let allowedHosts = new Set<string>();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const hostPart = address.family === "IPv6" ? `[${address.address}]` : address.address;
  allowedHosts = new Set([`${hostPart}:${address.port}`, `localhost:${address.port}`, `${opts.host}:${address.port}`].map((h) => h.toLowerCase()));
  return {
    server,
    url: `http://${hostPart}:${address.port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function send(res: ServerResponse, status: number, type: string, body: string | Uint8Array, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    "content-type": type,
    "x-content-type-options": "nosniff",
    "content-security-policy": CSP,
    ...headers,
  });
  res.end(body);
}

function json(res: ServerResponse, value: unknown): void {
  send(res, 200, "application/json; charset=utf-8", JSON.stringify(value));
}

function sendError(res: ServerResponse, path: string, status: number, message: string): void {
  if (path.startsWith("/api/")) send(res, status, "application/json; charset=utf-8", JSON.stringify({ error: message }));
  else send(res, status, "text/plain; charset=utf-8", `${message}\n`);
}
