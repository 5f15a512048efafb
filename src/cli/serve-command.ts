import { Command, Option } from "clipanion";
import * as t from "typanion";
import { WmbError } from "../errors.ts";
import { WmbCommand } from "./base.ts";

/** Loopback addresses: the only ones `wmb serve` binds without saying so. */
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

export class ServeCommand extends WmbCommand {
  static paths = [["serve"]];
  static usage = Command.Usage({
    description: "A web app over the store: builds and their timelines, targets and why, the graph, machines running in the tab",
    details: `
      Serves, from the store and workspace, a dashboard read from the store's index: every
      build (newest first, paginated) with its counts and a plot of duration and cache hit rate;
      a build's actions on a timeline with the critical path marked, and its Chrome trace; a
      target's history of digests and the \`why\` diff between any two of its keys; the target
      graph coloured by last outcome; the sealed machines and what \`run\` would grant.

      /machines/<identity>/run?args=… runs the machine in the tab: the page fetches its spec,
      kernel, rootfs and transpiled component, computes every BLAKE3 and the seal itself, and
      instantiates nothing unless all match. Its writable paths live in the browser's
      origin-private file system.

      It answers on 127.0.0.1 unless --host says otherwise (and then says so). Only GET, only
      what the store, BUILD.ts and the page's own bundled files hold. \`--export DIR\` writes
      one machine's run page and its artifacts as static files instead.
    `,
    examples: [
      ["Browse this workspace's builds", "$0 serve"],
      ["Another port", "$0 serve --port 9000"],
      ["A machine's run page as static files", "$0 serve --export site //sqlite-cli:sealed"],
    ],
  });
  port = Option.String("--port", "7878", { description: "Port (0: any free one)", validator: t.cascade(t.isNumber(), [t.isInteger(), t.isInInclusiveRange(0, 65535)]) });
  host = Option.String("--host", "127.0.0.1", { description: "Address to listen on (default loopback only)" });
  exportDir = Option.String("--export", { description: "Write MACHINE's run page and artifacts to DIR as static files, then exit" });
  machine = Option.String({ name: "machine", required: false });

  async run(): Promise<number> {
    const store = await this.store();
    if (this.exportDir !== undefined) {
      if (!this.machine) throw new WmbError("USAGE", "wmb serve --export DIR needs the machine to export: a label (//pkg:sealed) or an identity (blake3:<64 hex>).");
      const { resolveMachine } = await import("./machine-ref.ts");
      const { exportMachine } = await import("../web/export.ts");
      const m = await resolveMachine(this.machine, store, () => this.workspace(), this.context.stderr as NodeJS.WriteStream);
      const written = await exportMachine(store, m, this.exportDir);
      this.context.stdout.write(`exported ${m.spec.name} ${m.identity} to ${written.dir} (${written.files} files); serve it with any static file server and open index.html\n`);
      return 0;
    }
    if (this.machine) throw new WmbError("USAGE", `wmb serve takes a machine only with --export DIR; run \`wmb serve\` alone to browse the store.`, { subject: this.machine });
    const { serve } = await import("../web/server.ts");
    const running = await serve({
      store,
      // BUILD.ts is loaded when a page needs it (the graph): compiled once per content.
      workspace: () => this.loadWorkspace(),
      host: this.host,
      port: this.port,
    }).catch((e: NodeJS.ErrnoException) => {
      if (e?.code === "EADDRINUSE") throw new WmbError("USAGE", `Port ${this.port} on ${this.host} is in use; pick another with --port (0 picks a free one).`);
      if (e?.code === "EADDRNOTAVAIL") throw new WmbError("USAGE", `${this.host} is not an address of this host; give --host one of its addresses.`);
      throw e;
    });
    if (!LOOPBACK.test(this.host)) {
      this.context.stderr.write(`warning: serving on ${this.host}, not loopback: anyone who reaches this address can read this store's builds and machines.\n`);
    }
    this.context.stdout.write(`wmb serve: ${running.url}/ (store ${store.dir}; Ctrl-C stops)\n`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    await running.close();
    return 0;
  }
}
