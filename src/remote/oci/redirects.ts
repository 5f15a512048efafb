// Redirects are followed here, not by fetch (which follows twenty, and from https to plain http):
// at most MAX_REDIRECTS, only where the caller's scheme policy allows, and an Authorization
// header never reaches another origin (a blob GET sent on to a CDN arrives there without it).
import { WmbError } from "../../errors.ts";
import { isLoopback } from "./reference.ts";

export const MAX_REDIRECTS = 5;

/** Where plain http may be used: nowhere (an https source, an https registry and what it names),
 * only to this host (a loopback registry), or anywhere (--plain-http). */
export type HttpPolicy = "never" | "loopback" | "any";

/** The policy of a registry reached as wmb reaches it (RegistryClient.base). */
export function registryHttpPolicy(registry: string, plainHttp: boolean | undefined): HttpPolicy {
  return plainHttp ? "any" : isLoopback(registry) ? "loopback" : "never";
}

/** Whether `url` may be requested under `policy`: https always, plain http as the policy says. */
export function schemeAllowed(url: URL, policy: HttpPolicy): boolean {
  if (url.protocol === "https:") return true;
  if (url.protocol !== "http:") return false;
  return policy === "any" || (policy === "loopback" && isLoopback(url.host));
}

const REDIRECT = new Set([301, 302, 303, 307, 308]);

/** fetch, following a GET's or HEAD's redirects under `policy`; `what` names the request for the
 * sentence that refuses one. Any other method gets its 3xx back as it came. */
export async function fetchFollowing(url: string | URL, init: Omit<RequestInit, "headers"> & { headers?: Record<string, string> }, o: { policy: HttpPolicy; what: string }): Promise<Response> {
  let target = new URL(url);
  let headers = init.headers ?? {};
  const method = init.method ?? "GET";
  for (let hops = 0; ; hops++) {
    const res = await fetch(target, { ...init, headers, redirect: "manual" });
    const location = res.headers.get("location");
    if (!REDIRECT.has(res.status) || !location || (method !== "GET" && method !== "HEAD")) return res;
    await res.body?.cancel().catch(() => {});
    if (hops === MAX_REDIRECTS) throw new WmbError("REMOTE", `${o.what} was redirected more than ${MAX_REDIRECTS} times; check the address.`, { subject: o.what });
    let next: URL;
    try {
      next = new URL(location, target);
    } catch {
      throw new WmbError("REMOTE", `${o.what} was redirected to a Location that is not a URL; check the address.`, { subject: o.what });
    }
    if (!schemeAllowed(next, o.policy)) {
      const allowed = o.policy === "never" ? "https" : "https or plain http to this host (--plain-http allows any)";
      throw new WmbError("REMOTE", `${o.what} was redirected to ${next.protocol}//${next.host}, and wmb follows a redirect only to ${allowed}; nothing was fetched from there.`, { subject: o.what });
    }
    if (next.origin !== target.origin) headers = withoutAuthorization(headers);
    target = next;
  }
}

function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== "authorization"));
}

/** A request that got no answer (refused, reset, timed out), as one sentence. */
export function unreachable(what: string, e: unknown): WmbError {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const why = (e as Error).name === "TimeoutError" ? "timed out" : (cause?.code ?? cause?.message ?? (e as Error).message);
  return new WmbError("REMOTE", `Cannot reach ${what} (${why}); check that it is running and the address is right.`, { subject: what });
}
