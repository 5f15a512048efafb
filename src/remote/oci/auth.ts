// Registry auth: the scheme a 401's WWW-Authenticate names, then Basic with the user's
// credentials or the Bearer token flow (one token per scope, from the realm the registry names).
// The realm is the registry's word, so it is checked before credentials go there: https, or plain
// http only from a registry reached over plain http itself, to this host (or with --plain-http);
// a realm on another host than the registry gets the credentials too, and says so once.
import { WmbError } from "../../errors.ts";
import type { Credentials } from "./credentials.ts";
import { readBounded, readErrorBody } from "./bounded-body.ts";
import { fetchFollowing, schemeAllowed, unreachable, type HttpPolicy } from "./redirects.ts";

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = p[2] ?? p[3] ?? "";
  return { scheme: m[1]!.toLowerCase(), params };
}

export function basicAuth(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}

/** Registry and realm host pairs already warned about in this process. */
const warned = new Set<string>();

export interface TokenRequest {
  registry: string;
  /** The registry's own scheme policy (redirects.ts): the realm may not be laxer. */
  policy: HttpPolicy;
  scope: string;
  credentials?: Credentials;
  timeoutMs: number;
  warn: (message: string) => void;
}

/** The Authorization value of a Bearer token for `r.scope` from the challenge's realm. */
export async function bearerToken(challenge: Challenge, r: TokenRequest): Promise<string> {
  let realm: URL;
  try {
    realm = new URL(challenge.params.realm ?? "");
  } catch {
    throw new WmbError("REMOTE", `The registry ${r.registry} names a token service that is not a URL; check the registry's auth configuration.`, { subject: r.registry });
  }
  if (!schemeAllowed(realm, r.policy)) {
    throw new WmbError(
      "REMOTE",
      `The registry ${r.registry} names the token service ${realm.protocol}//${realm.host}, which is not https; wmb sends no credentials there (plain http only from a registry on this host to this host, or with --plain-http).`,
      { subject: r.registry },
    );
  }
  const registryHost = new URL(`http://${r.registry}`).hostname;
  if (r.credentials && realm.hostname !== registryHost && !warned.has(`${r.registry} ${realm.host}`)) {
    warned.add(`${r.registry} ${realm.host}`);
    r.warn(`the registry ${r.registry} sends wmb to ${realm.host} for its tokens, so your credentials for ${r.registry} go there too.`);
  }
  if (challenge.params.service) realm.searchParams.set("service", challenge.params.service);
  realm.searchParams.set("scope", r.scope);
  const what = `the token service of ${r.registry} (${realm.origin})`;
  let res: Response;
  try {
    res = await fetchFollowing(realm, { headers: r.credentials ? { authorization: basicAuth(r.credentials) } : {}, signal: AbortSignal.timeout(r.timeoutMs) }, { policy: r.policy, what });
  } catch (e) {
    if (e instanceof WmbError) throw e;
    throw unreachable(what, e);
  }
  if (res.status === 401 || res.status === 403) {
    await readErrorBody(res);
    throw new WmbError(
      "REMOTE",
      r.credentials
        ? `The token service of ${r.registry} refused the credentials from ${r.credentials.origin} (HTTP ${res.status}, UNAUTHORIZED); log in again with \`docker login ${r.registry}\`.`
        : `The token service of ${r.registry} refused anonymous access (HTTP ${res.status}, UNAUTHORIZED); log in with \`docker login ${r.registry}\`.`,
      { subject: r.registry },
    );
  }
  if (!res.ok) {
    await readErrorBody(res);
    throw new WmbError("REMOTE", `${capitalized(what)} answered HTTP ${res.status}; try again, or check the registry's auth configuration.`, { subject: r.registry });
  }
  return `Bearer ${tokenOfAnswer(await readBounded(res, `the answer of ${what}`, { code: "REMOTE" }), r.registry)}`;
}

/** The token in a token service's answer (`token`, else `access_token`: printable ASCII, as an
 * Authorization header can carry it); a REMOTE error for anything else. */
export function tokenOfAnswer(answer: Uint8Array, registry: string): string {
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(answer).toString("utf8"));
  } catch {
    // not JSON: no token
  }
  const b = body !== null && typeof body === "object" ? (body as { token?: unknown; access_token?: unknown }) : {};
  const token = b.token ?? b.access_token;
  if (typeof token !== "string" || !/^[\x21-\x7e]+$/.test(token)) {
    throw new WmbError("REMOTE", `The token service of ${registry} answered without a usable token; check its configuration.`, { subject: registry });
  }
  return token;
}

function capitalized(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
