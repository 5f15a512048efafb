// `oci://<registry>/<repository>[:<tag>][@<digest>]`: where a machine lives in an OCI registry.
// The digest is the index's `sha256:` or the machine's identity `blake3:` (resolved through the
// tag wmb derives from it, see identityTag).
import { WmbError } from "../../errors.ts";

export interface OciReference {
  /** host[:port] */
  registry: string;
  repository: string;
  tag?: string;
  /** "sha256:<64 hex>" (an index) or "blake3:<64 hex>" (a machine identity). */
  digest?: string;
}

const SCHEME = "oci://";
// The distribution spec's grammar: path components of lowercase alphanumerics joined by
// separators, tags of up to 128 word characters, dots and dashes.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^(sha256|blake3):[0-9a-f]{64}$/;
const REGISTRY = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::[0-9]{1,5})?$/;

export function isOciReference(ref: string): boolean {
  return ref.startsWith(SCHEME);
}

/** `repository: true` parses a repository alone (a remote cache: oci://<registry>/<repository>). */
export function parseOciReference(ref: string, o: { repository?: boolean } = {}): OciReference {
  const form = o.repository ? "oci://<registry>/<repository>" : "oci://<registry>/<repository>[:<tag>][@sha256:<hex>|@blake3:<hex>]";
  const bad = (why: string): never => {
    throw new WmbError("USAGE", `${ref} is not an OCI ${o.repository ? "repository" : "reference"}: ${why}; write ${form}.`, { subject: ref });
  };
  if (!isOciReference(ref)) bad(`it does not start with ${SCHEME}`);
  let rest = ref.slice(SCHEME.length).replace(/\/+$/, "");
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) bad(`"${digest}" is not sha256: or blake3: and 64 lowercase hex digits`);
  }
  const slash = rest.indexOf("/");
  if (slash <= 0) bad("it names no repository");
  const registry = rest.slice(0, slash);
  let repository = rest.slice(slash + 1);
  if (!REGISTRY.test(registry)) bad(`"${registry}" is not a registry host[:port]`);
  let tag: string | undefined;
  const colon = repository.lastIndexOf(":");
  if (colon >= 0) {
    tag = repository.slice(colon + 1);
    repository = repository.slice(0, colon);
    if (!TAG.test(tag)) bad(`"${tag}" is not a valid tag`);
  }
  if (!repository.split("/").every((c) => COMPONENT.test(c))) bad(`"${repository}" is not a valid repository name (lowercase letters, digits, and . _ - between them)`);
  if (o.repository && (tag || digest)) bad("a repository takes no tag or digest");
  if (!o.repository && !tag && !digest) bad("it has neither a tag nor a digest");
  return { registry, repository, tag, digest };
}

export function formatOciReference(r: OciReference): string {
  return `${SCHEME}${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ""}${r.digest ? `@${r.digest}` : ""}`;
}

/** The tag every push adds so that `@blake3:<identity>` resolves on any registry. */
export function identityTag(identity: string): string {
  return identity.replace(/^blake3:/, "blake3-");
}

/** Plain HTTP only to this host itself: anything else needs HTTPS or an explicit --plain-http. */
export function isLoopback(registry: string): boolean {
  const host = registry.replace(/:[0-9]+$/, "").replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.[0-9]+\.[0-9]+\.[0-9]+$/.test(host);
}

/** An `oci` source of a spec's artifact, `<registry>/<repository>@sha256:<64 hex>`, by the same
 * grammar as every reference (a spec's sources are outside its seal: anyone may have written them). */
export function parseOciSource(source: string): OciReference & { digest: string } {
  const ref = parseOciReference(`${SCHEME}${source}`);
  if (ref.tag || !ref.digest?.startsWith("sha256:")) {
    throw new WmbError("USAGE", `${source} is not an oci source: write <registry>/<repository>@sha256:<64 hex>.`, { subject: source });
  }
  return { ...ref, digest: ref.digest };
}

export function isOciSource(source: string): boolean {
  try {
    parseOciSource(source);
    return true;
  } catch {
    return false;
  }
}
