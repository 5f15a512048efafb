// Registry credentials the way docker, skopeo and oras find them: $DOCKER_CONFIG/config.json
// or ~/.docker/config.json, its `auths` (base64 user:password, or username/password) and its
// credential helpers (`credHelpers` per registry, `credsStore` for all), run as
// `docker-credential-<name> get` with the registry on stdin. Secrets are returned to the
// caller and never written anywhere else.
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { WmbError } from "../../errors.ts";
import { quotedValue } from "../../terminal-text.ts";

export interface Credentials {
  username: string;
  password: string;
  /** Where they came from, for messages (never the secret itself). */
  origin: string;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG ?? join(homedir(), ".docker"), "config.json");
}

/** The credentials for `registry` (host[:port]), or undefined for anonymous access. */
export async function credentialsFor(registry: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  const file = dockerConfigPath(env);
  if (!existsSync(file)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new WmbError("USAGE", `${file} is not valid JSON (${(e as Error).message.slice(0, 200)}); fix it or point DOCKER_CONFIG elsewhere.`, { subject: file });
  }
  const config = checkedConfig(parsed, file);
  const helper = config.credHelpers?.[registry] ?? config.credsStore;
  const entry = Object.entries(config.auths ?? {}).find(([k]) => k === registry || k.replace(/^https?:\/\//, "").replace(/\/.*$/, "") === registry)?.[1];
  if (entry) {
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon < 0) throw new WmbError("USAGE", `${file}: auths["${registry}"].auth is not base64 of user:password; log in again.`, { subject: file });
      return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), origin: file };
    }
    if (entry.username && entry.password) return { username: entry.username, password: entry.password, origin: file };
  }
  if (helper) return fromHelper(helper, registry, env);
  return undefined;
}

/** The config's shape, as docker writes it (fuzzing found that `null`, or an `auth` that is a
 * number, reached Buffer.from): whatever it holds beyond these keys is not read. */
function checkedConfig(v: unknown, file: string): DockerConfig {
  const bad = (what: string) => new WmbError("USAGE", `${file}: ${what}; fix it (docker login writes it) or point DOCKER_CONFIG elsewhere.`, { subject: file });
  const isObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === "object" && !Array.isArray(x);
  if (!isObject(v)) throw bad("it is not a JSON object");
  // A helper name is a word: one with a slash would run `docker-credential-../x` from the cwd.
  const helperName = (s: unknown) => typeof s === "string" && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(s);
  const strings = (x: unknown) => isObject(x) && Object.values(x).every(helperName);
  if (v.auths !== undefined) {
    if (!isObject(v.auths)) throw bad(`"auths" is not an object`);
    for (const [host, e] of Object.entries(v.auths)) {
      const fields = isObject(e) ? ["auth", "username", "password", "identitytoken"].map((k) => e[k]) : [0];
      if (!fields.every((f) => f === undefined || typeof f === "string")) throw bad(`auths[${quotedValue(host, 60)}] must be an object of strings (auth, username, password)`);
    }
  }
  if (v.credHelpers !== undefined && !strings(v.credHelpers)) throw bad(`"credHelpers" must map registries to helper names (letters, digits, . _ -)`);
  if (v.credsStore !== undefined && !helperName(v.credsStore)) throw bad(`"credsStore" must be a helper name (letters, digits, . _ -)`);
  return v as DockerConfig;
}

function fromHelper(name: string, registry: string, env: NodeJS.ProcessEnv): Promise<Credentials | undefined> {
  const program = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = execFile(program, ["get"], { env, timeout: 30_000, maxBuffer: 1 << 20 }, (err, stdout) => {
      if (err) {
        // A helper that knows no credentials for this registry says so and exits non-zero.
        if (/credentials not found/i.test(String(stdout)) || (err as { code?: unknown }).code === 1) return resolve(undefined);
        return reject(new WmbError("USAGE", `The credential helper ${program} failed for ${registry} (${(err as Error).message.split("\n")[0]}); check that it is installed and working.`, { subject: registry }));
      }
      try {
        const r = JSON.parse(stdout) as { Username?: string; Secret?: string };
        if (!r.Secret) return resolve(undefined);
        resolve({ username: r.Username ?? "", password: r.Secret, origin: program });
      } catch {
        reject(new WmbError("USAGE", `The credential helper ${program} printed something that is not JSON for ${registry}; check it.`, { subject: registry }));
      }
    });
    child.stdin?.end(registry);
  });
}
