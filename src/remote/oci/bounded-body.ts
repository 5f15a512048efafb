// How much of what a remote sends wmb holds in memory is wmb's choice, never the remote's: a
// document (a manifest, a config, a spec, a token answer, an error body) is read up to a bound,
// and refused past it; anything that may be larger is a blob, streamed to a file (download.ts).
import { WmbError, type ErrorCode } from "../../errors.ts";

/** The largest document read into memory. wmb's own manifests and specs are a few KiB; a
 * registry's manifests are capped at 4 MiB by distribution itself. */
export const MAX_DOCUMENT_BYTES = 4 << 20;

/** A response's body, up to `limit` bytes; one that is (or says it is) longer is refused before
 * more than `limit` bytes are read. `what` names it for the sentence. */
export async function readBounded(res: Response, what: string, o: { limit?: number; code?: ErrorCode } = {}): Promise<Buffer> {
  const limit = o.limit ?? MAX_DOCUMENT_BYTES;
  const tooLarge = (claimed?: number) =>
    new WmbError(o.code ?? "INTEGRITY", `${what} is ${claimed === undefined ? "longer" : `${claimed} bytes, more`} than the ${limit} bytes it may be; nothing was admitted.`, { subject: what });
  const declared = declaredLength(res);
  if (declared !== undefined && declared > limit) {
    await cancel(res);
    throw tooLarge(declared);
  }
  if (!res.body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) throw tooLarge();
      chunks.push(value);
    }
  } catch (e) {
    await reader.cancel().catch(() => {});
    throw brokenBody(what, e);
  }
  return Buffer.concat(chunks, total);
}

/** A body that stopped coming (connection reset, timeout) is one sentence; wmb's own refusals pass. */
export function brokenBody(what: string, e: unknown): unknown {
  if (e instanceof WmbError || !(e instanceof Error)) return e;
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const why = e.name === "TimeoutError" || e.name === "AbortError" ? "timed out" : (cause?.code ?? cause?.message ?? e.message);
  return new WmbError("REMOTE", `The connection broke while reading ${what} (${why}); nothing was admitted, try again.`, { subject: what });
}

/** The body of a response whose content does not matter (a 201, a 401 before retrying): read
 * to its end when short, so the connection is reused, and cut off otherwise. */
export async function discardBody(res: Response): Promise<void> {
  await readBounded(res, "a response body", { limit: 64 << 10 }).catch(() => undefined);
}

/** An error body for the sentence that reports it: what fits the bound, or nothing. */
export async function readErrorBody(res: Response): Promise<string> {
  return (await readBounded(res, "an error body").catch(() => Buffer.alloc(0))).toString("utf8");
}

/** The Content-Length the remote declares for an unencoded body (fetch decodes gzip, after
 * which the header no longer says how many bytes the body has). */
export function declaredLength(res: Response): number | undefined {
  const encoding = res.headers.get("content-encoding");
  if (encoding && encoding !== "identity") return undefined;
  const value = res.headers.get("content-length");
  if (value === null || !/^[0-9]{1,16}$/.test(value.trim())) return undefined;
  return Number(value);
}

async function cancel(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => {});
}
