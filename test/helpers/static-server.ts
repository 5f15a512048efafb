// A plain static file server (what any static host does): files under a directory by path,
// nothing else. For the exported run page, which must work with no wmb process behind it.
import { createServer, type Server } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import type { AddressInfo } from "node:net";

const TYPES: Record<string, string> = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".json": "application/json" };

export async function staticServer(root: string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname));
    readFile(join(root, path.endsWith("/") ? `${path}index.html` : path)).then(
      (body) => (res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" }), res.end(body)),
      () => (res.writeHead(404), res.end()),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}
