// /machines (the sealed machines in the store), /machines/<identity> (its spec and what `run`
// would grant) and /machines/<identity>/run (the machine running in this tab, every digest and
// the seal checked here first).
import { Fragment } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { config, Failed, Loading, useJson } from "./app.tsx";
import { fmtBytes, fmtWhen, labelPath, shortDigest, splitArgs } from "./format.ts";
import { Refusal, verifyMachine, type Step } from "./run-checks.ts";
import { opfsDirName } from "./run-shared.ts";
import type { RunMessage, RunRequest } from "./run-worker.ts";
import type { MachineSummary, SignerSummary } from "../api.ts";

type Profile = MachineSummary["profile"];

/** Who signed it, as far as this store checked: each key once (its latest check). */
function latestPerKey(signers: SignerSummary[]): SignerSummary[] {
  const seen = new Map<string, SignerSummary>();
  for (const s of signers) if (!seen.has(s.publicKey) || seen.get(s.publicKey)!.verifiedAt < s.verifiedAt) seen.set(s.publicKey, s);
  return [...seen.values()];
}

function howSigned(s: SignerSummary): string {
  return `${s.how === "pull" ? "verified at pull" : "signed at push"} ${fmtWhen(s.verifiedAt)}`;
}

function SignedBy({ signers }: { signers: SignerSummary[] }) {
  const keys = latestPerKey(signers);
  if (keys.length === 0) return <span class="muted">no verified signature</span>;
  return (
    <>
      {keys.map((s) => (
        <div key={s.publicKey} data-signer={s.keyName}>
          <code title={s.publicKey}>{s.keyName}</code> <span class="muted">{howSigned(s)}</span>
        </div>
      ))}
    </>
  );
}

function Capabilities({ p }: { p: Profile }) {
  return (
    <span>
      {p.cpus} cpu · {fmtBytes(p.memory_bytes)} · network {p.network} · {p.filesystem.writable.length ? `writable ${p.filesystem.writable.join(", ")}` : "nothing writable"}
    </span>
  );
}

export function MachinesPage() {
  const data = useJson<MachineSummary[]>("/api/machines");
  if (!data) return <Loading what="machines" />;
  if (data instanceof Error) return <Failed error={data} />;
  return (
    <>
      <h1>Machines</h1>
      <p class="sub">Sealed machines this store holds, by identity, and the keys whose signature of each this store verified (at a pull with trusted keys, or its own push).</p>
      {data.length === 0 ? (
        <div class="panel">None yet: build a sealed target (<code>wmb build //sqlite-cli:sealed</code>) or pull one.</div>
      ) : (
        <table>
          <thead>
            <tr><th>machine</th><th>identity</th><th>built by</th><th>signed by</th><th class="num">kernel</th><th class="num">rootfs</th><th>capabilities</th><th /></tr>
          </thead>
          <tbody>
            {data.map((m) => (
              <tr key={m.identity} data-machine={m.identity}>
                <td><a href={`/machines/${m.identity}`}><strong>{m.name}</strong> {m.version}</a></td>
                <td><code title={m.identity}>{shortDigest(m.identity)}</code></td>
                <td>{m.label ? <a href={`/targets/${labelPath(m.label)}`}>{m.label}</a> : <span class="muted">imported</span>}<div class="muted">{fmtWhen(m.registeredAt)}</div></td>
                <td class="signed-by"><SignedBy signers={m.signers} /></td>
                <td class="num">{fmtBytes(m.kernelBytes)}</td>
                <td class="num">{fmtBytes(m.rootfsBytes)}</td>
                <td><Capabilities p={m.profile} /><div class="muted">{m.interfaces.length} WASI interfaces</div></td>
                <td><a class="button primary" href={`/machines/${m.identity}/run?args=-version`}>Run in tab</a></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

interface MachineDetail {
  identity: string;
  specDigest: string;
  spec: {
    name: string;
    version: string;
    schema_version: number;
    capability_profile: Profile;
    kernel_ref: { digest: string; size: number; media_type: string };
    rootfs_ref: { digest: string; size: number; media_type: string };
    composition: { root: string; components: { id: string }[]; bindings: { import_name: string; provider_id: string }[]; policy: { determinism?: string; capabilities?: string[] } };
  };
  grant: { argv0: string; interfaces: string[]; writable: string[]; threads: number };
  signers: SignerSummary[];
}

export function MachinePage({ identity }: { identity: string }) {
  const data = useJson<MachineDetail>(`/api/machines/${identity}`);
  const [args, setArgs] = useState("-version");
  if (!data) return <Loading what={identity} />;
  if (data instanceof Error) return <Failed error={data} />;
  const { spec, grant } = data;
  return (
    <>
      <h1>{spec.name} <span class="muted">{spec.version}</span></h1>
      <p class="sub mono">{identity}</p>
      <div class="panel">
        <form class="row" method="get" action={`/machines/${identity}/run`}>
          <strong>Run in this tab:</strong>
          <code>{grant.argv0}</code>
          <input type="text" name="args" value={args} onInput={(e) => setArgs((e.target as HTMLInputElement).value)} placeholder=':memory: "select 6*7;"' />
          <button class="primary" type="submit">Run</button>
        </form>
      </div>
      <h2>Signed by</h2>
      <div class="panel signed-by">
        {data.signers.length === 0 ? (
          <span class="muted">no verified signature</span>
        ) : (
          <dl class="kv">
            {data.signers.map((s) => (
              <Fragment key={`${s.publicKey} ${s.index} ${s.how}`}>
                <dt data-signer={s.keyName}><code>{s.keyName}</code></dt>
                <dd>{howSigned(s)} · index <code title={s.index}>{shortDigest(s.index)}</code> · <code class="muted">{s.publicKey}</code></dd>
              </Fragment>
            ))}
          </dl>
        )}
      </div>
      <h2>What <code>run</code> grants</h2>
      <div class="panel">
        <dl class="kv">
          <dt>argv[0]</dt><dd><code>{grant.argv0}</code></dd>
          <dt>environment</dt><dd><code>HOME=/</code> and nothing else</dd>
          <dt>/</dt><dd>the rootfs, read-only</dd>
          <dt>writable</dt><dd>{grant.writable.length ? grant.writable.map((w) => <div key={w}><code>{w}</code> <span class="muted">(a host directory under <code>wmb run</code>; the origin-private file system in a tab)</span></div>) : "nothing"}</dd>
          <dt>network</dt><dd>{spec.capability_profile.network}</dd>
          <dt>threads</dt><dd>{grant.threads} ({spec.capability_profile.cpus} cpu allowed)</dd>
          <dt>memory</dt><dd>{fmtBytes(spec.capability_profile.memory_bytes)} at most (in the sealed bits)</dd>
          <dt>interfaces</dt><dd>{grant.interfaces.map((i) => <code key={i} class="chip">{i}</code>)}</dd>
        </dl>
      </div>
      <h2>Spec</h2>
      <div class="panel">
        <dl class="kv">
          <dt>schema version</dt><dd>{spec.schema_version}</dd>
          <dt>kernel</dt><dd><code>{spec.kernel_ref.digest}</code> · {fmtBytes(spec.kernel_ref.size)} · {spec.kernel_ref.media_type}</dd>
          <dt>rootfs</dt><dd><code>{spec.rootfs_ref.digest}</code> · {fmtBytes(spec.rootfs_ref.size)} · {spec.rootfs_ref.media_type}</dd>
          <dt>components</dt><dd>{spec.composition.components.map((c) => c.id).join(", ")} (root {spec.composition.root})</dd>
          <dt>bindings</dt><dd>{spec.composition.bindings.length} imports, all to {[...new Set(spec.composition.bindings.map((b) => b.provider_id))].join(", ")}</dd>
          <dt>policy</dt><dd>{spec.composition.policy.determinism ?? ""} {(spec.composition.policy.capabilities ?? []).join(", ")}</dd>
          <dt>spec blob</dt><dd><code>blake3:{data.specDigest}</code></dd>
        </dl>
      </div>
    </>
  );
}

/** args=<one string, split like a shell's> or repeated arg=. */
export function runArgs(params: URLSearchParams): string[] {
  const repeated = params.getAll("arg");
  if (repeated.length) return repeated;
  return splitArgs(params.get("args") ?? "");
}

type Out = { out: "stdout" | "stderr"; text: string };

export function RunPage({ identity, params }: { identity: string; params: URLSearchParams }) {
  const args = runArgs(params);
  const stdin = params.get("stdin") ?? "";
  const [steps, setSteps] = useState<Step[]>([]);
  const [refusal, setRefusal] = useState<string>();
  const [output, setOutput] = useState<Out[]>([]);
  const [exit, setExit] = useState<{ code: number; trapped?: string; ms: number }>();
  const [machine, setMachine] = useState<{ name: string; version: string; writable: string[] }>();
  const [cleared, setCleared] = useState(false);
  const [running, setRunning] = useState(false);
  const started = useRef(false);
  useEffect(() => {
    if (started.current) return;
    started.current = true;
    const src =
      config.mode === "static"
        ? { manifest: config.machine!.manifest, blob: (d: string) => `${config.machine!.blobs}${d}` }
        : { manifest: `/api/machines/${identity}/run.json`, blob: (d: string) => `/machines/${identity}/blobs/${d}` };
    const step = (s: Step) => setSteps((all) => [...all.filter((x) => x.what !== s.what), s]);
    const known = (spec: { name: string; version: string; capability_profile: { filesystem: { writable: string[] } } }) =>
      setMachine({ name: spec.name, version: spec.version, writable: spec.capability_profile.filesystem.writable });
    verifyMachine(identity, src, step, known).then(
      (m) => {
        const t0 = performance.now();
        const worker = new Worker(new URL(`${config.assets}run-worker.js`, location.href), { type: "module", name: "wmb-run" });
        const chunks: Out[] = [];
        let pending = false;
        worker.onmessage = (e: MessageEvent<RunMessage>) => {
          const msg = e.data;
          if ("out" in msg) {
            const last = chunks[chunks.length - 1];
            if (last && last.out === msg.out) last.text += msg.text;
            else chunks.push({ ...msg });
            // One render per frame, however many writes.
            if (!pending) {
              pending = true;
              requestAnimationFrame(() => ((pending = false), setOutput(chunks.map((c) => ({ ...c })))));
            }
          } else if ("exit" in msg) {
            setOutput(chunks.map((c) => ({ ...c })));
            setExit({ code: msg.exit, trapped: msg.trapped, ms: performance.now() - t0 });
            worker.terminate();
          } else {
            setRefusal(`The tab could not run it: ${msg.error}.`);
            worker.terminate();
          }
        };
        const request: RunRequest = {
          identity,
          name: m.spec.name,
          args,
          stdin,
          interfaces: m.interfaces,
          writable: m.spec.capability_profile.filesystem.writable,
          rootfs: m.rootfs,
          transpiled: m.transpiled,
        };
        worker.postMessage(request);
        setRunning(true);
      },
      (e: unknown) => setRefusal(e instanceof Refusal ? e.message : `The machine could not be checked: ${(e as Error)?.message ?? e}`),
    );
  }, []);
  const clear = async () => {
    const storage = await navigator.storage.getDirectory();
    for (const w of machine?.writable ?? []) await storage.removeEntry(opfsDirName(identity, w), { recursive: true }).catch(() => {});
    setCleared(true);
  };
  const quoted = args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
  return (
    <>
      <h1>{machine ? <>{machine.name} <span class="muted">{machine.version}</span></> : "Run a machine"} <span class="muted">in this tab</span></h1>
      <p class="sub mono">{identity}</p>
      <form class="row panel" method="get">
        <code>{machine?.name ?? "argv[0]"}</code>
        <input type="text" name="args" value={params.get("args") ?? quoted} placeholder=':memory: "select 6*7;"' />
        <button class="primary" type="submit">Run</button>
        {config.mode === "served" && <a href={`/machines/${identity}`}>spec</a>}
      </form>
      <h2>Checked in this tab before anything runs</h2>
      <ul class="checks panel" data-checks>
        {steps.map((s) => (
          <li key={s.what} data-state={s.state}>
            <span class={`state ${s.state === "ok" ? "good" : s.state === "bad" ? "bad" : ""}`}>{s.state === "ok" ? "✓" : s.state === "bad" ? "✗" : "…"}</span>
            {s.what}
            {s.detail && s.state === "ok" && <span class="muted"> · {s.detail}</span>}
          </li>
        ))}
      </ul>
      {refusal && <p class="refusal" data-refusal>{refusal}</p>}
      {!refusal && running && (
        <>
          <h2>Output</h2>
          <pre class="console" data-console>
            {output.map((o, i) => (
              <span key={i} class={o.out}>{o.text}</span>
            ))}
            {!exit && <span class="muted">running…</span>}
          </pre>
          {exit && (
            <p class="exit" data-exit={exit.code}>
              {exit.trapped ? `The guest trapped: ${exit.trapped} (exit ${exit.code})` : `exit status ${exit.code}`} <span class="muted">· {Math.round(exit.ms)} ms</span>
            </p>
          )}
          {machine && machine.writable.length > 0 && (
            <p class="muted">
              {machine.writable.join(", ")} {machine.writable.length === 1 ? "is" : "are"} kept in this browser's origin-private file system, so a database there survives a reload.{" "}
              <button onClick={clear} data-clear>{cleared ? "Cleared" : `Clear ${machine.writable.join(", ")}`}</button>
            </p>
          )}
        </>
      )}
    </>
  );
}
