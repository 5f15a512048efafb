// A real OCI registry for tests of the OCI client: Debian's /usr/bin/docker-registry
// (distribution 2.8) on 127.0.0.1, a free port, filesystem storage in a fresh temp dir.
// Three auth modes: none; "basic" (htpasswd, bcrypt); "token" (a Bearer token server run in this
// process that signs RS256 JWTs with a throwaway key whose self-signed cert the registry trusts).
//
// Logs go to files in the temp dir, not pipes, so requests() can read them synchronously: the
// registry's access log (Apache combined format) is written to *stdout*, one line per request,
// including 401s; its stderr (logrus) has no "response completed" line for rejected requests.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { freePort, track } from "./servers.ts";
import { randomBytes, sign, X509Certificate } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export type RegistryAuth = "none" | "basic" | "token";

export interface TestRegistry {
  /** "127.0.0.1:PORT" */
  host: string;
  /** the registry's filesystem storage root (tests corrupt blobs under it: <root>/docker/registry/v2/blobs/sha256/<2 hex>/<64 hex>/data) */
  storageRoot: string;
  /** for basic and token: the one valid user's credentials; undefined for none */
  credentials?: { username: string; password: string };
  /** for token: the token server's URL ("http://127.0.0.1:PORT/token") and how many tokens it issued */
  tokenRealm?: string;
  tokensIssued(): number;
  /** requests the registry answered since it became ready (startup probes excluded), from its access
   *  log, in order; `path` is the request URI without its query string. A response body the
   *  registry sends before returning (e.g. a blob GET whose size is a multiple of 4096) can reach
   *  the client a few ms before its log line: poll (vi.waitFor) when asserting on such a request. */
  requests(): { method: string; path: string; status: number }[];
  stop(): Promise<void>;
}

const REGISTRY_BIN = "/usr/bin/docker-registry";
const SERVICE = "wmb-test-registry";
const ISSUER = "wmb-test-issuer";
const TOKEN_TTL_S = 300;
const READY_TIMEOUT_MS = 15_000;

/** true when /usr/bin/docker-registry exists (tests skip otherwise) */
export const registryInstalled: boolean = existsSync(REGISTRY_BIN);

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function startRegistry(opts: { auth?: RegistryAuth } = {}): Promise<TestRegistry> {
  const auth = opts.auth ?? "none";
  const dir = mkdtempSync(join(tmpdir(), "wmb-registry-"));
  const storageRoot = join(dir, "storage");
  mkdirSync(storageRoot);
  let child: ChildProcess | undefined;
  let tokenServer: TokenServer | undefined;
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child) await killChild(child);
    if (tokenServer) await tokenServer.close();
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    // Auth configuration (YAML; JSON strings are valid YAML scalars, so paths are quoted safely).
    let authYaml = "";
    let credentials: { username: string; password: string } | undefined;
    if (auth !== "none") credentials = { username: "tester", password: randomBytes(12).toString("hex") };
    if (auth === "basic") {
      const htpasswd = join(dir, "htpasswd");
      const { stdout } = await execFileP("htpasswd", ["-Bbn", credentials!.username, credentials!.password]);
      writeFileSync(htpasswd, stdout.trim() + "\n");
      authYaml = `auth:\n  htpasswd:\n    realm: wmb-test\n    path: ${JSON.stringify(htpasswd)}\n`;
    } else if (auth === "token") {
      const keyPath = join(dir, "key.pem");
      const certPath = join(dir, "cert.pem");
      await execFileP("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", certPath, "-days", "2", "-subj", "/CN=wmb-test-token"]);
      tokenServer = await startTokenServer(readFileSync(keyPath, "utf8"), readFileSync(certPath, "utf8"), credentials!);
      authYaml =
        `auth:\n  token:\n    realm: ${JSON.stringify(tokenServer.realm)}\n    service: ${SERVICE}\n` +
        `    issuer: ${ISSUER}\n    rootcertbundle: ${JSON.stringify(certPath)}\n`;
    }

    const outPath = join(dir, "registry.stdout.log");
    const errPath = join(dir, "registry.stderr.log");
    const configPath = join(dir, "config.yml");
    let port = 0;
    let logStart = 0;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    // Another process may grab the port between freePort() and the registry's bind: retry then.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      writeFileSync(
        configPath,
        [
          "version: 0.1",
          "log:",
          "  level: info",
          "  accesslog:",
          "    disabled: false",
          "storage:",
          "  filesystem:",
          `    rootdirectory: ${JSON.stringify(storageRoot)}`,
          "  delete:",
          "    enabled: true",
          "http:",
          `  addr: 127.0.0.1:${port}`,
          `  secret: ${randomBytes(16).toString("hex")}`,
          "",
        ].join("\n") + authYaml,
      );
      const outFd = openSync(outPath, "w");
      const errFd = openSync(errPath, "w");
      // REGISTRY_* variables override the config file; don't let the ambient environment in.
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("REGISTRY_")));
      const proc = spawn(REGISTRY_BIN, ["serve", configPath], { stdio: ["ignore", outFd, errFd], env });
      child = proc;
      closeSync(outFd);
      closeSync(errFd);
      track(proc);
      let exitedNow = false;
      proc.once("exit", () => {
        exitedNow = true;
      });
      proc.once("error", () => (exitedNow = true)); // failed to spawn: no "exit" follows

      const ready = await waitReady(port, () => exitedNow, deadline);
      if (ready) {
        logStart = statSync(outPath).size; // skip the readiness probes' log lines
        break;
      }
      const stderr = readFileSync(errPath, "utf8");
      if (exitedNow && /address already in use/.test(stderr) && attempt < 5 && Date.now() < deadline) continue;
      throw new Error(
        `docker-registry ${exitedNow ? `exited (code ${proc.exitCode}, signal ${proc.signalCode})` : `not ready after ${READY_TIMEOUT_MS} ms`}; stderr:\n${stderr}`,
      );
    }

    return {
      host: `127.0.0.1:${port}`,
      storageRoot,
      credentials,
      tokenRealm: tokenServer?.realm,
      tokensIssued: () => tokenServer?.issued ?? 0,
      requests: () => parseAccessLog(readFileSync(outPath).subarray(logStart).toString("utf8")),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Polls GET /v2/ until a registry answers 200 or 401; false if the process exits or the deadline passes. */
async function waitReady(port: number, exited: () => boolean, deadline: number): Promise<boolean> {
  while (Date.now() < deadline && !exited()) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      // The API-version header tells our registry apart from anything else that took the port.
      const isRegistry = res.headers.get("docker-distribution-api-version") === "registry/2.0";
      if (isRegistry && (res.status === 200 || res.status === 401)) return true;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  return false;
}

/** SIGTERM, then SIGKILL after 3 s; resolves once the process has exited. */
async function killChild(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(timer);
}

// Apache combined format, e.g.
// 127.0.0.1 - - [25/Nov/2026:15:07:53 +0000] "HEAD /v2/x/y/blobs/sha256:00… HTTP/1.1" 404 157 "" "curl/7.88.1"
const ACCESS_LINE = /^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) /;

function parseAccessLog(text: string): { method: string; path: string; status: number }[] {
  const out: { method: string; path: string; status: number }[] = [];
  for (const line of text.split("\n")) {
    const m = ACCESS_LINE.exec(line);
    if (m) out.push({ method: m[1]!, path: m[2]!.split("?")[0]!, status: Number(m[3]) });
  }
  return out;
}

// ---- token server ---------------------------------------------------------------------------

interface TokenServer {
  realm: string;
  issued: number;
  close(): Promise<void>;
}

interface Access {
  type: string;
  name: string;
  actions: string[];
}

/** "repository:acme/t:pull,push" -> access entry (the name may not contain ':' but the type may be "repository(plugin)"). */
function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first < 0 || last === first) return undefined;
  const actions = scope.slice(last + 1).split(",").filter(Boolean);
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions };
}

/**
 * GET /token?service=...&scope=TYPE:NAME:ACTIONS (scope repeatable or absent, space-separated
 * scopes allowed). No Authorization: an anonymous token with an empty access list. Basic with the
 * valid credentials: a token granting exactly what was asked. Anything else: 401.
 */
async function startTokenServer(keyPem: string, certPem: string, creds: { username: string; password: string }): Promise<TokenServer> {
  const x5c = [new X509Certificate(certPem).raw.toString("base64")];
  const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

  const state = { issued: 0 };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname !== "/token") return void res.writeHead(404).end();
    if (req.method !== "GET") return void res.writeHead(405, { allow: "GET" }).end();

    let subject = "";
    const authz = req.headers.authorization;
    if (authz !== undefined) {
      const m = /^Basic\s+(\S+)$/i.exec(authz);
      const decoded = m ? Buffer.from(m[1]!, "base64").toString("utf8") : "";
      if (decoded !== `${creds.username}:${creds.password}`) {
        res.writeHead(401, { "www-authenticate": 'Basic realm="wmb-test-token"', "content-type": "application/json" });
        return void res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "invalid credentials" }] }));
      }
      subject = creds.username;
    }
    const access = subject
      ? url.searchParams
          .getAll("scope")
          .flatMap((s) => s.split(" "))
          .map(parseScope)
          .filter((a): a is Access => a !== undefined)
      : [];

    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: ISSUER,
      sub: subject,
      aud: SERVICE,
      exp: now + TOKEN_TTL_S,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(16).toString("hex"),
      access,
    };
    const signingInput = `${b64url({ alg: "RS256", typ: "JWT", x5c })}.${b64url(claims)}`;
    const jwt = `${signingInput}.${sign("sha256", Buffer.from(signingInput), keyPem).toString("base64url")}`;
    state.issued++;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ token: jwt, access_token: jwt, expires_in: TOKEN_TTL_S, issued_at: new Date(now * 1000).toISOString() }));
  };

  const server: Server = createHttpServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    get issued() {
      return state.issued;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
