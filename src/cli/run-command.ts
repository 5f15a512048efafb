import { Command, Option } from "clipanion";
import * as t from "typanion";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fmtMs } from "../progress.ts";
import { WmbError } from "../errors.ts";
import { traced } from "../trace.ts";
import type { LoadedMachine } from "../machine.ts";
import type { OutputSink, StartedRunner, StdinSource } from "../run/runtime.ts";
import type { Store } from "../../store/store.ts";
import { terminalText } from "../terminal-text.ts";
import { WmbCommand } from "./base.ts";
import { allowUnsignedOption, machinePolicyFor, requireRebuildsOption, trustedKeyOption } from "./trust-options.ts";
import type { MachinePolicy } from "../remote/machine-trust.ts";

/** The machine policy of a command given an oci:// machine (none for a label, file or identity). */
async function policyFor(
  cmd: WmbCommand & { machine: string; trustedKeys?: string[]; allowUnsigned?: boolean; requireRebuilds?: string },
): Promise<MachinePolicy | undefined> {
  if (!cmd.machine.startsWith("oci://")) {
    if (cmd.requireRebuilds !== undefined || cmd.allowUnsigned) throw new WmbError("USAGE", `--require-rebuilds and --allow-unsigned apply to a machine from a registry (oci://…), not to ${cmd.machine}.`);
    return undefined;
  }
  return machinePolicyFor(cmd, () => cmd.workspace(), (m) => cmd.context.stderr.write(`warning: ${terminalText(m)}\n`));
}

export class RunCommand extends WmbCommand {
  static paths = [["run"]];
  static usage = Command.Usage({
    description: "Check every digest of a sealed machine, then run it with exactly the capabilities its spec grants",
    details: `
      The machine is a label (built first if needed), a sealed spec file (its blobs fetched from
      the spec's oci/https sources when the store lacks them), an identity (blake3:<64 hex>)
      known to the store, or an OCI reference (oci://registry/repo:tag or @blake3:/@sha256:,
      pulled first, every digest and the seal verified). Before anything runs, the kernel, the rootfs and
      every component are re-hashed, the seal recomputed, and what seal checked is checked
      again (the bindings match the component, no network import under network "deny", no
      memory that may grow past memory_bytes).

      Everything the guest gets comes from its spec: the rootfs read-only as /, one host
      directory for each writable path the spec declares (--mount /path=DIR, repeatable; --db
      DIR is short for --mount /db=DIR; by default <store>/machines/<identity>/<path>), none
      when it declares none (then --db and --mount are errors); the WASI interfaces its
      composition binds to the host; argv[0] its name; HOME=/; its arguments and stdio. Nothing
      else of the host: no network, no other file, no environment variable. The guest runs on
      one thread, whatever cpus says.

      With --target ssh://[user@]host[:port] the machine is checked here, the blobs the remote
      store lacks are sent over one ssh session (the remote verifies every digest and the seal
      before admitting them), and the remote wmb runs it with the same checks and grant: the
      directories of --db and --mount are on the remote host, stdin, stdout and stderr are
      streamed (a terminal gets a terminal), Ctrl-C stops the remote guest. ssh is the user's
      OpenSSH with BatchMode (WMB_SSH_COMMAND replaces it); the remote needs wmb and Node.js
      20+ (see --remote-wmb, --remote-store and \`wmb remote check\`).

      Exit codes: the guest's own exit code when it ran; 3 when a digest, the seal or the
      policy check fails (nothing ran); 2 for a --db or --mount the spec does not declare
      or whose directories overlap; 4 when an ssh target cannot be used (unreachable,
      authentication refused, unknown host key, no wmb there, connection cut); 1 for wmb's
      other errors (e.g. an interface this runtime does not implement).
    `,
    examples: [
      ["Print the SQLite version", "$0 run //sqlite-cli:sealed -- -version"],
      ["Keep a database in ./data", "$0 run //sqlite-cli:sealed --db ./data -- /db/app.db \"create table t(x);\""],
      ["Mount a host directory at a declared writable path", "$0 run machine.json --mount /var/data=./data -- args"],
      ["Pipe SQL into a machine found by identity", "echo 'select 40+2;' | $0 run blake3:<identity> -- :memory:"],
      ["Run it on another host, sending only what that host lacks", "$0 run //sqlite-cli:sealed --target ssh://deploy@db-host -- -version"],
    ],
  });
  machine = Option.String({ name: "machine" });
  db = Option.String("--db", { description: "Short for --mount /db=DIR, for a machine that declares /db writable" });
  mounts = Option.Array("--mount", [], { description: "/guest/path=HOSTDIR for a writable path the spec declares (repeatable; default: one directory per path under the store)" });
  toolchain = Option.String("--toolchain", "hermetic", { validator: t.isEnum(["hermetic", "system"] as const) });
  plainHttp = Option.Boolean("--plain-http", false, { description: "Plain HTTP to a registry not on this host, for oci:// machines and sources" });
  timings = Option.Boolean("--timings", false, { description: "Print check, transpile and run times on stderr (with --target: also what was shipped)" });
  target = Option.String("--target", { description: "ssh://[user@]host[:port]: run on that host, shipping only the blobs its store lacks" });
  remoteWmb = Option.String("--remote-wmb", { description: "With --target: the remote wmb command (default: wmb on the remote PATH), e.g. /opt/wmb/bin/wmb.mjs" });
  remoteStore = Option.String("--remote-store", { description: "With --target: the store directory on the remote host (default: the remote wmb's own)" });
  trustedKeys = trustedKeyOption();
  allowUnsigned = allowUnsignedOption();
  requireRebuilds = requireRebuildsOption();
  args = Option.Rest({ name: "guest arguments" });

  async run(): Promise<number> {
    const t0 = performance.now();
    if (this.target !== undefined) return this.runOnTarget(this.target);
    const { resolveMachine } = await import("./machine-ref.ts");
    const { parseMounts } = await import("../run/run-grant.ts");
    const requested = parseMounts(this.mounts, this.db);
    if (this.remoteWmb !== undefined || this.remoteStore !== undefined) {
      throw new WmbError("USAGE", "--remote-wmb and --remote-store apply only with --target ssh://…; add a target or drop them.");
    }
    // The guest's runner starts now: Node, the shims and their I/O thread start while the
    // machine is built and checked below, instead of after (it gets nothing until then).
    const { startRunner } = await import("../run/runtime.ts");
    const runner = startRunner();
    try {
      const store = await this.store();
      const m = await resolveMachine(this.machine, store, () => this.workspace(), this.context.stderr as NodeJS.WriteStream, this.toolchain, { plainHttp: this.plainHttp, policy: await policyFor(this) });
      const r = await runResolvedMachine(store, m, requested, this.args, { runner });
      if (this.timings) {
        this.context.stderr.write(
          `wmb: checked in ${fmtMs(r.timing.checkedAt - t0)}, transpile ${r.timing.transpileMs === undefined ? "cached" : fmtMs(r.timing.transpileMs)}, ran in ${fmtMs(r.timing.runMs)}\n`,
        );
      }
      return r.code;
    } finally {
      runner.cancel();
    }
  }

  /** --target ssh://…: the machine is resolved here, shipped (only what the host lacks) and run there. */
  private async runOnTarget(target: string): Promise<number> {
    const { parseSshTarget } = await import("../remote/ssh/target.ts");
    const t = parseSshTarget(target);
    const { connect, dispatch } = await import("../remote/ssh/client.ts");
    // Connect (ssh, the remote wmb's start) first, and resolve and check the machine here meanwhile.
    const session = connect(t, { remoteWmb: this.remoteWmb, remoteStore: this.remoteStore });
    let m;
    try {
      const { parseMounts } = await import("../run/run-grant.ts");
      parseMounts(this.mounts, this.db); // a malformed flag is a usage error here; the remote checks them against the spec
      const { isIdentity } = await import("../machine.ts");
      const store = await this.store();
      // An identity only the remote store knows runs there without a local copy.
      m =
        isIdentity(this.machine) && store.machineSpecDigest(this.machine) === undefined
          ? { identity: this.machine }
          : await (await import("./machine-ref.ts")).resolveMachine(this.machine, store, () => this.workspace(), this.context.stderr as NodeJS.WriteStream, this.toolchain, { plainHttp: this.plainHttp, policy: await policyFor(this) });
      store.close(); // the guest may run for long; do not hold the index open
    } catch (e) {
      await session.then((s) => s.close(), () => {});
      throw e;
    }
    const r = await dispatch(session, m, {
      remoteWmb: this.remoteWmb,
      remoteStore: this.remoteStore,
      args: this.args,
      mounts: this.mounts,
      db: this.db,
      stdin: process.stdin,
      stdout: this.context.stdout,
      stderr: this.context.stderr,
    });
    // The summary names the remote's wmb and Node.js versions as it reported them.
    if (this.timings) this.context.stderr.write(`wmb: ${terminalText(r.summary)}\n`);
    return r.code;
  }
}

export interface RunTimings {
  /** performance.now() once every digest, the seal and the policy were checked. */
  checkedAt: number;
  /** undefined when the transpiled component came from the store. */
  transpileMs: number | undefined;
  runMs: number;
}

/** Run a verified machine (loadMachine/resolveMachine checked every digest and the seal) with the
 * grant its spec allows: the one path `wmb run` and an ssh target's `wmb remote serve` share. The
 * store is closed before the guest starts. stdio default to this process's. */
export async function runResolvedMachine(
  store: Store,
  m: LoadedMachine,
  requested: ReadonlyMap<string, string>,
  args: string[],
  io: { stdin?: StdinSource; stdout?: OutputSink; stderr?: OutputSink; signal?: AbortSignal; runner?: StartedRunner } = {},
): Promise<{ code: number; timing: RunTimings }> {
  const { componentCodeCache, keepComponentCodeCache, transpiledFiles } = await import("../machine.ts");
  const { machineDataDir, machineGrant } = await import("../run/run-grant.ts");
  const grant = machineGrant(m.spec, m.kernel, requested, machineDataDir(store.dir, m.identity));
  const checkedAt = performance.now();
  const { outputs, cached } = await traced("find the transpiled component", "run", () => transpiledFiles(store, m.kernel, m.kernelDigest));
  const tTranspiled = performance.now();
  for (const mount of grant.mounts) mkdirSync(mount.host, { recursive: true });
  const scratch = mkdtempSync(join(tmpdir(), "wmb-run-"));
  try {
    // The transpiled files and the module's V8 code cache are read in place, from the store
    // (checked like any blob). The runner writes a cache into jsDir when there is none (a
    // component's first run here) or V8 refused it; it is kept for the next run.
    const jsDir = join(scratch, "js");
    mkdirSync(jsDir);
    const jsFiles = Object.fromEntries(Object.entries(outputs).map(([name, o]) => [name, store.blobPath(o.digest)]));
    const kept = await componentCodeCache(store, m.kernelDigest);
    const codeCache = { read: kept && store.blobPath(kept), write: join(jsDir, "code-cache.bin") };
    const { extractRootfs } = await import("../run/rootfs-extract.ts");
    const rootfsDir = join(scratch, "rootfs");
    await traced("extract the rootfs", "run", () => extractRootfs(m.rootfs, rootfsDir));
    store.close(); // the guest may run for long; do not hold the index open
    const { runner, ...stdio } = io;
    const opts = { jsDir, jsFiles, rootfsDir, mounts: grant.mounts, interfaces: grant.interfaces, args, argv0: grant.argv0, codeCache, ...stdio };
    const code = await traced("hand over to the runner, wait for the guest", "run", async () =>
      runner ? runner.run(opts) : (await import("../run/runtime.ts")).runMachine(opts),
    );
    // The runner wrote a code cache (the first, or one replacing a cache V8 refused): keep it.
    // Rare, so the store reopens for it.
    if (existsSync(codeCache.write)) {
      const reopened = await (await import("../../store/store.ts")).Store.open(store.dir);
      try {
        await keepComponentCodeCache(reopened, m.kernelDigest, codeCache.write);
      } finally {
        reopened.close();
      }
    }
    return { code, timing: { checkedAt, transpileMs: cached ? undefined : tTranspiled - checkedAt, runMs: performance.now() - tTranspiled } };
  } finally {
    await traced("remove the run's scratch directory", "run", async () => {
      const { removeExtractedRootfs } = await import("../run/rootfs-extract.ts");
      await removeExtractedRootfs(join(scratch, "rootfs")).catch(() => {});
      rmSync(scratch, { recursive: true, force: true });
    });
  }
}

export class InspectCommand extends WmbCommand {
  static paths = [["inspect"]];
  static usage = Command.Usage({
    description: "Check a sealed machine like `run` does, without running it, and describe it",
    details: "Prints the identity, the artifacts with sizes, the capabilities, the mounts, argv[0] and interfaces `run` would grant, and the component's imports. Exit code 3 when a check fails.",
    examples: [["Inspect the built machine", "$0 inspect wmb-out/sqlite-cli/sqlite-cli.json"]],
  });
  machine = Option.String({ name: "machine" });
  plainHttp = Option.Boolean("--plain-http", false, { description: "Plain HTTP to a registry not on this host, for oci:// machines and sources" });
  trustedKeys = trustedKeyOption();
  allowUnsigned = allowUnsignedOption();
  requireRebuilds = requireRebuildsOption();
  asJson = Option.Boolean("--json", false, { description: "JSON output" });

  async run(): Promise<number> {
    const { resolveMachine } = await import("./machine-ref.ts");
    const store = await this.store();
    const policy = await policyFor(this);
    const m = await resolveMachine(this.machine, store, () => this.workspace(), this.context.stderr as NodeJS.WriteStream, "hermetic", { plainHttp: this.plainHttp, policy });
    // Who signed it, its provenance and its rebuilds: checked against the trusted keys, or shown
    // as unverified claims when none are configured.
    let attested: import("../remote/machine-trust.ts").MachineTrust | undefined = m.pulled?.trust;
    if (!attested && m.pulled) {
      const { machineTrust } = await import("../remote/machine-trust.ts");
      const { RegistryClient } = await import("../remote/oci/client.ts");
      const { identityTag, parseOciReference } = await import("../remote/oci/reference.ts");
      const ref = parseOciReference(this.machine);
      const client = new RegistryClient(ref.registry, { plainHttp: this.plainHttp });
      const index = await client.manifest(ref.repository, m.pulled.index ?? identityTag(m.identity));
      attested = await machineTrust({ client, repository: ref.repository, digest: index.digest, size: index.bytes.length }, m.identity, policy?.trusted ?? []);
    }
    const { readComponent } = await import("../formats/wasm.ts");
    const { machineDataDir, machineGrant } = await import("../run/run-grant.ts");
    const imports = readComponent(m.kernel).imports.map((i) => i.name).sort();
    const grant = machineGrant(m.spec, m.kernel, new Map(), machineDataDir(store.dir, m.identity));
    const info = {
      identity: m.identity,
      name: m.spec.name,
      version: m.spec.version,
      kernel: { digest: m.spec.kernel_ref.digest, size: m.spec.kernel_ref.size, media_type: m.spec.kernel_ref.media_type, sources: m.spec.kernel_ref.sources },
      rootfs: { digest: m.spec.rootfs_ref.digest, size: m.spec.rootfs_ref.size, media_type: m.spec.rootfs_ref.media_type, sources: m.spec.rootfs_ref.sources },
      capabilities: m.spec.capability_profile,
      policy: m.spec.composition.policy,
      imports,
      // What `run` would grant (the default directories; --mount/--db replace them).
      grant: { argv0: grant.argv0, writable: grant.mounts, interfaces: grant.interfaces, threads: grant.threads },
      checks: "kernel, rootfs, components, seal and policy verified",
      ...(attested && {
        trusted_keys_from: policy?.trustedFrom ?? null,
        signed_by: attested.signers,
        rebuilt_by: attested.rebuilders,
        attestations: attested.attestations.map((a) => ({
          kind: a.kind,
          referrer: a.referrer,
          claimed_signers: a.claimedSigners,
          valid_signers: a.validSigners,
          verified: a.verified,
          problem: a.problem,
          statement: a.statement,
        })),
      }),
    };
    if (this.asJson) {
      this.json(info);
      return 0;
    }
    const out = this.context.stdout;
    out.write(`identity  ${info.identity}\nmachine   ${info.name} ${info.version}\n`);
    const sources = (ss: Record<string, unknown>[]) => (ss.length ? `  from ${ss.map((x) => Object.entries(x).map(([k, v]) => `${k}:${String(v)}`).join(" ")).join(", ")}` : "");
    out.write(`kernel    ${info.kernel.digest}  ${info.kernel.size} bytes${sources(info.kernel.sources)}\n`);
    out.write(`rootfs    ${info.rootfs.digest}  ${info.rootfs.size} bytes${sources(info.rootfs.sources)}\n`);
    const c = info.capabilities;
    out.write(`profile   cpus ${c.cpus}, memory ${c.memory_bytes} bytes, network ${c.network}, writable ${c.filesystem.writable.join(", ") || "(none)"}\n`);
    out.write(`mounts    / read-only (rootfs)${grant.mounts.map((w) => `, ${w.guest} -> ${w.host}`).join("")}\n`);
    out.write(`argv[0]   ${grant.argv0}\nthreads   ${grant.threads} (the runner is single-threaded; cpus ${c.cpus} is an upper bound)\n`);
    out.write(`grants    ${grant.interfaces.join(", ")}\n`);
    out.write(`imports   ${imports.length}\n${imports.map((i) => `  ${i}`).join("\n")}\n`);
    out.write(`verified  ${info.checks}\n`);
    if (attested) out.write(attestationLines(attested, policy?.trustedFrom));
    return 0;
  }
}

/** inspect's lines for a machine's signatures, provenance and rebuilds. */
function attestationLines(t: import("../remote/machine-trust.ts").MachineTrust, trustedFrom: string | undefined): string {
  const lines: string[] = [];
  lines.push(`trust      ${trustedFrom ? `keys from ${trustedFrom}: signed by ${t.signers.join(", ") || "no trusted key"}, ${t.rebuilders.length} independent rebuild${t.rebuilders.length === 1 ? "" : "s"}${t.rebuilders.length ? ` (${t.rebuilders.join(", ")})` : ""}` : "no trusted keys configured: what follows is unverified"}`);
  for (const kind of ["signature", "provenance", "rebuild"] as const) {
    const of = t.attestations.filter((a) => a.kind === kind);
    if (of.length === 0) {
      lines.push(`${kind.padEnd(10)} (none)`);
      continue;
    }
    for (const a of of) {
      const who = a.validSigners.length ? `by ${a.validSigners.join(", ")}, verified` : `claims ${a.claimedSigners.join(", ") || "no key"}: ${a.problem ?? "not verified"}`;
      let what = "";
      const p = a.statement?.predicate as Record<string, any> | undefined;
      if (kind === "provenance" && p) {
        const def = p.buildDefinition;
        what = ` — ${def.externalParameters.label}, ${def.resolvedDependencies.length} inputs, wmb ${def.internalParameters.wmbVersion}${def.internalParameters.toolchain ? `, toolchain ${def.internalParameters.toolchain.kind}` : ""}, ${p.runDetails.byproducts?.length ?? 0} actions`;
      } else if (kind === "rebuild" && p) what = ` — rebuilt ${p.identity} from ${p.label}${p.rebuiltOn ? ` on ${p.rebuiltOn}` : ""}`;
      lines.push(`${kind.padEnd(10)} ${terminalText(who + what)}  (${a.referrer})`);
    }
  }
  return lines.join("\n") + "\n";
}
