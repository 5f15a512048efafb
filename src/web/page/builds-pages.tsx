// /builds (every build, newest first, a page at a time, with a plot of duration and cache hit
// rate) and /builds/<id> (its actions on a timeline with the critical path, and a table).
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Failed, Loading, useJson } from "./app.tsx";
import { fmtAgo, fmtMs, fmtWhen, labelPath } from "./format.ts";

type Counts = Record<"executed" | "cached" | "remote" | "failed" | "skipped", number>;
interface Build {
  id: number;
  command: string;
  targets: string[];
  status: string;
  startedAt: number;
  finishedAt?: number;
  counts?: Counts;
  criticalPath?: string[];
}
interface Action {
  label: string;
  key: string;
  status: "cached" | "executed" | "failed" | "remote";
  durationMs: number;
  startMs?: number;
  lane?: number;
  error?: string;
  rule?: string;
}

const duration = (b: Build) => (b.finishedAt === undefined ? undefined : b.finishedAt - b.startedAt);
/** Served from a cache (local or remote) among the actions that had to be decided. */
function hitRate(c: Counts | undefined): number | undefined {
  if (!c) return undefined;
  const total = c.executed + c.cached + c.remote + c.failed;
  return total === 0 ? undefined : (c.cached + c.remote) / total;
}

function Labels({ targets }: { targets: string[] }) {
  const shown = targets.slice(0, 3);
  return (
    <span>
      {shown.map((t, i) => (
        <span key={t}>
          {i > 0 && ", "}
          <a href={`/targets/${labelPath(t)}`}>{t}</a>
        </span>
      ))}
      {targets.length > shown.length && <span class="muted"> and {targets.length - shown.length} more</span>}
    </span>
  );
}

export function BuildsPage({ params }: { params: URLSearchParams }) {
  const before = params.get("before");
  const data = useJson<{ builds: Build[]; next?: number; total: number }>(`/api/builds?limit=50${before ? `&before=${encodeURIComponent(before)}` : ""}`);
  if (!data) return <Loading what="builds" />;
  if (data instanceof Error) return <Failed error={data} />;
  const { builds } = data;
  return (
    <>
      <h1>Builds</h1>
      <p class="sub">
        {data.total} build{data.total === 1 ? "" : "s"} in this store, newest first{before ? `, before #${before}` : ""}.
      </p>
      {builds.length === 0 ? (
        <div class="panel">No builds yet: run <code>wmb build</code> with this store.</div>
      ) : (
        <>
          <div class="panel">
            <BuildsPlot builds={[...builds].reverse()} />
          </div>
          <table>
            <thead>
              <tr>
                <th>#</th>
                <th>when</th>
                <th>targets</th>
                <th>status</th>
                <th class="num">executed</th>
                <th class="num">cached</th>
                <th class="num">remote</th>
                <th class="num">hit rate</th>
                <th class="num">duration</th>
              </tr>
            </thead>
            <tbody>
              {builds.map((b) => {
                const rate = hitRate(b.counts);
                return (
                  <tr key={b.id} data-build={b.id}>
                    <td>
                      <a href={`/builds/${b.id}`}>#{b.id}</a>
                      {b.command !== "build" && <span class="muted"> {b.command}</span>}
                    </td>
                    <td title={fmtWhen(b.startedAt)}>{fmtAgo(b.startedAt)}</td>
                    <td>
                      <Labels targets={b.targets} />
                    </td>
                    <td>
                      <span class={`badge ${b.status}`}>{b.status}</span>
                    </td>
                    <td class="num" data-count="executed">{b.counts?.executed ?? "–"}</td>
                    <td class="num" data-count="cached">{b.counts?.cached ?? "–"}</td>
                    <td class="num" data-count="remote">{b.counts?.remote ?? "–"}</td>
                    <td class="num">{rate === undefined ? "–" : `${Math.round(rate * 100)}%`}</td>
                    <td class="num">{fmtMs(duration(b))}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <div class="pager">
            {before && <a href="/builds">Newest</a>}
            {data.next !== undefined && <a href={`/builds?before=${data.next}`}>Older builds →</a>}
          </div>
        </>
      )}
    </>
  );
}

/** Duration as bars (left axis), cache hit rate as a line (right axis, 0-100%), oldest first. */
function BuildsPlot({ builds }: { builds: Build[] }) {
  const W = 1100;
  const H = 190;
  const pad = { l: 78, r: 44, t: 12, b: 24 };
  const maxMs = Math.max(1, ...builds.map((b) => duration(b) ?? 0));
  const step = (W - pad.l - pad.r) / builds.length;
  const y = (ms: number) => H - pad.b - (ms / maxMs) * (H - pad.t - pad.b);
  const yr = (r: number) => H - pad.b - r * (H - pad.t - pad.b);
  const points = builds
    .map((b, i) => [i, hitRate(b.counts)] as const)
    .filter((p): p is readonly [number, number] => p[1] !== undefined)
    .map(([i, r]) => `${pad.l + step * (i + 0.5)},${yr(r)}`);
  return (
    <>
      <svg class="plot" viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label="Duration and cache hit rate of the builds on this page">
        <line x1={pad.l} x2={W - pad.r} y1={H - pad.b} y2={H - pad.b} stroke="#ccd" />
        <text x={pad.l - 6} y={pad.t + 8} text-anchor="end" font-size="11" fill="#5d6677">{fmtMs(maxMs)}</text>
        <text x={pad.l - 6} y={H - pad.b} text-anchor="end" font-size="11" fill="#5d6677">0</text>
        <text x={W - pad.r + 6} y={pad.t + 8} font-size="11" fill="#5d6677">100%</text>
        <text x={W - pad.r + 6} y={H - pad.b} font-size="11" fill="#5d6677">0%</text>
        {builds.map((b, i) => {
          const d = duration(b) ?? 0;
          return (
            <rect key={b.id} x={pad.l + step * i + step * 0.15} width={Math.max(1, step * 0.7)} y={y(d)} height={H - pad.b - y(d)} fill={b.status === "failed" ? "#e39a93" : "#9fb4ee"}>
              <title>{`#${b.id}: ${fmtMs(d)}, ${b.status}`}</title>
            </rect>
          );
        })}
        {points.length > 1 && <polyline points={points.join(" ")} fill="none" stroke="#1f8a4c" stroke-width="2" />}
        {points.map((p) => {
          const [cx, cy] = p.split(",");
          return <circle key={p} cx={cx} cy={cy} r="2.5" fill="#1f8a4c" />;
        })}
      </svg>
      <div class="legend">
        <span><i style="background:#9fb4ee" />duration</span>
        <span><i style="background:#e39a93" />failed build</span>
        <span><i style="background:#1f8a4c" />cache hit rate</span>
      </div>
    </>
  );
}

const COLORS: Record<string, string> = { executed: "#2f6fd6", cached: "#9aa3b2", remote: "#7a4fd0", failed: "#c2352b" };
const PAGE = 100;

export function BuildPage({ id, params }: { id: number; params: URLSearchParams }) {
  const data = useJson<{ build: Build; actions: Action[] }>(`/api/builds/${id}`);
  const [filter, setFilter] = useState(params.get("status") ?? "all");
  const [sort, setSort] = useState<"start" | "slowest">("start");
  const [page, setPage] = useState(0);
  const critical = useMemo(() => new Set(data && !(data instanceof Error) ? (data.build.criticalPath ?? []) : []), [data]);
  if (!data) return <Loading what={`build #${id}`} />;
  if (data instanceof Error) return <Failed error={data} />;
  const { build, actions } = data;
  const c = build.counts;
  const rows = actions.filter((a) => filter === "all" || a.status === filter);
  if (sort === "slowest") rows.sort((a, b) => b.durationMs - a.durationMs);
  const pages = Math.max(1, Math.ceil(rows.length / PAGE));
  const shown = rows.slice(page * PAGE, page * PAGE + PAGE);
  const critMs = actions.filter((a) => critical.has(a.label)).reduce((s, a) => s + a.durationMs, 0);
  return (
    <>
      <h1>
        Build #{build.id} <span class={`badge ${build.status}`}>{build.status}</span>
      </h1>
      <p class="sub">
        <code>wmb {build.command}</code> <Labels targets={build.targets} /> · {fmtWhen(build.startedAt)} ·{" "}
        <a href={`/api/builds/${build.id}/trace.json`} download={`wmb-build-${build.id}.trace.json`}>
          download the Chrome trace
        </a>{" "}
        <span class="muted">(Perfetto, chrome://tracing)</span>
      </p>
      <div class="cards">
        <div class="card"><div class="k">duration</div><div class="v">{fmtMs(duration(build))}</div></div>
        <div class="card"><div class="k">executed</div><div class="v" data-count="executed">{c?.executed ?? "–"}</div></div>
        <div class="card"><div class="k">cached</div><div class="v" data-count="cached">{c?.cached ?? "–"}</div></div>
        <div class="card"><div class="k">remote</div><div class="v" data-count="remote">{c?.remote ?? "–"}</div></div>
        <div class="card"><div class="k">failed</div><div class="v" data-count="failed">{c?.failed ?? "–"}</div></div>
        <div class="card"><div class="k">hit rate</div><div class="v">{hitRate(c) === undefined ? "–" : `${Math.round(hitRate(c)! * 100)}%`}</div></div>
      </div>
      <h2>Timeline</h2>
      {actions.length === 0 ? (
        <div class="panel">Nothing ran or changed in this build: every action was served from the store as before.</div>
      ) : (
        <Timeline actions={actions} critical={critical} />
      )}
      {build.criticalPath && build.criticalPath.length > 0 && (
        <div class="panel">
          <strong>Critical path</strong> <span class="muted">({build.criticalPath.length} actions, {fmtMs(critMs)} of {fmtMs(duration(build))}): what decided this build's length.</span>
          <ol class="path">
            {build.criticalPath.map((l) => {
              const a = actions.find((x) => x.label === l);
              return (
                <li key={l}>
                  <a href={`/targets/${labelPath(l)}`}>{l}</a> <span class="muted">{a ? `${a.status === "executed" ? "ran" : a.status}, ${fmtMs(a.durationMs)}` : "served from the store"}</span>
                </li>
              );
            })}
          </ol>
        </div>
      )}
      <h2>Actions</h2>
      <div class="pager">
        <label>
          show{" "}
          <select value={filter} onChange={(e) => (setFilter((e.target as HTMLSelectElement).value), setPage(0))}>
            {["all", "executed", "failed", "cached", "remote"].map((s) => (
              <option key={s} value={s}>{s === "all" ? `all (${actions.length})` : `${s} (${actions.filter((a) => a.status === s).length})`}</option>
            ))}
          </select>
        </label>
        <label>
          order{" "}
          <select value={sort} onChange={(e) => setSort((e.target as HTMLSelectElement).value as "start" | "slowest")}>
            <option value="start">as they started</option>
            <option value="slowest">slowest first</option>
          </select>
        </label>
        <span class="muted">
          {rows.length === 0 ? "none" : `${page * PAGE + 1}–${Math.min(rows.length, page * PAGE + PAGE)} of ${rows.length}`}
        </span>
        <button disabled={page === 0} onClick={() => setPage(page - 1)}>← previous</button>
        <button disabled={page + 1 >= pages} onClick={() => setPage(page + 1)}>next →</button>
      </div>
      <table>
        <thead>
          <tr><th>action</th><th>rule</th><th>outcome</th><th class="num">start</th><th class="num">duration</th></tr>
        </thead>
        <tbody>
          {shown.map((a) => (
            <tr key={a.label} data-action={a.label}>
              <td>
                <a href={`/targets/${labelPath(a.label)}`}>{a.label}</a> {critical.has(a.label) && <span class="badge crit">critical</span>}
                {a.error && <div class="error mono">{a.error}</div>}
              </td>
              <td class="mono muted">{a.rule ?? ""}</td>
              <td><span class={`badge ${a.status}`}>{a.status === "executed" ? "ran" : a.status}</span></td>
              <td class="num">{fmtMs(a.startMs)}</td>
              <td class="num">{fmtMs(a.durationMs)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {c && actions.length < c.executed + c.cached + c.remote + c.failed && (
        <p class="muted">
          The other {c.executed + c.cached + c.remote + c.failed - actions.length} actions were served from the store exactly as in an earlier build; history records only what changed.
        </p>
      )}
    </>
  );
}

const LANE_H = 24;

/** One lane per parallel slot (as --profile draws them), drawn on a canvas: 20,000 actions are
 * 20,000 rectangles, not 20,000 DOM nodes. Hover names an action. */
function Timeline({ actions, critical }: { actions: Action[]; critical: Set<string> }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const [tip, setTip] = useState<{ x: number; y: number; a: Action } | undefined>();
  const timed = useMemo(() => actions.filter((a) => a.startMs !== undefined), [actions]);
  const lanes = useMemo(() => {
    const by: Action[][] = [];
    for (const a of timed) (by[a.lane ?? 0] ??= []).push(a);
    for (const l of by) l?.sort((x, y) => x.startMs! - y.startMs!);
    return by.map((l) => l ?? []);
  }, [timed]);
  const end = Math.max(1, ...timed.map((a) => a.startMs! + a.durationMs));
  // Zoomed, the canvas grows wider than the page and scrolls (a canvas stays under 32,000 px).
  const [zoom, setZoom] = useState(1);
  const width = Math.min(32_000, 1130 * zoom);
  const left = 8;
  const scale = (width - left * 2) / end;
  const height = lanes.length * LANE_H + 26;
  useEffect(() => {
    const cv = ref.current;
    if (!cv) return;
    const dpr = window.devicePixelRatio || 1;
    cv.width = width * dpr;
    cv.height = height * dpr;
    const g = cv.getContext("2d")!;
    g.scale(dpr, dpr);
    g.fillStyle = "#fff";
    g.fillRect(0, 0, width, height);
    // time axis
    g.fillStyle = "#5d6677";
    g.font = "11px system-ui, sans-serif";
    const ticks = Math.round(width / 140);
    g.fillStyle = "#e2e5eb";
    for (let i = 0; i <= ticks; i++) g.fillRect(left + ((width - left * 2) * i) / ticks, 0, 1, height - 20);
    g.fillStyle = "#5d6677";
    for (let i = 0; i <= ticks; i++) g.fillText(fmtMs((end * i) / ticks), Math.min(left + ((width - left * 2) * i) / ticks + 2, width - 50), height - 6);
    g.fillStyle = "#fff";
    lanes.forEach((lane, li) => {
      const y = li * LANE_H + 2;
      for (const a of lane) {
        const x = left + a.startMs! * scale;
        const w = Math.max(1, a.durationMs * scale);
        g.fillStyle = COLORS[a.status] ?? "#999";
        g.fillRect(x, y, w, LANE_H - 4);
        if (critical.has(a.label)) {
          g.strokeStyle = "#e8a317";
          g.lineWidth = 2;
          g.strokeRect(x + 1, y + 1, Math.max(1, w - 2), LANE_H - 6);
        }
        if (w > 60) {
          g.fillStyle = "#fff";
          g.fillText(a.label.replace(/^\/\//, "").slice(0, Math.floor(w / 6.5)), x + 4, y + 14);
        }
      }
    });
  }, [lanes, critical, end, height, width]);
  const onMove = (e: MouseEvent) => {
    const rect = (e.target as HTMLCanvasElement).getBoundingClientRect();
    const x = e.clientX - rect.left;
    const y = e.clientY - rect.top;
    const lane = lanes[Math.floor(y / LANE_H)];
    const t = (x - left) / scale;
    // Binary search for the last action starting before t in that lane.
    let lo = 0;
    let hi = (lane?.length ?? 0) - 1;
    let found: Action | undefined;
    while (lane && lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (lane[mid]!.startMs! <= t) (found = lane[mid]), (lo = mid + 1);
      else hi = mid - 1;
    }
    if (found && t <= found.startMs! + Math.max(found.durationMs, 2 / scale)) setTip({ x: x + 12, y: y + 12, a: found });
    else setTip(undefined);
  };
  return (
    <>
      <div class="timeline-wrap">
        <canvas ref={ref} style={{ width: `${width}px`, height: `${height}px` }} onMouseMove={onMove} onMouseLeave={() => setTip(undefined)} data-actions={timed.length} />
        {tip && (
          <div class="tip" style={{ left: `${tip.x}px`, top: `${tip.y}px` }}>
            {tip.a.label} · {tip.a.status} · {fmtMs(tip.a.durationMs)} from {fmtMs(tip.a.startMs)}
            {critical.has(tip.a.label) ? " · critical path" : ""}
          </div>
        )}
      </div>
      <div class="legend">
        <span><i style="background:#2f6fd6" />ran</span>
        <span><i style="background:#9aa3b2" />cached</span>
        <span><i style="background:#7a4fd0" />remote</span>
        <span><i style="background:#c2352b" />failed</span>
        <span><i style="background:#fff;border:2px solid #e8a317" />critical path</span>
        <span>{lanes.length} lane{lanes.length === 1 ? "" : "s"}, {timed.length} actions</span>
        <span>
          zoom <button onClick={() => setZoom(Math.max(1, zoom / 2))} disabled={zoom === 1}>−</button> {zoom}× <button onClick={() => setZoom(Math.min(64, zoom * 2))} disabled={width >= 32_000}>+</button>
        </span>
      </div>
    </>
  );
}
