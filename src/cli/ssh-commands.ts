// Machines on hosts reached by ssh (src/remote/ssh/): `wmb store copy --to ssh://…`, `wmb remote
// check ssh://…`, and the hidden `wmb remote serve`, which the client starts on the remote host.
// `wmb run --target ssh://…` is in run-command.ts.
import { Command, Option } from "clipanion";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { isWmbError, WmbError } from "../errors.ts";
import type { Confinement } from "../remote/ssh/confine.ts";
import type { RunRequest } from "../remote/ssh/protocol.ts";
import type { RunIo } from "../remote/ssh/server.ts";
import type { Store as StoreType } from "../../store/store.ts";
import { wmbFile } from "../repo-root.ts";
import { terminalText } from "../terminal-text.ts";
import { WmbCommand } from "./base.ts";

const REMOTE_WMB = "The wmb command on the remote host (default: wmb on its non-interactive PATH), e.g. /opt/wmb/bin/wmb.mjs or \"node /opt/wmb/bin/wmb.mjs\"";
const REMOTE_STORE = "The store directory on the remote host (default: the remote wmb's own: $WMB_STORE, else ~/.local/share/wmb/store)";

export class StoreCopyCommand extends WmbCommand {
  static paths = [["store", "copy"]];
  static usage = Command.Usage({
    category: "Store",
    description: "Copy a sealed machine into the store of a host reached by ssh, sending only the blobs it lacks; prints the identity",
    details: `
      The machine (a label, built first; a sealed spec file; an identity; an oci:// reference) is
      checked here, then one ssh session asks the remote store which of its blobs it lacks and
      sends just those. The remote verifies every BLAKE3 digest, the seal and the identity before
      it admits anything; a copy that was cut off resumes where it stopped. Afterwards
      \`wmb run blake3:<identity> --target ssh://…\` sends nothing.

      Exit codes: 3 when a digest or the seal does not match (nothing was admitted); 4 when the
      host cannot be used (unreachable, authentication refused, unknown host key, no wmb or
      Node.js 20+ there, its store unusable, the connection cut).
    `,
    examples: [
      ["Pre-seed a host", "$0 store copy //sqlite-cli:sealed --to ssh://deploy@db-host"],
      ["wmb elsewhere on the remote", "$0 store copy blake3:<identity> --to ssh://db-host:2222 --remote-wmb /opt/wmb/bin/wmb.mjs"],
    ],
  });
  machine = Option.String({ name: "machine" });
  to = Option.String("--to", { required: true, description: "ssh://[user@]host[:port]" });
  remoteWmb = Option.String("--remote-wmb", { description: REMOTE_WMB });
  remoteStore = Option.String("--remote-store", { description: REMOTE_STORE });
  asJson = Option.Boolean("--json", false, { description: "Print a JSON report on stdout" });

  async run(): Promise<number> {
    const { parseSshTarget, isSshTarget } = await import("../remote/ssh/target.ts");
    if (!isSshTarget(this.to)) {
      throw new WmbError("USAGE", `--to takes an ssh://[user@]host[:port] target, not ${this.to}${this.to.startsWith("oci://") ? " (for a registry, use `wmb push`)" : ""}.`);
    }
    const t = parseSshTarget(this.to);
    const { resolveMachine } = await import("./machine-ref.ts");
    const { connect, copyTo } = await import("../remote/ssh/client.ts");
    // Connect while the machine is resolved here.
    const session = connect(t, { remoteWmb: this.remoteWmb, remoteStore: this.remoteStore });
    let m;
    try {
      const store = await this.store();
      m = await resolveMachine(this.machine, store, () => this.workspace(), this.context.stderr as NodeJS.WriteStream);
    } catch (e) {
      await session.then((s) => s.close(), () => {});
      throw e;
    }
    const r = await copyTo(session, m);
    if (this.asJson) {
      this.json({ identity: r.identity, target: t.url, remote_store: r.hello.store, blobs: r.blobs, sent: r.sent, sent_bytes: r.sentBytes });
      return 0;
    }
    this.context.stdout.write(`${r.identity}\n`);
    this.context.stderr.write(`${terminalText(`copied to ${t.url} (store ${r.hello.store}): sent ${r.sent} of ${r.blobs} blobs, ${r.sentBytes} bytes; every digest and the seal verified there`)}\n`);
    return 0;
  }
}

export class RemoteCheckCommand extends WmbCommand {
  static paths = [["remote", "check"]];
  static usage = Command.Usage({
    category: "Remote",
    description: "Check that a host reached by ssh can run machines: its wmb and Node.js versions, store and free space",
    details: `
      Connects the way \`run --target\` does (OpenSSH with BatchMode; WMB_SSH_COMMAND replaces
      \`ssh\`) and prints what the remote wmb reports, or says in one sentence what is missing and
      how to fix it (exit 4).
    `,
    examples: [["Check a host", "$0 remote check ssh://deploy@db-host"]],
  });
  target = Option.String({ name: "ssh-target" });
  remoteWmb = Option.String("--remote-wmb", { description: REMOTE_WMB });
  remoteStore = Option.String("--remote-store", { description: REMOTE_STORE });
  asJson = Option.Boolean("--json", false, { description: "JSON output" });

  async run(): Promise<number> {
    const { parseSshTarget } = await import("../remote/ssh/target.ts");
    const { checkRemote } = await import("../remote/ssh/client.ts");
    const t = parseSshTarget(this.target);
    const r = await checkRemote(t, { remoteWmb: this.remoteWmb, remoteStore: this.remoteStore });
    const h = r.hello;
    if (this.asJson) {
      this.json({ target: t.url, remote_wmb: r.remoteWmb, wmb: h.wmb, protocol: h.protocol, node: h.node, store: h.store, free_bytes: h.free_bytes, connect_ms: Math.round(r.connectMs) });
      return 0;
    }
    // What the remote says about itself is its own text: printed without escapes.
    const out = (line: string) => this.context.stdout.write(`${terminalText(line)}\n`);
    out(`host      ${t.url} (connected in ${Math.round(r.connectMs)} ms)`);
    out(`wmb       ${h.wmb} (ssh protocol ${h.protocol}), started as ${r.remoteWmb}`);
    out(`node      ${h.node}`);
    out(`store     ${h.store}`);
    out(`free      ${typeof h.free_bytes === "number" ? `${(h.free_bytes / 2 ** 30).toFixed(1)} GiB` : "unknown"}`);
    return 0;
  }
}

/** Started by the client over ssh; speaks the framed protocol on stdio. */
export class RemoteServeCommand extends WmbCommand {
  static paths = [["remote", "serve"]];
  static usage = Command.Usage({
    category: "Remote",
    description: "Answer an ssh client on stdin and stdout (started over ssh by run --target, store copy and remote check; not for interactive use)",
    details: `
      Speaks wmb's framed ssh protocol: reports its version and store, receives the blobs of a
      machine, verifies every digest and the seal before admitting anything, and runs the machine
      with \`wmb run\`'s checks and grant. The store is --store, else $WMB_STORE, else
      $XDG_DATA_HOME/wmb/store (~/.local/share/wmb/store).

      --confine DIR (or WMB_REMOTE_CONFINE=DIR) keeps every directory a client mounts (--db,
      --mount) under DIR: paths are relative to it, \`..\` and symbolic links out of it are
      refused. For a key that may only serve machines, in authorized_keys:
      command="wmb remote serve --store /srv/wmb/store --confine /srv/wmb/data" ssh-ed25519 AAAA…
      Under such a forced command the client's store is the one named there, and a terminal run
      is taken from the --request word of the command line the client asked for
      (SSH_ORIGINAL_COMMAND).
    `,
  });
  confine = Option.String("--confine", { description: "Mount only directories under DIR (also WMB_REMOTE_CONFINE)" });
  request = Option.String("--request", { description: "What the client asks (one base64 word it writes; not for people)" });

  async run(): Promise<number> {
    const { decodeRequest, requestOfOriginalCommand } = await import("../remote/ssh/target.ts");
    // A forced command (authorized_keys' command=) ran instead of the client's line: what the
    // client asked is in SSH_ORIGINAL_COMMAND, and only its --request word is read.
    const original = this.request === undefined ? process.env.SSH_ORIGINAL_COMMAND : undefined;
    const request = this.request !== undefined ? decodeRequest(this.request) : original !== undefined ? requestOfOriginalCommand(original) : {};
    const own = this.storeDir ?? process.env.WMB_STORE;
    const storeDir = resolve(own ?? (original === undefined ? request.store : undefined) ?? defaultRemoteStore());
    let refusal: string | undefined;
    if (original !== undefined && request.store !== undefined && resolve(request.store) !== storeDir) {
      refusal = `this host's key runs wmb remote serve with its own store ${storeDir}, not ${request.store}; drop --remote-store (or give that one).`;
    }
    const confineDir = this.confine ?? (process.env.WMB_REMOTE_CONFINE || undefined);
    let confined: Confinement | undefined;
    try {
      if (confineDir !== undefined) confined = (await import("../remote/ssh/confine.ts")).confinement(confineDir);
    } catch (e) {
      if (!isWmbError(e)) throw e;
      refusal ??= e.message;
    }
    const { Store } = await import("../../store/store.ts");
    // Over the protocol io is frames; in a terminal run, this process's stdio (the pty).
    const runMachine = async (store: StoreType, req: RunRequest, io: Partial<RunIo>) => {
      const t0 = performance.now();
      const { loadMachine } = await import("../machine.ts");
      const { parseMounts } = await import("../run/run-grant.ts");
      const { runResolvedMachine } = await import("./run-command.ts");
      const parsed = parseMounts(req.mounts, req.db);
      const requested = confined ? (await import("../remote/ssh/confine.ts")).confineMounts(parsed, confined) : parsed;
      const m = await loadMachine(store, req.identity);
      const r = await runResolvedMachine(store, m, requested, req.args, io);
      return { code: r.code, checkedMs: r.timing.checkedAt - t0, transpileMs: r.timing.transpileMs, ranMs: r.timing.runMs };
    };
    if (request.tty) {
      // A terminal run (ssh -t): the machine was shipped by an earlier session; stdio is the pty.
      if (refusal) throw new WmbError("USAGE", refusal);
      const store = await Store.open(storeDir);
      try {
        return (await runMachine(store, { t: "run", ...request.tty }, {})).code;
      } finally {
        store.close();
      }
    }
    const { serve } = await import("../remote/ssh/server.ts");
    const version = (JSON.parse(readFileSync(wmbFile("package.json"), "utf8")) as { version: string }).version;
    await serve({
      storeDir,
      openStore: (dir) => Store.open(dir),
      version,
      input: process.stdin,
      output: process.stdout,
      refusal,
      prepareRun: () => {
        // Loaded while the client sends what the remote lacks (each is imported again below).
        for (const load of [() => import("../machine.ts"), () => import("./run-command.ts"), () => import("../run/run-grant.ts"), () => import("../run/runtime.ts"), () => import("../run/transpile.ts"), () => import("../run/rootfs-extract.ts")]) {
          load().catch(() => {});
        }
      },
      run: runMachine,
    });
    process.stdin.destroy(); // the session is over, whether or not the client closed its end
    return 0;
  }
}

/** A store for machines sent over ssh when neither --store nor WMB_STORE says: a host that runs
 * machines need not hold a workspace. */
function defaultRemoteStore(): string {
  const data = process.env.XDG_DATA_HOME || join(homedir(), ".local", "share");
  return join(data, "wmb", "store");
}
