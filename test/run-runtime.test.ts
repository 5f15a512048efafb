// runMachine with a real WASI 0.2 component (test/fixtures/guest.c, see helpers/guest-fixture.ts):
// the machine sees exactly its capabilities, and what an attacker tries from inside fails
// with an error while the host stays untouched.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { extractRootfs, removeExtractedRootfs } from "../src/run/rootfs-extract.ts";
import { RUNNER_INTERFACES, runMachine, type WritableMount, type RunTiming, type StdinSource } from "../src/run/runtime.ts";
import { MANIFEST_FILE, transpileComponent } from "../src/run/transpile.ts";
import { WmbError } from "../src/errors.ts";
import { guestFixture, type GuestFixture } from "./helpers/guest-fixture.ts";
import * as tar from "tar";

let fixture: GuestFixture;
let base: string;
let rootfsDir: string;
/** A directory outside every mount, standing for "the rest of the host". */
let hostDir: string;
const SECRET = "host secret, never readable by the guest\n";

beforeAll(async () => {
  fixture = await guestFixture();
  base = mkdtempSync(join(tmpdir(), "wmb-run-test-"));
  const src = join(base, "rootfs-src");
  mkdirSync(join(src, "etc"), { recursive: true });
  mkdirSync(join(src, "db"));
  writeFileSync(join(src, "etc", "motd"), "hello from the rootfs");
  writeFileSync(join(src, ".sqliterc"), ".mode box");
  const tarFile = join(base, "rootfs.tar");
  await tar.c({ file: tarFile, cwd: src, portable: true }, ["."]);
  rootfsDir = join(base, "rootfs");
  await extractRootfs(readFileSync(tarFile), rootfsDir);
  hostDir = join(base, "host");
  mkdirSync(hostDir);
  writeFileSync(join(hostDir, "secret.txt"), SECRET);
}, 300_000);

afterAll(async () => {
  if (base) {
    await removeExtractedRootfs(rootfsDir);
    await removeExtractedRootfs(base);
  }
});

function freshDb(): string {
  return mkdtempSync(join(base, "db-"));
}

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
  timing?: RunTiming;
}

/** Every interface the guest fixture imports, unversioned: what a spec binding all of them grants. */
function allImports(jsDir = fixture.jsDir): string[] {
  return (JSON.parse(readFileSync(join(jsDir, MANIFEST_FILE), "utf8")) as { imports: string[] }).imports.map((n) => n.replace(/@.*/, ""));
}

async function run(
  args: string[],
  opts: { db?: string; mounts?: WritableMount[]; interfaces?: string[]; stdin?: StdinSource; signal?: AbortSignal; jsDir?: string } = {},
): Promise<Outcome> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on("data", (b: Buffer) => out.push(b));
  stderr.on("data", (b: Buffer) => err.push(b));
  let timing: RunTiming | undefined;
  const code = await runMachine({
    jsDir: opts.jsDir ?? fixture.jsDir,
    rootfsDir,
    mounts: opts.mounts ?? [{ guest: "/db", host: opts.db ?? freshDb() }],
    interfaces: opts.interfaces ?? allImports(),
    argv0: "guest-machine",
    args,
    stdin: opts.stdin ?? "ignore",
    stdout,
    stderr,
    signal: opts.signal,
    onTiming: (t) => (timing = t),
  });
  return { code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), timing };
}

function lines(o: Outcome): string[] {
  return o.stdout.split("\n").filter((l) => l !== "");
}

/** Every host file under `dir` with its content, to prove nothing changed. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out[relative(dir, p)] = readFileSync(p, "utf8");
      else out[relative(dir, p)] = "(link)";
    }
  };
  walk(dir);
  return out;
}

describe("runMachine: capabilities", () => {
  it("reads files of the rootfs", async () => {
    const o = await run(["cat", "/etc/motd", "cat", "/.sqliterc", "ls", "/"]);
    const [motd, rc, ls] = lines(o);
    expect([motd, rc]).toEqual(["CAT /etc/motd: hello from the rootfs", "CAT /.sqliterc: .mode box"]);
    expect(ls!.split(" ").slice(2).sort()).toEqual([".", "..", ".sqliterc", "db", "etc"]);
    expect(o.code).toBe(0);
    console.log(`guest run timing: start ${o.timing!.startMs.toFixed(0)} ms, total ${o.timing!.totalMs.toFixed(0)} ms`);
  });

  it("writes to /db persist across runs and land in the host db directory", async () => {
    const db = freshDb();
    const first = await run(["write", "/db/note", "persisted", "mkdir", "/db/sub", "write", "/db/sub/x", "y"], { db });
    expect(first.code).toBe(0);
    const second = await run(["cat", "/db/note", "cat", "/db/sub/x", "append", "/db/note", "+more", "cat", "/db/note"], { db });
    expect(lines(second)).toEqual(["CAT /db/note: persisted", "CAT /db/sub/x: y", "OK append /db/note", "CAT /db/note: persisted+more"]);
    expect(readFileSync(join(db, "note"), "utf8")).toBe("persisted+more");
    // Renames and deletes inside /db work too.
    const third = await run(["rename", "/db/note", "/db/renamed", "rm", "/db/sub/x", "rmdir", "/db/sub", "ls", "/db"], { db });
    expect(lines(third)).toEqual(["OK rename /db/renamed", "OK rm /db/sub/x", "OK rmdir /db/sub", "LS /db: . .. renamed"]);
    expect(readdirSync(db)).toEqual(["renamed"]);
  });

  it("the environment is exactly HOME=/, argv[0] is the name it is given, cwd is /", async () => {
    process.env.WMB_TEST_SHOULD_NOT_LEAK = "leak";
    try {
      const o = await run(["env", "args", "cwd"]);
      expect(lines(o)).toEqual(["ENV HOME=/", "ENV-END", "ARG 0 guest-machine", "ARG 1 env", "ARG 2 args", "ARG 3 cwd", "CWD /"]);
    } finally {
      delete process.env.WMB_TEST_SHOULD_NOT_LEAK;
    }
  });

  it("args reach the guest verbatim (spaces, quotes, unicode)", async () => {
    const db = freshDb();
    const text = `select 'it''s' as "x y"; -- ü ✓`;
    await run(["write", "/db/t", text], { db });
    expect(readFileSync(join(db, "t"), "utf8")).toBe(text);
  });

  it("stdin is readable: a string, a byte array, a stream; pipes are not terminals", async () => {
    const a = await run(["isatty", "stdin"], { stdin: Buffer.from("select 1;\n") });
    expect(lines(a)).toEqual(["TTY 0 0 0", "STDIN: select 1;", "STDIN-BYTES 10"]);
    const big = "x".repeat(200_000);
    const b = await run(["stdin"], { stdin: Readable.from([Buffer.from(big.slice(0, 70_000)), Buffer.from(big.slice(70_000))]) });
    expect(lines(b)).toContain("STDIN-BYTES 200000");
    const c = await run(["stdin"], { stdin: new Uint8Array([104, 105]) });
    expect(lines(c)).toEqual(["STDIN: hi", "STDIN-BYTES 2"]);
    const d = await run(["stdin"], { stdin: "ignore" });
    expect(lines(d)).toEqual(["STDIN: ", "STDIN-BYTES 0"]);
  });

  it("stderr is passed through", async () => {
    const o = await run(["stderr", "to the error stream"]);
    expect(o.stderr).toBe("to the error stream\n");
  });
});

describe("runMachine: exit codes", () => {
  it("0 on success, 1 on exit(n != 0) (WASI 0.2 exit carries only ok/err), 134 on a trap", async () => {
    expect((await run(["exit", "0"])).code).toBe(0);
    expect((await run(["exit", "3"])).code).toBe(1);
    expect((await run(["cat", "/nonexistent"])).code).toBe(1);
    const trap = await run(["trap"]);
    expect(trap.code).toBe(134);
    expect(trap.stderr).toMatch(/wmb run: the guest trapped/);
  });

  it("an aborted run kills the guest (here: blocked on a stdin that never ends)", async () => {
    const ac = new AbortController();
    const stdin = new PassThrough();
    setTimeout(() => ac.abort(), 500);
    const o = await run(["stdin"], { stdin, signal: ac.signal });
    expect(o.code).toBe(143);
  });
});

describe("runMachine: what an attacker tries from inside", () => {
  it("cannot write anywhere in the read-only rootfs", async () => {
    const db = freshDb();
    const before = snapshot(rootfsDir);
    const o = await run(
      [
        "write", "/evil", "x",
        "write", "/etc/motd", "overwritten",
        "append", "/etc/motd", "appended",
        "mkdir", "/newdir",
        "rm", "/etc/motd",
        "rmdir", "/db",
        "rmdir", "/db/.",
        "rename", "/db", "/db/x",
        "rename", "/etc/motd", "/db/stolen",
        "link", "/etc/motd", "/db/hardlink",
        "symlink", "motd", "/etc/alias",
        "write", "/db/../evil", "x",
      ],
      { db },
    );
    expect(lines(o)).toEqual([
      "ERR write /evil: Read-only file system",
      "ERR write /etc/motd: Read-only file system",
      "ERR append /etc/motd: Read-only file system",
      "ERR mkdir /newdir: Read-only file system",
      "ERR rm /etc/motd: Read-only file system",
      "ERR rmdir /db: Invalid argument",
      "ERR rmdir /db/.: Invalid argument",
      "ERR rename /db/x: Invalid argument",
      "ERR rename /db/stolen: Read-only file system",
      "ERR link /db/hardlink: Read-only file system",
      "ERR symlink /etc/alias: Read-only file system",
      "ERR write /db/../evil: Operation not permitted",
    ]);
    expect(snapshot(rootfsDir)).toEqual(before);
    expect(readdirSync(db)).toEqual([]);
    expect(existsSync(db)).toBe(true);
  });

  it("cannot climb out of a mount with ..", async () => {
    const rel = relative("/", join(hostDir, "secret.txt"));
    const up = "../".repeat(12);
    const o = await run([
      "cat", `/../../${rel}`,
      "cat", `/db/../../${rel}`,
      "cat", `${up}${rel}`,
      "cat", `/db/${up}${rel}`,
      "ls", "/..",
      "ls", "/db/..",
      "write", `/db/${up}${relative("/", hostDir)}/planted`, "x",
    ]);
    const out = lines(o);
    expect(out).toHaveLength(7);
    for (const l of out) expect(l).toMatch(/^ERR .*: Operation not permitted$/);
    expect(o.stdout).not.toContain("host secret");
    expect(existsSync(join(hostDir, "planted"))).toBe(false);
  });

  it("absolute host paths resolve inside the rootfs, never on the host", async () => {
    const hostname = existsSync("/etc/hostname") ? readFileSync("/etc/hostname", "utf8") : undefined;
    const secret = join(hostDir, "secret.txt");
    const o = await run(["cat", "/etc/hostname", "cat", "/etc/passwd", "cat", secret, "write", secret, "pwned", "write", "/tmp/x", "y", "ls", hostDir]);
    expect(lines(o)).toEqual([
      "ERR cat /etc/hostname: No such file or directory",
      "ERR cat /etc/passwd: No such file or directory",
      `ERR cat ${secret}: No such file or directory`,
      `ERR write ${secret}: Read-only file system`,
      "ERR write /tmp/x: Read-only file system",
      `ERR ls ${hostDir}: No such file or directory`,
    ]);
    expect(readFileSync(secret, "utf8")).toBe(SECRET);
    if (hostname !== undefined) expect(readFileSync("/etc/hostname", "utf8")).toBe(hostname);
    expect(existsSync("/tmp/x") && readFileSync("/tmp/x", "utf8") === "y").toBe(false);
  });

  it("cannot follow symlinks planted in the db directory out of it", async () => {
    const db = freshDb();
    const secret = join(hostDir, "secret.txt");
    symlinkSync(secret, join(db, "abs-link"));
    symlinkSync(relative(db, secret), join(db, "rel-link"));
    symlinkSync(hostDir, join(db, "dir-link"));
    symlinkSync(relative(db, hostDir), join(db, "rel-dir-link"));
    symlinkSync("/", join(db, "root-link"));
    mkdirSync(join(db, "sub"));
    symlinkSync("../../host/secret.txt", join(db, "sub", "nested-link"));
    const o = await run(
      [
        "cat", "/db/abs-link",
        "cat", "/db/rel-link",
        "cat", "/db/dir-link/secret.txt",
        "cat", "/db/rel-dir-link/secret.txt",
        "cat", `/db/root-link${secret}`,
        "cat", "/db/sub/nested-link",
        "write", "/db/abs-link", "pwned",
        "write", "/db/rel-link", "pwned",
        "write", "/db/dir-link/planted", "pwned",
        "ls", "/db/dir-link",
        "stat", "/db/abs-link",
        "rename", "/db/rel-dir-link/secret.txt", "/db/moved",
      ],
      { db },
    );
    const out = lines(o);
    expect(out).toHaveLength(12);
    for (const l of out) expect(l).toMatch(/^ERR .*: Operation not permitted$/);
    expect(o.stdout).not.toContain("host secret");
    expect(readFileSync(secret, "utf8")).toBe(SECRET);
    expect(existsSync(join(hostDir, "planted"))).toBe(false);
  });

  it("cannot create symlinks that point out (but may link inside /db)", async () => {
    const db = freshDb();
    const o = await run(
      [
        "symlink", "/etc/passwd", "/db/abs",
        "symlink", "../../../../etc/passwd", "/db/up",
        "symlink", "sub/../../x", "/db/sneaky",
        "write", "/db/target", "ok",
        "symlink", "target", "/db/alias",
        "cat", "/db/alias",
        "readlink", "/db/alias",
      ],
      { db },
    );
    expect(lines(o)).toEqual([
      "ERR symlink /db/abs: Operation not permitted",
      "ERR symlink /db/up: Operation not permitted",
      "ERR symlink /db/sneaky: Operation not permitted",
      "OK write /db/target",
      "OK symlink /db/alias",
      "CAT /db/alias: ok",
      "LINK /db/alias: target",
    ]);
    expect(readdirSync(db).sort()).toEqual(["alias", "target"]);
  });
});

describe("runMachine: refusals before anything runs", () => {
  it("a component importing wasi:sockets is refused with a clear error", async () => {
    const jsDir = join(base, "fake-sockets-component");
    mkdirSync(jsDir);
    const manifest = JSON.parse(readFileSync(join(fixture.jsDir, MANIFEST_FILE), "utf8")) as { imports: string[] };
    manifest.imports.push("wasi:sockets/tcp@0.2.3", "wasi:http/outgoing-handler@0.2.3");
    writeFileSync(join(jsDir, MANIFEST_FILE), JSON.stringify(manifest));
    const err = await run(["env"], { jsDir }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WmbError);
    expect((err as Error).message).toMatch(/imports wasi:sockets\/tcp@0.2.3, wasi:http\/outgoing-handler@0.2.3, which this machine's capabilities do not grant/);
  });

  const machine = (mounts: WritableMount[], jsDir = fixture.jsDir) => runMachine({ jsDir, rootfsDir, mounts, interfaces: allImports(), argv0: "m", args: [] });

  it("a writable directory inside the rootfs (or around it), or overlapping another, is refused", async () => {
    await expect(machine([{ guest: "/db", host: join(rootfsDir, "db") }])).rejects.toThrow(/overlap/);
    await expect(machine([{ guest: "/db", host: base }])).rejects.toThrow(/overlap/);
    const a = freshDb();
    mkdirSync(join(a, "inner"));
    await expect(machine([{ guest: "/db", host: a }, { guest: "/other", host: join(a, "inner") }])).rejects.toThrow(/overlap/);
  });

  it("missing directories are refused", async () => {
    await expect(machine([{ guest: "/db", host: join(base, "nope") }])).rejects.toThrow(/does not exist/);
    await expect(machine([{ guest: "/db", host: freshDb() }], join(base, "nope"))).rejects.toThrow(/does not exist/);
  });

  it("an import the spec does not grant is refused, even one the runner implements", async () => {
    const granted = allImports().filter((i) => i !== "wasi:cli/environment");
    expect(granted.length).toBe(allImports().length - 1); // the guest really imports it
    const err = await run(["env"], { interfaces: granted }).then(() => undefined, (e: unknown) => e);
    expect((err as Error).message).toMatch(/imports wasi:cli\/environment, which this machine's capabilities do not grant/);
  });

  it("the runner implements every interface the host may grant, and refuses a grant it does not implement", async () => {
    const all = await run(["args"], { interfaces: [...RUNNER_INTERFACES] });
    expect(lines(all)).toEqual(["ARG 0 guest-machine", "ARG 1 args"]);
    const err = await run(["args"], { interfaces: [...allImports(), "wasi:sockets/tcp"] }).then(() => undefined, (e: unknown) => e);
    expect((err as Error).message).toMatch(/this runner implements no wasi:sockets\/tcp, which the machine is granted/);
  });
});

describe("runMachine: writable paths are exactly the granted ones", () => {
  it("with none granted, nothing is writable: not /db, not /, not /tmp", async () => {
    const o = await run(["write", "/db/x", "data", "write", "/x", "data", "write", "/tmp/x", "data", "ls", "/"], { mounts: [] });
    expect(o.stdout).not.toMatch(/^OK write/m);
    expect(o.stdout.match(/^ERR write/gm)).toHaveLength(3);
    expect(o.stdout).toMatch(/^LS \/: /m); // the guest ran and reads its rootfs
  });

  it("several granted paths get one host directory each", async () => {
    const [a, b] = [freshDb(), freshDb()];
    mkdirSync(join(rootfsDir, "etc", "spool"), { recursive: true });
    const o = await run(["write", "/db/one", "1", "write", "/etc/spool/two", "2"], { mounts: [{ guest: "/db", host: a }, { guest: "/etc/spool", host: b }] });
    expect(lines(o)).toEqual(["OK write /db/one", "OK write /etc/spool/two"]);
    expect(readFileSync(join(a, "one"), "utf8")).toBe("1");
    expect(readFileSync(join(b, "two"), "utf8")).toBe("2");
  });
});

describe("transpileComponent", () => {
  it("is deterministic and writes a manifest", async () => {
    const component = readFileSync(fixture.componentWasm);
    const a = await transpileComponent(component);
    const t0 = performance.now();
    const b = await transpileComponent(component);
    console.log(`transpile of a ${component.length}-byte component: ${(performance.now() - t0).toFixed(0)} ms`);
    expect(Object.keys(a.files)).toEqual(Object.keys(b.files));
    for (const k of Object.keys(a.files)) expect(Buffer.from(a.files[k]!).equals(Buffer.from(b.files[k]!))).toBe(true);
    expect(a.manifest.entry).toBe("component.cjs");
    expect(a.manifest.imports).toContain("wasi:filesystem/preopens");
    expect(a.manifest.imports.some((i) => i.startsWith("wasi:sockets"))).toBe(false);
  });
});
