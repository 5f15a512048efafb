// fetch: an npm package tarball, from the registry this machine's npm is configured with,
// checked against the SRI integrity the registry publishes. The key is the attributes
// (name, version, integrity), so a cached fetch never touches the network again.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import { WmbError } from "../src/errors.ts";
import { defineRule, type CommonAttrs } from "./rule.ts";

export interface FetchAttrs extends CommonAttrs {
  /** "name@version", e.g. "sqlite3@6.0.1" or "@bytecodealliance/jco@1.35.0". */
  package: string;
  /** SRI string as `npm view NAME@VERSION dist.integrity` prints it ("sha512-…"). */
  integrity: string;
  /** Output file name; default "<basename>-<version>.tgz". */
  out?: string;
}

export interface PackageSpec {
  /** Full name, with its scope if any ("@bytecodealliance/jco"). */
  name: string;
  /** Name without the scope ("jco"): the tarball is named after it. */
  basename: string;
  version: string;
}

export function parsePackageSpec(spec: string): PackageSpec {
  const at = spec.lastIndexOf("@");
  const name = at > 0 ? spec.slice(0, at) : "";
  const version = at > 0 ? spec.slice(at + 1) : "";
  const nameOk = /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/i.test(name);
  if (!nameOk || !/^\d+\.\d+\.\d+([-+][\w.+-]*)?$/.test(version)) {
    throw new Error(`fetch: package "${spec}" must be "name@version" with an exact version, e.g. "sqlite3@6.0.1"`);
  }
  return { name, basename: name.slice(name.lastIndexOf("/") + 1), version };
}

function defaultOut(a: FetchAttrs): string {
  const p = parsePackageSpec(a.package);
  return `${p.basename}-${p.version}.tgz`;
}

let registryUrl: Promise<string> | undefined;

/** The registry npm uses here: $npm_config_registry (set when run by npm), else `npm config get registry`. */
export function npmRegistry(): Promise<string> {
  registryUrl ??= new Promise<string>((resolve, reject) => {
    const fromEnv = process.env.npm_config_registry;
    if (fromEnv) return resolve(fromEnv);
    // The host environment on purpose: the user's .npmrc decides the registry. The bytes
    // are checked against the integrity, so the registry does not enter the key.
    execFile("npm", ["config", "get", "registry"], { env: process.env, timeout: 30_000 }, (err, stdout) => {
      const url = stdout?.trim();
      if (err || !url || !/^https?:\/\//.test(url)) {
        registryUrl = undefined;
        return reject(new Error(`fetch: cannot tell which registry npm uses (\`npm config get registry\` failed${err ? `: ${err.message}` : ""}); set npm_config_registry`));
      }
      resolve(url);
    });
  });
  return registryUrl;
}

/** Parse an SRI string; returns the strongest algorithm's entry. */
export function parseIntegrity(sri: string): { algorithm: "sha512" | "sha384" | "sha256"; base64: string } {
  const rank = { sha256: 1, sha384: 2, sha512: 3 } as const;
  let best: { algorithm: keyof typeof rank; base64: string } | undefined;
  for (const part of sri.trim().split(/\s+/)) {
    const m = /^(sha256|sha384|sha512)-([A-Za-z0-9+/]+={0,2})(\?.*)?$/.exec(part);
    if (m && (!best || rank[m[1] as keyof typeof rank] > rank[best.algorithm])) best = { algorithm: m[1] as keyof typeof rank, base64: m[2]! };
  }
  if (!best) throw new Error(`fetch: integrity "${sri}" is not an SRI hash like "sha512-…" (see \`npm view NAME@VERSION dist.integrity\`)`);
  return best;
}

export function integrityOf(bytes: Uint8Array, algorithm: "sha512" | "sha384" | "sha256" = "sha512"): string {
  return `${algorithm}-${createHash(algorithm).update(bytes).digest("base64")}`;
}

async function get(url: string, signal: AbortSignal): Promise<Response> {
  try {
    return await fetch(url, { signal, redirect: "follow" });
  } catch (e) {
    if (signal.aborted) throw e;
    throw new Error(`fetch: GET ${url} failed: ${(e as Error).cause ?? (e as Error).message}`);
  }
}

/** The tarball's URL: the conventional path, else the packument's dist.tarball. */
async function download(p: PackageSpec, registry: string, signal: AbortSignal): Promise<Uint8Array> {
  const base = registry.replace(/\/+$/, "");
  const direct = `${base}/${p.name}/-/${p.basename}-${p.version}.tgz`;
  let res = await get(direct, signal);
  if (res.status === 404) {
    await res.body?.cancel();
    const packumentUrl = `${base}/${p.name.replace("/", "%2f")}`;
    const doc = await get(packumentUrl, signal);
    if (!doc.ok) throw new Error(`fetch: ${p.name} not found in ${base} (HTTP ${doc.status})`);
    const tarball = ((await doc.json()) as { versions?: Record<string, { dist?: { tarball?: string } }> }).versions?.[p.version]?.dist?.tarball;
    if (!tarball) throw new Error(`fetch: ${p.name}@${p.version} is not published in ${base}`);
    res = await get(tarball, signal);
  }
  if (!res.ok) throw new Error(`fetch: GET ${res.url || direct} answered HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

export const fetchPackage = defineRule<FetchAttrs>({
  name: "fetch",
  version: 1,
  network: true,
  attrTypes: { package: "string", integrity: "string", out: "string?" },
  outputs: (a) => [a.out ?? defaultOut(a)],
  async run(ctx) {
    const spec = parsePackageSpec(ctx.attrs.package);
    const expected = parseIntegrity(ctx.attrs.integrity);
    const registry = await npmRegistry();
    ctx.log(`fetching ${ctx.attrs.package}`);
    const bytes = await download(spec, registry, ctx.signal);
    const actual = integrityOf(bytes, expected.algorithm);
    if (actual !== `${expected.algorithm}-${expected.base64}`) {
      throw new WmbError(
        "INTEGRITY",
        `${ctx.label}: ${ctx.attrs.package} from ${registry} does not match its integrity: expected ${expected.algorithm}-${expected.base64}, got ${actual}. Check the integrity with \`npm view ${ctx.attrs.package} dist.integrity\`.`,
        { subject: ctx.label },
      );
    }
    const dest = join(ctx.dir, ctx.outputs[0]!);
    await fsp.writeFile(dest, bytes, { mode: 0o644 });
  },
});
