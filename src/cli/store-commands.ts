import { Command, Option } from "clipanion";
import * as t from "typanion";
import { fsckClean } from "../../store/fsck.ts";
import { WmbCommand } from "./base.ts";

export class StoreStatsCommand extends WmbCommand {
  static paths = [["store", "stats"]];
  static usage = Command.Usage({ category: "Store", description: "Blob count and bytes, action results, builds, machines, index size" });
  asJson = Option.Boolean("--json", false, { description: "JSON output" });
  async run(): Promise<number> {
    const stats = (await this.store()).stats();
    if (this.asJson) this.json(stats);
    else for (const [k, v] of Object.entries(stats)) this.context.stdout.write(`${k.padEnd(20)} ${v}\n`);
    return 0;
  }
}

export class StoreFsckCommand extends WmbCommand {
  static paths = [["store", "fsck"]];
  static usage = Command.Usage({
    category: "Store",
    description: "Re-hash every blob and check every row; exit 1 when anything is corrupt, missing or dangling",
    details: "With --repair, untrustworthy blobs and the results naming them are dropped (the next build recreates them), and orphaned blobs are adopted when whole.",
  });
  repair = Option.Boolean("--repair", false, { description: "Drop what cannot be trusted" });
  asJson = Option.Boolean("--json", false, { description: "JSON output" });
  async run(): Promise<number> {
    const store = await this.store();
    const r = await store.fsck({ repair: this.repair, onWait: (m) => this.context.stderr.write(`${m}\n`) });
    const clean = fsckClean(r);
    if (this.asJson) {
      this.json({ clean, ...r });
    } else {
      const out = this.context.stdout;
      out.write(`checked ${r.blobsChecked} blobs, ${r.bytesChecked} bytes\n`);
      for (const d of r.corrupt) out.write(`corrupt  blake3:${d}\n`);
      for (const d of r.missing) out.write(`missing  blake3:${d}\n`);
      for (const d of r.orphaned) out.write(`orphaned blake3:${d}\n`);
      if (r.danglingRows) out.write(`dangling rows: ${r.danglingRows}\n`);
      if (r.staleTemps) out.write(`stale temp files: ${r.staleTemps}\n`);
      out.write(clean ? "store OK\n" : this.repair ? "store repaired: the next build recreates what was dropped\n" : "store has problems: run `wmb store fsck --repair`\n");
    }
    return clean || this.repair ? 0 : 1;
  }
}

export class StoreGcCommand extends WmbCommand {
  static paths = [["store", "gc"]];
  static usage = Command.Usage({
    category: "Store",
    description: "Delete results and blobs that neither the GC roots nor the last N builds reach",
    details: "Waits for the builds using the store to finish, and builds starting meanwhile wait for it: nothing a build serves or has just written is deleted.",
  });
  keep = Option.String("--keep-builds", "5", { description: "Builds whose results are kept (default 5)", validator: t.isNumber() });
  grace = Option.String("--grace", "600", { description: "Seconds: spare results and blobs younger than this (what a build that just ended made); default 600", validator: t.isNumber() });
  dryRun = Option.Boolean("--dry-run", false, { description: "Report what would be freed" });
  asJson = Option.Boolean("--json", false, { description: "JSON output" });
  async run(): Promise<number> {
    const store = await this.store();
    const r = await store.gc({ keepBuilds: this.keep, graceMs: this.grace * 1000, dryRun: this.dryRun, onWait: (m) => this.context.stderr.write(`${m}\n`) });
    if (this.asJson) this.json(r);
    else {
      const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
      const stale = [r.staleLocks && plural(r.staleLocks, "lock"), r.staleSandboxes && (r.staleSandboxes === 1 ? "1 sandbox directory" : `${r.staleSandboxes} sandbox directories`)].filter(Boolean);
      const tail = stale.length ? `; removed ${stale.join(" and ")} of dead builds` : "";
      this.context.stdout.write(`${this.dryRun ? "would free" : "freed"} ${r.bytesFreed} bytes: ${r.blobsDeleted} blobs, ${r.resultsDeleted} action results; ${r.blobsKept} blobs kept${tail}\n`);
    }
    return 0;
  }
}

export class StoreUnlockCommand extends WmbCommand {
  static paths = [["store", "unlock"]];
  static usage = Command.Usage({
    category: "Store",
    description: "Remove the action locks of builds that are gone, including those of other hosts",
    details: "A build waiting for an action that another host's build holds says so; once no wmb runs there any more, this removes such locks (and those of dead builds on this host). Locks of live builds on this host are kept.",
  });
  asJson = Option.Boolean("--json", false, { description: "JSON output" });
  async run(): Promise<number> {
    const { ActionLocks } = await import("../../store/action-lock.ts");
    const locks = new ActionLocks(this.storePath());
    const removed = await locks.sweep({ foreign: true });
    const kept = (await locks.list()).filter((l) => l.state === "alive");
    if (this.asJson) {
      this.json({ removed, kept });
      return 0;
    }
    const who = (l: (typeof removed)[number]) => (l.holder ? `pid ${l.holder.pid} on ${l.holder.host}` : "an unreadable holder");
    for (const l of removed) this.context.stdout.write(`removed  ${l.key} (${who(l)})\n`);
    for (const l of kept) this.context.stdout.write(`kept     ${l.key} (${who(l)}, running)\n`);
    this.context.stdout.write(`removed ${removed.length} lock${removed.length === 1 ? "" : "s"}; ${kept.length} held by running builds\n`);
    return 0;
  }
}
