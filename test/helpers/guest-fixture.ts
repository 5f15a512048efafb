// A small real WASI 0.2 component for the runtime tests, without waiting for the SQLite build:
// test/fixtures/guest.c compiled by @yowasp/clang to wasm32-wasip1, wrapped with jco's
// componentNew and the preview1 command adapter, then transpiled by src/run/transpile.ts.
// Built once per C source (+ toolchain versions) and cached in testCacheDir(), so parallel
// suites and later runs reuse it; each step lands by atomic rename.
import { testCacheDir } from "./test-cache.ts";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as tar from "tar";
import { componentNew } from "@bytecodealliance/jco-transpile/wasm-tools";
import { commands } from "@yowasp/clang";
import { TRANSPILER_ID, transpileComponent } from "../../src/run/transpile.ts";

const GUEST_C = fileURLToPath(new URL("../fixtures/guest.c", import.meta.url));
/** The preview1 command adapter comes from this jco release's npm tarball. */
const JCO_FOR_ADAPTER = "@bytecodealliance/jco@1.25.2";
const ADAPTER_PATH = "package/lib/wasi_snapshot_preview1.command.wasm";

export interface GuestFixture {
  /** The wasm32-wasip1 core module. */
  coreWasm: string;
  /** The WASI 0.2 component. */
  componentWasm: string;
  /** Output of transpileComponent, ready for runMachine's jsDir. */
  jsDir: string;
}

function clangVersion(): string {
  const require = createRequire(import.meta.url);
  const entry = require.resolve("@yowasp/clang");
  return (JSON.parse(readFileSync(join(dirname(entry), "..", "package.json"), "utf8")) as { version: string }).version;
}

/** Write `bytes` to `dest` atomically (temp file + rename), so concurrent builders never see half a file. */
function writeAtomic(dest: string, bytes: Uint8Array): void {
  const tmp = `${dest}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, dest);
}

/** The preview1 command adapter, fetched once with `npm pack` and cached. */
export async function commandAdapter(): Promise<Uint8Array> {
  const cacheDir = testCacheDir();
  mkdirSync(cacheDir, { recursive: true });
  const cached = join(cacheDir, `${JCO_FOR_ADAPTER.replace(/[^A-Za-z0-9.-]/g, "_")}.command-adapter.wasm`);
  if (existsSync(cached)) return readFileSync(cached);
  const work = mkdtempSync(join(tmpdir(), "wmb-jco-pack-"));
  try {
    const out = execFileSync("npm", ["pack", JCO_FOR_ADAPTER, "--silent", "--pack-destination", work], {
      encoding: "utf8",
      cwd: work,
    });
    const tgz = join(work, out.trim().split("\n").pop()!);
    await tar.x({ file: tgz, cwd: work, filter: (p) => p === ADAPTER_PATH });
    const bytes = readFileSync(join(work, ADAPTER_PATH));
    writeAtomic(cached, bytes);
    return bytes;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Build (or reuse) the guest component and its transpiled JS. */
export async function guestFixture(): Promise<GuestFixture> {
  const source = readFileSync(GUEST_C);
  const key = createHash("sha256")
    .update(source)
    .update(`\0clang ${clangVersion()}\0adapter ${JCO_FOR_ADAPTER}\0${TRANSPILER_ID}`)
    .digest("hex")
    .slice(0, 24);
  const dir = join(testCacheDir(), `guest-${key}`);
  const fixture: GuestFixture = {
    coreWasm: join(dir, "guest.wasm"),
    componentWasm: join(dir, "guest.component.wasm"),
    jsDir: join(dir, "js"),
  };
  if (existsSync(join(dir, "complete"))) return fixture;

  const { "guest.wasm": core } = (await commands.clang(["--target=wasm32-wasip1", "-O2", "-o", "guest.wasm", "guest.c"], {
    "guest.c": source,
  })) as { "guest.wasm": Uint8Array };
  const component = await componentNew(core, [["wasi_snapshot_preview1", await commandAdapter()]]);

  // Assemble in a private directory and rename it into place: a concurrent builder either
  // wins the rename or finds the finished directory.
  mkdirSync(dirname(dir), { recursive: true });
  const staging = mkdtempSync(`${dir}.staging-`);
  writeFileSync(join(staging, "guest.wasm"), core);
  writeFileSync(join(staging, "guest.component.wasm"), component);
  await transpileComponent(component, join(staging, "js"));
  writeFileSync(join(staging, "complete"), "");
  try {
    renameSync(staging, dir);
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    if (!existsSync(join(dir, "complete"))) throw e;
  }
  return fixture;
}
