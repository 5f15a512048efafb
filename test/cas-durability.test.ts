// A build's new blobs are made durable before the commit whose rows name them (store/cas.ts's
// Durability, store/sql.ts's gathered commits), and at once outside a build.
import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store } from "../store/store.ts";

async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "wmb-durability-"));
  const store = await Store.open(join(dir, "store"));
  try {
    await fn(store);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("blob durability", () => {
  it("outside a build, a blob is durable when admitted", async () => {
    await withStore(async (store) => {
      await store.putBytes(new TextEncoder().encode("outside\n"));
      expect(store.cas.unsynced).toBe(0);
    });
  });

  it("during a build, a new blob is at its name at once and synced by the commit that names it", async () => {
    await withStore(async (store) => {
      const gathered = store.gatherWrites();
      const { digest } = await store.putBytes(new TextEncoder().encode("inside\n"));
      expect(readFileSync(store.cas.path(digest), "utf8")).toBe("inside\n");
      expect(store.cas.unsynced).toBe(1);
      store.commit();
      expect(store.cas.unsynced).toBe(0);
      // The gathered commit on its timer syncs too.
      await store.putBytes(new TextEncoder().encode("timer\n"));
      expect(store.cas.unsynced).toBe(1);
      for (let i = 0; i < 1000 && store.cas.unsynced > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(store.cas.unsynced).toBe(0);
      gathered.stop();
      await store.putBytes(new TextEncoder().encode("after\n"));
      expect(store.cas.unsynced).toBe(0);
    });
  });
});
