// Where tests keep what is worth keeping across runs (compiled guest programs, the command
// adapter): the system temp directory's wmb-test-cache, not the run's own TMPDIR (global-setup
// points TMPDIR at a directory it removes, and exports this one as WMB_TEST_CACHE first).
import { tmpdir } from "node:os";
import { join } from "node:path";

export function testCacheDir(): string {
  return process.env.WMB_TEST_CACHE ?? join(tmpdir(), "wmb-test-cache");
}
