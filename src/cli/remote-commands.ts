// wmb push / wmb pull: sealed machines in OCI registries (src/remote/).
import { Command, Option } from "clipanion";
import { readWorkspaceConfig } from "../workspace-config.ts";
import { WmbCommand } from "./base.ts";
import { allowUnsignedOption, machinePolicyFor, requireRebuildsOption, signingKeyOption, trustedKeyOption, trustForCommand } from "./trust-options.ts";

const PLAIN_HTTP = "Talk plain HTTP to a registry that is not on this host (loopback registries always are)";

export class PushCommand extends WmbCommand {
  static paths = [["push"]];
  static usage = Command.Usage({
    category: "Remote",
    description: "Push a sealed machine to an OCI registry; prints its identity",
    details: `
      The machine (a label, built first; a sealed spec file; or an identity in the store) becomes
      an OCI image index of two manifests: the component as a plain wasm artifact and the machine
      (the sealed spec as config, the rootfs as its layer). Only blobs the registry lacks are
      uploaded. The index is tagged with the given tag and with blake3-<identity>, so
      oci://…@blake3:<identity> resolves. The same machine gives the same digests from any host.

      With a signing key (--signing-key, WMB_SIGNING_KEY or wmb.json signing_key) the index gets
      two referrers: a signature over the machine's identity and index digest, and, for a label
      built here, its SLSA provenance (label, BUILD.ts, every source, toolchain, wmb version,
      each action's sandbox), both DSSE envelopes (docs/TRUST.md).

      Credentials come from the docker config ($DOCKER_CONFIG or ~/.docker/config.json: auths,
      credHelpers, credsStore). HTTPS unless the registry is on this host or --plain-http.
    `,
    examples: [
      ["Push the sqlite machine", "$0 push //sqlite-cli:sealed oci://127.0.0.1:5000/acme/sqlite-cli:3.52.0"],
      ["Push and sign it", "$0 push //sqlite-cli:sealed oci://127.0.0.1:5000/acme/sqlite-cli:3.52.0 --signing-key ~/.config/wmb/keys/ci.secret"],
    ],
  });
  machine = Option.String({ name: "machine" });
  target = Option.String({ name: "oci-reference" });
  plainHttp = Option.Boolean("--plain-http", false, { description: PLAIN_HTTP });
  signingKey = signingKeyOption();
  asJson = Option.Boolean("--json", false, { description: "Print a JSON report on stdout" });

  async run(): Promise<number> {
    const { resolveMachine } = await import("./machine-ref.ts");
    const { pushMachine } = await import("../remote/oci-machine.ts");
    const { parseOciReference } = await import("../remote/oci/reference.ts");
    const ref = parseOciReference(this.target);
    // Read before anything is built or pushed: a key with the wrong mode stops the push at once.
    const { signer } = await trustForCommand(this, workspaceOf(() => this.workspace()), { sign: true });
    const store = await this.store();
    const m = await resolveMachine(this.machine, store, () => this.workspace(), this.context.stderr as NodeJS.WriteStream);
    const { machineProvenance } = await import("../remote/machine-provenance.ts");
    const built = m.built;
    const r = await pushMachine(store, m, ref, { plainHttp: this.plainHttp, signer, provenance: built && ((subjects) => machineProvenance(store, built, subjects)) });
    if (this.asJson) {
      this.json({ identity: r.identity, reference: r.reference, index: r.index, tags: r.tags, blobs: r.blobs, uploaded: r.uploaded, uploaded_bytes: r.uploadedBytes, signed_by: signer?.name, signature: r.signature, provenance: r.provenance });
      return 0;
    }
    this.context.stdout.write(`${r.identity}\n`);
    const signed = signer ? `; signed by ${signer.name}${r.provenance ? ", with provenance" : " (no provenance: it was not built here from a label)"}` : "";
    this.context.stderr.write(`pushed ${r.reference} (index ${r.index}, also tagged ${r.tags[1]}): uploaded ${r.uploaded} of ${r.blobs} blobs, ${r.uploadedBytes} bytes${signed}\n`);
    return 0;
  }
}

export class PullCommand extends WmbCommand {
  static paths = [["pull"]];
  static usage = Command.Usage({
    category: "Remote",
    description: "Pull a sealed machine from an OCI registry into the store; prints its identity",
    details: `
      Every blob is checked against the registry's sha256 and the spec's BLAKE3, and the spec
      against its seal, before anything is admitted (exit 3 otherwise, and nothing is). A machine
      the store holds already is not fetched again. The store records where it came from (an
      oci source, shown by inspect).

      With trusted keys (--trusted-key, WMB_TRUSTED_KEYS or wmb.json trusted_keys), a machine no
      trusted key signed for exactly this identity and index is refused (exit 3) before any blob
      is fetched, unless --allow-unsigned; --require-rebuilds N also asks for N distinct trusted
      rebuilders besides its signers.
    `,
    examples: [
      ["Pull by tag", "$0 pull oci://127.0.0.1:5000/acme/sqlite-cli:3.52.0"],
      ["Pull by identity", "$0 pull oci://127.0.0.1:5000/acme/sqlite-cli@blake3:<64 hex>"],
    ],
  });
  source = Option.String({ name: "oci-reference" });
  plainHttp = Option.Boolean("--plain-http", false, { description: PLAIN_HTTP });
  trustedKeys = trustedKeyOption();
  allowUnsigned = allowUnsignedOption();
  requireRebuilds = requireRebuildsOption();
  asJson = Option.Boolean("--json", false, { description: "Print a JSON report on stdout" });

  async run(): Promise<number> {
    const { pullMachine } = await import("../remote/oci-machine.ts");
    const { parseOciReference } = await import("../remote/oci/reference.ts");
    const ref = parseOciReference(this.source);
    const policy = await machinePolicyFor(this, () => this.workspace(), (m) => this.context.stderr.write(`warning: ${m}\n`));
    const store = await this.store();
    const r = await pullMachine(store, ref, { plainHttp: this.plainHttp, policy });
    if (this.asJson) {
      this.json({ identity: r.identity, reference: r.reference, index: r.index, fetched: r.fetched, fetched_bytes: r.fetchedBytes, cached: r.cached, signed_by: r.trust?.signers, rebuilt_by: r.trust?.rebuilders });
      return 0;
    }
    this.context.stdout.write(`${r.identity}\n`);
    const trust = r.trust ? `; signed by ${r.trust.signers.join(", ") || "no trusted key"}${r.trust.rebuilders.length ? `, rebuilt by ${r.trust.rebuilders.join(", ")}` : ""}` : "";
    this.context.stderr.write(r.cached ? `already in ${store.dir}${trust}\n` : `pulled ${r.reference} into ${store.dir}: ${r.fetched} blobs, ${r.fetchedBytes} bytes, every digest and the seal verified${trust}\n`);
    return 0;
  }
}

/** The workspace and its wmb.json, when the command runs in one (a push of an oci machine or a
 * spec file needs none). */
function workspaceOf(workspace: () => string): { root: string; config: import("../workspace-config.ts").WorkspaceConfig } | undefined {
  let root: string;
  try {
    root = workspace();
  } catch {
    return undefined;
  }
  return { root, config: readWorkspaceConfig(root) };
}
