// wmb push / wmb pull: sealed machines in OCI registries (src/remote/).
import { Command, Option } from "clipanion";
import { WmbCommand } from "./base.ts";

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

      Credentials come from the docker config ($DOCKER_CONFIG or ~/.docker/config.json: auths,
      credHelpers, credsStore). HTTPS unless the registry is on this host or --plain-http.
    `,
    examples: [["Push the sqlite machine", "$0 push //sqlite-cli:sealed oci://127.0.0.1:5000/acme/sqlite-cli:3.52.0"]],
  });
  machine = Option.String({ name: "machine" });
  target = Option.String({ name: "oci-reference" });
  plainHttp = Option.Boolean("--plain-http", false, { description: PLAIN_HTTP });
  asJson = Option.Boolean("--json", false, { description: "Print a JSON report on stdout" });

  async run(): Promise<number> {
    const { resolveMachine } = await import("./machine-ref.ts");
    const { pushMachine } = await import("../remote/oci-machine.ts");
    const { parseOciReference } = await import("../remote/oci/reference.ts");
    const ref = parseOciReference(this.target);
    const store = await this.store();
    const m = await resolveMachine(this.machine, store, () => this.workspace(), this.context.stderr as NodeJS.WriteStream);
    const r = await pushMachine(store, m, ref, { plainHttp: this.plainHttp });
    if (this.asJson) {
      this.json({ identity: r.identity, reference: r.reference, index: r.index, tags: r.tags, blobs: r.blobs, uploaded: r.uploaded, uploaded_bytes: r.uploadedBytes });
      return 0;
    }
    this.context.stdout.write(`${r.identity}\n`);
    this.context.stderr.write(`pushed ${r.reference} (index ${r.index}, also tagged ${r.tags[1]}): uploaded ${r.uploaded} of ${r.blobs} blobs, ${r.uploadedBytes} bytes\n`);
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
    `,
    examples: [
      ["Pull by tag", "$0 pull oci://127.0.0.1:5000/acme/sqlite-cli:3.52.0"],
      ["Pull by identity", "$0 pull oci://127.0.0.1:5000/acme/sqlite-cli@blake3:<64 hex>"],
    ],
  });
  source = Option.String({ name: "oci-reference" });
  plainHttp = Option.Boolean("--plain-http", false, { description: PLAIN_HTTP });
  asJson = Option.Boolean("--json", false, { description: "Print a JSON report on stdout" });

  async run(): Promise<number> {
    const { pullMachine } = await import("../remote/oci-machine.ts");
    const { parseOciReference } = await import("../remote/oci/reference.ts");
    const ref = parseOciReference(this.source);
    const store = await this.store();
    const r = await pullMachine(store, ref, { plainHttp: this.plainHttp });
    if (this.asJson) {
      this.json({ identity: r.identity, reference: r.reference, index: r.index, fetched: r.fetched, fetched_bytes: r.fetchedBytes, cached: r.cached });
      return 0;
    }
    this.context.stdout.write(`${r.identity}\n`);
    this.context.stderr.write(r.cached ? `already in ${store.dir}\n` : `pulled ${r.reference} into ${store.dir}: ${r.fetched} blobs, ${r.fetchedBytes} bytes, every digest and the seal verified\n`);
    return 0;
  }
}
