// /targets/<label> (its digests over time, and `why` between any two of its keys) and /graph
// (the closure of a label as a picture, nodes coloured by their last outcome).
import { useState } from "preact/hooks";
import { Failed, Loading, useJson } from "./app.tsx";
import { fmtWhen, labelPath, shortDigest } from "./format.ts";

interface HistoryEntry {
  outputs: Record<string, string>;
  firstSeen: number;
  lastSeen: number;
  builds: number;
  executions: number;
  sandbox?: string;
}
interface Change {
  path: string;
  before: unknown;
  after: unknown;
}

function show(v: unknown): string {
  if (v === undefined) return "(absent)";
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s.length > 140 ? s.slice(0, 137) + "…" : s;
}

export function TargetPage({ label, params }: { label: string; params: URLSearchParams }) {
  const data = useJson<{ label: string; history: HistoryEntry[]; keys: string[]; rule?: string }>(`/api/targets/${labelPath(label)}`);
  const [before, setBefore] = useState(params.get("before") ?? "");
  const [after, setAfter] = useState(params.get("after") ?? "");
  const keys = data && !(data instanceof Error) ? data.keys : [];
  const b = before || keys[1];
  const a = after || keys[0];
  const why = useJson<{ changes: Change[]; before: string; after: string }>(keys.length > 1 && a && b && a !== b ? `/api/targets/${labelPath(label)}/why?before=${b}&after=${a}` : undefined);
  if (!data) return <Loading what={label} />;
  if (data instanceof Error) return <Failed error={data} />;
  return (
    <>
      <h1 class="mono">{data.label}</h1>
      <p class="sub">
        {data.rule && <>rule <code>{data.rule}</code> · </>}
        {data.history.length} distinct output set{data.history.length === 1 ? "" : "s"}, {keys.length} key{keys.length === 1 ? "" : "s"} ·{" "}
        <a href={`/graph?label=${encodeURIComponent(data.label)}`}>its graph</a>
      </p>
      <h2>History of digests</h2>
      <table>
        <thead>
          <tr><th>last seen</th><th>first seen</th><th class="num">builds</th><th class="num">ran</th><th>sandbox</th><th>outputs</th></tr>
        </thead>
        <tbody>
          {data.history.map((h, i) => (
            <tr key={i}>
              <td>{fmtWhen(h.lastSeen)}</td>
              <td>{fmtWhen(h.firstSeen)}</td>
              <td class="num">{h.builds}</td>
              <td class="num">{h.executions}</td>
              <td>{h.sandbox ?? "–"}</td>
              <td>
                {Object.entries(h.outputs).map(([p, d]) => (
                  <div key={p}>
                    <code title={`blake3:${d}`}>{shortDigest(`blake3:${d}`, 16)}</code> {p}
                  </div>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Why did its key change?</h2>
      {keys.length < 2 ? (
        <div class="panel">Its key has not changed since it was first built.</div>
      ) : (
        <div class="panel">
          <form class="row" onSubmit={(e) => e.preventDefault()}>
            <KeySelect name="from" keys={keys} value={b!} set={setBefore} />
            <KeySelect name="to" keys={keys} value={a!} set={setAfter} />
          </form>
          {a === b ? (
            <p class="muted">Pick two different keys.</p>
          ) : !why ? (
            <Loading what="the difference" />
          ) : why instanceof Error ? (
            <Failed error={why} />
          ) : why.changes.length === 0 ? (
            <p class="muted">No key input differs.</p>
          ) : (
            <table class="why-table">
              <thead><tr><th>key input</th><th>before</th><th>after</th></tr></thead>
              <tbody>
                {why.changes.map((c) => (
                  <tr key={c.path}>
                    <td class="mono">{c.path}</td>
                    <td class="mono">{show(c.before)}</td>
                    <td class="mono">{show(c.after)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}
    </>
  );
}

function KeySelect({ name, keys, value, set }: { name: string; keys: string[]; value: string; set: (k: string) => void }) {
  return (
    <label>
      {name}{" "}
      <select value={value} onChange={(e) => set((e.target as HTMLSelectElement).value)}>
        {keys.map((k, i) => <option key={k} value={k}>{`${k.slice(0, 12)}… (${i === 0 ? "newest" : `${i} before`})`}</option>)}
      </select>
    </label>
  );
}

interface Node {
  label: string;
  rule: string;
  deps: string[];
  outcome?: string;
  build?: number;
}
const FILL: Record<string, string> = { executed: "#d7e4fb", cached: "#e9ebef", remote: "#e7ddf7", failed: "#f7d6d3" };
const STROKE: Record<string, string> = { executed: "#2f6fd6", cached: "#9aa3b2", remote: "#7a4fd0", failed: "#c2352b" };
/** More nodes than this are listed, not drawn. */
const MAX_DRAWN = 400;

export function GraphPage({ params }: { params: URLSearchParams }) {
  const label = params.get("label") ?? "";
  const data = useJson<{ nodes: Node[] }>(`/api/graph${label ? `?label=${encodeURIComponent(label)}` : ""}`);
  return (
    <>
      <h1>Target graph</h1>
      <form class="row" method="get" action="/graph">
        <input type="text" name="label" value={label} placeholder="//sqlite-cli:sealed (empty: every target)" />
        <button class="primary" type="submit">Show closure</button>
      </form>
      {!data ? <Loading what="the graph" /> : data instanceof Error ? <Failed error={data} /> : <GraphPicture nodes={data.nodes} />}
    </>
  );
}

function GraphPicture({ nodes }: { nodes: Node[] }) {
  if (nodes.length === 0) return <p class="muted">BUILD.ts declares no targets.</p>;
  if (nodes.length > MAX_DRAWN) {
    return (
      <div class="panel">
        {nodes.length} targets: too many to draw legibly; give a label to see its closure. First ones:{" "}
        {nodes.slice(0, 50).map((n) => <div key={n.label}><a href={`/targets/${labelPath(n.label)}`}>{n.label}</a></div>)}
      </div>
    );
  }
  // Rows by depth (a target sits below everything it depends on, as a build proceeds), each
  // row's nodes side by side in label order.
  const byLabel = new Map(nodes.map((n) => [n.label, n]));
  const depth = new Map<string, number>();
  const depthOf = (l: string, seen = new Set<string>()): number => {
    const known = depth.get(l);
    if (known !== undefined) return known;
    if (seen.has(l)) return 0;
    seen.add(l);
    const n = byLabel.get(l);
    const d = n ? Math.max(-1, ...n.deps.filter((x) => byLabel.has(x)).map((x) => depthOf(x, seen))) + 1 : 0;
    depth.set(l, d);
    return d;
  };
  const rows: Node[][] = [];
  for (const n of [...nodes].sort((a, b) => (a.label < b.label ? -1 : 1))) (rows[depthOf(n.label)] ??= []).push(n);
  const NW = 230;
  const NH = 42;
  const GX = 24;
  const GY = 44;
  const widest = Math.max(...rows.map((r) => r.length));
  const W = 40 + widest * (NW + GX) - GX;
  const pos = new Map<string, { x: number; y: number }>();
  rows.forEach((row, ri) => {
    const offset = (W - (row.length * (NW + GX) - GX)) / 2;
    row.forEach((n, ci) => pos.set(n.label, { x: offset + ci * (NW + GX), y: 20 + ri * (NH + GY) }));
  });
  const H = 40 + rows.length * (NH + GY) - GY;
  return (
    <>
      <div class="graph-wrap">
        <svg width={W} height={H} viewBox={`0 0 ${W} ${H}`} role="img" aria-label="target graph">
          <defs>
            <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
              <path d="M 0 0 L 10 5 L 0 10 z" fill="#9aa3b2" />
            </marker>
          </defs>
          {nodes.flatMap((n) =>
            n.deps
              .filter((d) => pos.has(d))
              .map((d) => {
                const from = pos.get(d)!;
                const to = pos.get(n.label)!;
                const x1 = from.x + NW / 2;
                const y1 = from.y + NH;
                const x2 = to.x + NW / 2;
                const y2 = to.y;
                const my = (y1 + y2) / 2;
                return <path key={`${d}->${n.label}`} d={`M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`} fill="none" stroke="#b9c0cc" stroke-width="1.3" marker-end="url(#arrow)" />;
              }),
          )}
          {nodes.map((n) => {
            const p = pos.get(n.label)!;
            const o = n.outcome ?? "";
            return (
              <a key={n.label} href={`/targets/${labelPath(n.label)}`}>
                <rect x={p.x} y={p.y} width={NW} height={NH} rx="7" fill={FILL[o] ?? "#fff"} stroke={STROKE[o] ?? "#ccd"} stroke-width="1.5" data-node={n.label} data-outcome={o} />
                <text x={p.x + 10} y={p.y + 17} fill="#1d2330" font-weight="600">{n.label.length > 30 ? "…" + n.label.slice(-29) : n.label}</text>
                <text x={p.x + 10} y={p.y + 33} fill="#5d6677">{`${n.rule}${o ? ` · ${o === "executed" ? "ran" : o}${n.build ? ` in #${n.build}` : ""}` : " · never built"}`}</text>
              </a>
            );
          })}
        </svg>
      </div>
      <div class="legend">
        <span><i style="background:#d7e4fb;border:1px solid #2f6fd6" />last ran</span>
        <span><i style="background:#e9ebef;border:1px solid #9aa3b2" />last served from the store</span>
        <span><i style="background:#e7ddf7;border:1px solid #7a4fd0" />last from the remote cache</span>
        <span><i style="background:#f7d6d3;border:1px solid #c2352b" />last failed</span>
        <span><i style="background:#fff;border:1px solid #ccd" />never built</span>
      </div>
    </>
  );
}
