import { Command, Option } from "clipanion";
import { promises as fsp } from "node:fs";
import { resolve } from "node:path";
import { WmbError } from "../errors.ts";
import { WmbCommand } from "./base.ts";

export class BundleCommand extends WmbCommand {
  static paths = [["bundle"]];
  static usage = Command.Usage({
    description: "Write one tar holding a sealed machine and every blob it references, with a manifest",
    examples: [["Bundle the sqlite machine", "$0 bundle //sqlite-cli:sealed -o sqlite-cli.wmb.tar"]],
  });
  machine = Option.String({ name: "machine" });
  out = Option.String("-o,--output", { required: true, description: "Bundle file to write" });

  async run(): Promise<number> {
    const { resolveMachine } = await import("./machine-ref.ts");
    const { makeBundle } = await import("../bundle.ts");
    const store = await this.store();
    const m = await resolveMachine(this.machine, store, () => this.workspace(), this.context.stderr as NodeJS.WriteStream);
    const bytes = await makeBundle(m);
    const dest = resolve(this.out);
    await fsp.writeFile(`${dest}.tmp`, bytes);
    await fsp.rename(`${dest}.tmp`, dest);
    this.context.stdout.write(`${m.identity}\n`);
    this.context.stderr.write(`wrote ${this.out} (${bytes.length} bytes)\n`);
    return 0;
  }
}

export class StoreImportCommand extends WmbCommand {
  static paths = [["store", "import"]];
  static usage = Command.Usage({
    category: "Store",
    description: "Check a bundle's every digest and its seal, then admit it; prints the machine's identity",
    details: "Exit code 3 when anything in the bundle does not match: nothing is admitted then.",
    examples: [["Import into another store and run", "$0 store import sqlite-cli.wmb.tar --store /elsewhere"]],
  });
  file = Option.String({ name: "bundle" });

  async run(): Promise<number> {
    let bytes: Buffer;
    try {
      bytes = await fsp.readFile(resolve(this.file));
    } catch {
      throw new WmbError("USAGE", `Cannot read the bundle ${this.file}; check the path.`, { subject: this.file });
    }
    const { importBundle } = await import("../bundle.ts");
    const store = await this.store();
    const r = await importBundle(store, bytes, this.file);
    this.context.stdout.write(`${r.identity}\n`);
    this.context.stderr.write(`imported ${r.blobs} blobs into ${store.dir}\n`);
    return 0;
  }
}
