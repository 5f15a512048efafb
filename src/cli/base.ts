// What every command shares: --store, --workspace, and turning a WmbError into one
// sentence on stderr and its exit code (internal errors keep their stack).
import { Command, Option } from "clipanion";
import { isWmbError } from "../errors.ts";
import { buildFileCache, findWorkspaceRoot } from "../workspace-root.ts";
import type { LoadedWorkspace } from "../build-file.ts";
import type { Store } from "../../store/store.ts";
import { defaultStoreDir } from "../../store/store-dir.ts";
import { resolve } from "node:path";
import { span, startTrace, traced, writeTrace } from "../trace.ts";
import { terminalText } from "../terminal-text.ts";

export abstract class WmbCommand extends Command {
  storeDir = Option.String("--store", { description: "Store directory (default: $WMB_STORE or <workspace>/.wmb)" });
  workspaceDir = Option.String("--workspace", { description: "Workspace root (default: the nearest directory with BUILD.ts)" });
  profile = Option.String("--profile", { description: "Write a Chrome trace-event JSON of where the time went (or WMB_TRACE=FILE)" });

  private openStores: Store[] = [];

  workspace(): string {
    return this.workspaceDir ? resolve(this.workspaceDir) : findWorkspaceRoot(process.cwd());
  }

  /** Where the store is; needs no workspace when --store or WMB_STORE says. */
  storePath(): string {
    return this.storeDir ? resolve(this.storeDir) : defaultStoreDir(() => this.workspace());
  }

  async store(): Promise<Store> {
    // Loaded on first use: --help, --version and queries of BUILD.ts never load SQLite.
    const s = await traced("open the store", "store", async () => (await import("../../store/store.ts")).Store.open(this.storePath()));
    this.openStores.push(s);
    return s;
  }

  /** BUILD.ts's targets, with BUILD.ts compiled once per content under the store. */
  async loadWorkspace(): Promise<LoadedWorkspace> {
    const { loadWorkspace } = await import("../build-file.ts");
    return loadWorkspace(this.workspace(), buildFileCache(this.storePath()));
  }

  abstract run(): Promise<number>;

  async execute(): Promise<number> {
    const profile = this.profile ?? process.env.WMB_TRACE;
    if (profile) startTrace(resolve(profile));
    const t0 = performance.now();
    try {
      return await this.run();
    } catch (e) {
      if (isWmbError(e)) {
        this.context.stderr.write(errorText(e));
        return e.exitCode;
      }
      throw e;
    } finally {
      for (const s of this.openStores) s.close();
      if (profile) {
        span(`wmb ${this.path.join(" ")}`, "command", t0, performance.now() - t0);
        writeTrace();
      }
    }
  }

  json(value: unknown): void {
    this.context.stdout.write(JSON.stringify(value, null, 2) + "\n");
  }
}

/** A command whose positional arguments are labels, any number of them (see main.ts). */
export interface ManyLabels {
  appendLabels(labels: string[]): void;
}

export function takesManyLabels(c: object): c is ManyLabels {
  return typeof (c as Partial<ManyLabels>).appendLabels === "function";
}

/** An error as printed: `error: <sentence>` and its detail block. Messages carry what remotes
 * say (a registry's error, an ssh host's stderr), so neither is printed raw. */
export function errorText(e: { message: string; detail?: string }): string {
  return `error: ${terminalText(e.message)}\n${e.detail ? indent(terminalText(e.detail, { lines: true })) + "\n" : ""}`;
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((l) => `  | ${l}`)
    .join("\n");
}
