// The page: one bundle that renders whichever page the URL names, from the server's /api (or,
// exported, from the machine.json next to it). It knows nothing of SQL or file paths.
import { render } from "preact";
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { BuildPage, BuildsPage } from "./builds-pages.tsx";
import { GraphPage, TargetPage } from "./target-pages.tsx";
import { MachinePage, MachinesPage, RunPage } from "./machine-pages.tsx";

export interface PageConfig {
  mode: "served" | "static";
  assets: string;
  machine?: { manifest: string; blobs: string; identity: string };
}

export const config: PageConfig = JSON.parse(document.getElementById("wmb-config")!.textContent!);

/** GET a JSON document; a non-2xx answer throws its `error` sentence. */
export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  const body = await res.json().catch(() => ({ error: `${url} answered ${res.status}` }));
  if (!res.ok) throw new Error((body as { error?: string }).error ?? `${url} answered ${res.status}`);
  return body as T;
}

/** Data for a page: undefined while loading, an Error when it failed. */
export function useJson<T>(url: string | undefined): T | Error | undefined {
  const [v, setV] = useState<T | Error | undefined>(undefined);
  useEffect(() => {
    if (!url) return;
    setV(undefined);
    let live = true;
    getJson<T>(url).then(
      (x) => live && setV(x),
      (e: Error) => live && setV(e),
    );
    return () => {
      live = false;
    };
  }, [url]);
  return v;
}

export function Loading({ what }: { what: string }) {
  return <p class="muted">Loading {what}…</p>;
}

export function Failed({ error }: { error: Error }) {
  return <p class="error">{error.message}</p>;
}

function Layout({ section, children }: { section: string; children: ComponentChildren }) {
  const link = (href: string, name: string, key: string) => (
    <a href={href} class={section === key ? "active" : ""}>
      {name}
    </a>
  );
  return (
    <>
      <header class="top">
        <div class="inner">
          <a class="brand" href={config.mode === "served" ? "/builds" : "./index.html"}>
            wmb
          </a>
          {config.mode === "served" && (
            <nav>
              {link("/builds", "Builds", "builds")}
              {link("/graph", "Graph", "graph")}
              {link("/machines", "Machines", "machines")}
            </nav>
          )}
        </div>
      </header>
      <main>{children}</main>
    </>
  );
}

function App() {
  const params = new URLSearchParams(location.search);
  if (config.mode === "static") {
    return (
      <Layout section="machines">
        <RunPage identity={config.machine!.identity} params={params} />
      </Layout>
    );
  }
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const [a, b, c] = parts;
  if (a === "builds" && b) return <Layout section="builds"><BuildPage id={Number(b)} params={params} /></Layout>;
  if (a === "targets" && b) return <Layout section="graph"><TargetPage label={b.startsWith("//") ? b : `//${b}`} params={params} /></Layout>;
  if (a === "graph") return <Layout section="graph"><GraphPage params={params} /></Layout>;
  if (a === "machines" && b && c === "run") return <Layout section="machines"><RunPage identity={b} params={params} /></Layout>;
  if (a === "machines" && b) return <Layout section="machines"><MachinePage identity={b} /></Layout>;
  if (a === "machines") return <Layout section="machines"><MachinesPage /></Layout>;
  return <Layout section="builds"><BuildsPage params={params} /></Layout>;
}

render(<App />, document.getElementById("app")!);
