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
  let config: DockerConfig;
  try {
    config = JSON.parse(readFileSync(file, "utf8")) as DockerConfig;
  } catch (e) {
    throw new WmbError("USAGE", `${file} is not valid JSON (${(e as Error).message}); fix it or point DOCKER_CONFIG elsewhere.`, { subject: file });
  }
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
