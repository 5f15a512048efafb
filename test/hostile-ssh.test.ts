// The ssh transport against peers that do not play fair, with a real OpenSSH server started here
// (test/helpers/sshd.ts): a remote whose failure text and hello carry escape sequences, guest
// arguments built to break out of a remote shell's quoting, a key that authorized_keys restricts
// to `wmb remote serve --confine DIR` whose holder asks for other directories, and a client that
// names a spec of a gigabyte.
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO, WMB, wmb, type CliResult } from "./helpers/cli.ts";
import { sqliteFixture, type SqliteFixture } from "./helpers/sqlite-fixture.ts";
import { removeSshdDir, sshdInstalled, startSshd, type TestSshd } from "./helpers/sshd.ts";
import { FrameReader, FrameWriter, MAGIC, parseJson } from "../src/remote/ssh/frames.ts";
import { PROTOCOL } from "../src/remote/ssh/protocol.ts";
import { Store } from "../store/store.ts";

const hasScript = existsSync("/usr/bin/script");
/** Any byte a terminal acts on: C0 but newline, DEL, C1. */
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

function oneSentence(r: CliResult): string {
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  return lines[0]!;
}

/** A command line for `script`, which gives it a terminal. */
const shellLine = (argv: string[]) => argv.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(" ");

describe.skipIf(!sshdInstalled)("ssh peers that do not play fair", () => {
  let fx: SqliteFixture;
  let sshd: TestSshd;
  let remoteWmb: string;
  let stores = 0;
  const remoteStore = () => join(sshd.remoteHome, `store-${++stores}`);
  const env = (extra: Record<string, string> = {}) => ({ WMB_SSH_COMMAND: sshd.sshCommand(), SSH_AUTH_SOCK: "", ...extra });
  /** An executable file in the remote HOME's bin/. */
  const remoteScript = (name: string, text: string) => {
    const path = join(sshd.remoteHome, "bin", name);
    writeFileSync(path, text, { mode: 0o755 });
    return path;
  };

  beforeAll(async () => {
    [fx, sshd] = await Promise.all([sqliteFixture(), startSshd()]);
    mkdirSync(join(sshd.remoteHome, "bin"));
    remoteWmb = remoteScript("wmb", `#!/bin/sh\nexec ${process.execPath} ${WMB} "$@"\n`);
  }, 900_000);
  afterAll(async () => {
    if (!sshd) return;
    await sshd.stop();
    removeSshdDir(sshd);
  });

  describe("a remote's text reaches the terminal without escape sequences", () => {
    const ESCAPES = String.raw`\033]0;owned\007\033[2J\033[1;1H`;

    it("a remote command that fails before the protocol: its stderr in the sentence, one line", async () => {
      const chatty = remoteScript("wmb-chatty", `#!/bin/sh\nprintf '${ESCAPES}no wmb here\\rerror: forged\\n' >&2\nexit 1\n`);
      const r = await wmb(fx.workspace, ["remote", "check", sshd.url, "--remote-wmb", chatty], { env: env() });
      expect(r.code).toBe(4);
      expect(oneSentence(r)).toMatch(/exited with 1 before speaking wmb's protocol \(no wmb here error: forged\)/);
      expect(r.stderr).not.toMatch(CONTROL);
    });

    it("a remote that speaks the protocol: its hello as remote check prints it, and its failure and detail", async () => {
      // A fake `wmb remote serve`: MAGIC, a hello, then a failure for whatever the client asks.
      const fake = join(sshd.remoteHome, "fake-serve.mjs");
      writeFileSync(
        fake,
        `const frame = (m) => { const p = Buffer.from(JSON.stringify(m)); const h = Buffer.alloc(5); h.writeUInt32BE(p.length); h[4] = 0x4a; return Buffer.concat([h, p]); };\n` +
          `process.stdout.write(${JSON.stringify(MAGIC)});\n` +
          `process.stdout.write(frame({ t: "hello", protocol: ${PROTOCOL}, wmb: "9.9\\u001b]0;owned\\u0007", node: "v20.0.0\\u001b[2J", store: "/srv/\\u009b2Jstore", free_bytes: 1 }));\n` +
          `process.stdin.once("data", () => process.stdout.write(frame({ t: "error", code: "INTEGRITY", message: "bad\\u001b]0;owned\\u0007 thing\\r\\nerror: forged", detail: "line one\\u001b[31m\\nline two\\u009b2J" })));\n` +
          `process.stdin.on("end", () => process.exit(0));\n`,
      );
      const serve = remoteScript("wmb-fake", `#!/bin/sh\nexec ${process.execPath} ${fake}\n`);
      const check = await wmb(fx.workspace, ["remote", "check", sshd.url, "--remote-wmb", serve], { env: env() });
      expect(check.code, check.stderr).toBe(0);
      expect(check.stdout).toMatch(/wmb +9\.9 \(ssh protocol \d+\)/);
      expect(check.stdout).toMatch(/store +\/srv\/store\n/);
      expect(check.stdout).not.toMatch(CONTROL);

      const copy = await wmb(fx.workspace, ["store", "copy", "--store", fx.store, "//sqlite-cli:sealed", "--to", sshd.url, "--remote-wmb", serve], { env: env() });
      expect(copy.code).toBe(3);
      expect(copy.stderr).toBe(`error: 127.0.0.1:${sshd.port}: bad thing error: forged\n  | line one\n  | line two\n`);
    });
  });

  describe("guest arguments never reach a remote shell", () => {
    // The words issue 24 names (a fish login shell reads \' inside single quotes as a quote, so
    // shell quoting them ran `touch`), and quotes, substitutions, a newline, a tab, non-ASCII.
    const marker = () => join(sshd.dir, "pwned");
    const texts = () => ["x\\", `b; touch ${marker()}; echo \\`, `it's "quoted" $(touch ${marker()}) \`touch ${marker()}\` $HOME`, "two\nlines\tand a tab", "é ☃ 日本 \u{1F600}"];
    /** One SQL statement per text, each printing the bytes the guest got: the argument itself holds the text. */
    const sqlArgs = () => ["-batch", "-list", "-noheader", ":memory:", ...texts().map((t) => `select hex('${t.replace(/'/g, "''")}');`)];
    const expected = () => texts().map((t) => Buffer.from(t, "utf8").toString("hex").toUpperCase() + "\n").join("");

    /** WMB_SSH_COMMAND that records each ssh command line (NUL-separated) before running ssh. */
    const loggingSsh = (name: string) => {
      const dir = join(sshd.dir, `ssh-log-${name}`);
      mkdirSync(dir);
      const wrapper = join(sshd.dir, `logging-ssh-${name}`);
      writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\0' "$@" > ${dir}/$$\nexec ${sshd.sshCommand()} "$@"\n`, { mode: 0o755 });
      const remoteLines = () => readdirSync(dir).map((f) => readFileSync(join(dir, f), "utf8").split("\0").filter(Boolean).at(-1)!);
      return { wrapper, remoteLines };
    };
    /** Nothing but the --remote-wmb prefix, fixed words and base64. */
    const onlyFixedWords = (line: string) => {
      expect(line).toMatch(new RegExp(`^${remoteWmb} remote serve( --request [A-Za-z0-9+/]+={0,2})?$`));
      expect(line).not.toContain("touch");
    };

    it("with pipes: the guest gets them byte for byte, the remote command line holds none of them", async () => {
      const ssh = loggingSsh("pipes");
      const r = await wmb(fx.workspace, ["run", "--store", fx.store, "//sqlite-cli:sealed", "--target", sshd.url, "--remote-wmb", remoteWmb, "--remote-store", remoteStore(), "--", ...sqlArgs()], {
        env: env({ WMB_SSH_COMMAND: ssh.wrapper }),
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(expected());
      const lines = ssh.remoteLines();
      expect(lines).toHaveLength(1);
      lines.forEach(onlyFixedWords);
      expect(existsSync(marker())).toBe(false);
    }, 300_000);

    it.skipIf(!hasScript)("in a terminal (ssh -t): the same", async () => {
      const ssh = loggingSsh("tty");
      const argv = [process.execPath, WMB, "run", "--store", fx.store, "//sqlite-cli:sealed", "--target", sshd.url, "--remote-wmb", remoteWmb, "--remote-store", remoteStore(), "--", ...sqlArgs()];
      const r = spawnSync("script", ["-q", "-e", "-c", shellLine(argv), "/dev/null"], {
        cwd: fx.workspace,
        env: { ...process.env, ...env({ WMB_SSH_COMMAND: ssh.wrapper }) },
        input: "",
        encoding: "utf8",
        timeout: 120_000,
      });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stdout.replace(/\r\n/g, "\n")).toContain(expected());
      const lines = ssh.remoteLines();
      expect(lines).toHaveLength(2); // the session that ships, then the terminal's
      lines.forEach(onlyFixedWords);
      expect(lines.filter((l) => l.includes("--request"))).toHaveLength(2);
      expect(existsSync(marker())).toBe(false);
    }, 300_000);
  });

  describe("a key restricted to `wmb remote serve --confine DIR` in authorized_keys", () => {
    let confined: string;
    let outside: string;
    let store: string;
    let config: string;
    beforeAll(() => {
      confined = join(sshd.dir, "confined");
      outside = join(sshd.dir, "outside");
      store = join(sshd.dir, "confined-store");
      mkdirSync(confined);
      mkdirSync(outside);
      symlinkSync(outside, join(confined, "link"));
      const key = sshd.strangerKey();
      appendFileSync(join(sshd.dir, "authorized_keys"), `command="${remoteWmb} remote serve --store ${store} --confine ${confined}",no-port-forwarding ${readFileSync(`${key}.pub`, "utf8")}`);
      config = sshd.writeClientConfig("ssh_config.confined", { identityFile: key });
    });
    const run = (flags: string[], args: string[] = ["-batch", "-list", "-noheader", "/db/t.db", "create table if not exists t(x); select 42;"]) =>
      wmb(fx.workspace, ["run", "--store", fx.store, "//sqlite-cli:sealed", "--target", sshd.url, "--remote-wmb", "anything", ...flags, "--", ...args], { env: env({ WMB_SSH_COMMAND: sshd.sshCommand(config) }) });

    it("mounts a directory under DIR (relative to it, or absolute), with the store the key names", async () => {
      const rel = await run(["--db", "data"]);
      expect(rel.code, rel.stderr).toBe(0);
      expect(rel.stdout).toBe("42\n");
      expect(existsSync(join(confined, "data", "t.db"))).toBe(true);
      const abs = await run(["--db", join(confined, "abs", "deeper")]);
      expect(abs.code, abs.stderr).toBe(0);
      expect(existsSync(join(confined, "abs", "deeper", "t.db"))).toBe(true);
      expect(existsSync(join(store, "index.sqlite"))).toBe(true);
    }, 300_000);

    it("refuses, by name, a directory outside DIR, one reached with .. or through a symbolic link, and another store", async () => {
      const cases: [string[], RegExp][] = [
        [["--db", join(outside, "db")], /the host directory .*\/outside\/db for \/db is outside it/],
        [["--db", "../outside/db"], /the host directory \.\.\/outside\/db for \/db goes up with \.\./],
        [["--db", `${confined}/x/../../outside`], /goes up with \.\./],
        [["--db", "link/db"], /the host directory link\/db for \/db leads outside it through a symbolic link/],
        [["--mount", `/db=${join(confined, "link")}`], /leads outside it through a symbolic link/],
      ];
      for (const [flags, why] of cases) {
        const r = await run(flags);
        expect(r.code, r.stderr).toBe(2);
        expect(oneSentence(r)).toMatch(new RegExp(`^error: 127\\.0\\.0\\.1:\\d+: This host confines a machine's directories to ${confined} \\(wmb remote serve --confine\\): .*; name a directory under`));
        expect(oneSentence(r)).toMatch(why);
      }
      expect(readdirSync(outside)).toEqual([]);
      const other = await run(["--remote-store", join(sshd.dir, "elsewhere"), "--db", "data"]);
      expect(other.code).toBe(4);
      expect(oneSentence(other)).toMatch(new RegExp(`its own store ${store}, not .*elsewhere; drop --remote-store`));
      expect(existsSync(join(sshd.dir, "elsewhere"))).toBe(false);
    }, 300_000);

    it.skipIf(!hasScript)("in a terminal too: the run is read from the command line the client asked for", async () => {
      const inTerminal = (db: string) => {
        const argv = [process.execPath, WMB, "run", "--store", fx.store, "//sqlite-cli:sealed", "--target", sshd.url, "--db", db, "--", "-batch", "/db/t.db", "select 6*7;"];
        return spawnSync("script", ["-q", "-e", "-c", shellLine(argv), "/dev/null"], {
          cwd: fx.workspace,
          env: { ...process.env, ...env({ WMB_SSH_COMMAND: sshd.sshCommand(config) }) },
          input: "",
          encoding: "utf8",
          timeout: 120_000,
        });
      };
      const ok = inTerminal("tty-data");
      expect(ok.status, ok.stdout).toBe(0);
      expect(ok.stdout).toMatch(/\b42\b/);
      expect(existsSync(join(confined, "tty-data", "t.db"))).toBe(true);
      const out = inTerminal(join(outside, "tty"));
      expect(out.status, out.stdout).toBe(2);
      expect(out.stdout).toMatch(/is outside it/);
      expect(readdirSync(outside)).toEqual([]);
    }, 300_000);
  });

  describe("a client that names a spec too large to read", () => {
    /** `wmb remote serve` on a store, spoken to directly (no ssh needed to be a hostile client). */
    const session = async (storeDir: string) => {
      const child = spawn(process.execPath, [WMB, "remote", "serve", "--store", storeDir], { cwd: REPO, stdio: ["pipe", "pipe", "inherit"] });
      const reader = new FrameReader(child.stdout, { expectMagic: true });
      const writer = new FrameWriter(child.stdin);
      expect(await reader.handshake()).toBe(true);
      expect(parseJson((await reader.next())!).t).toBe("hello");
      const answer = async () => parseJson((await reader.next())!);
      return { writer, answer, done: () => new Promise((r) => child.on("close", r)) };
    };
    const query = (spec: { digest: string; size: number }) => ({
      t: "query",
      identity: `blake3:${"1".repeat(64)}`,
      blobs: [{ role: "spec", ...spec }, { role: "kernel", digest: "2".repeat(64), size: 10 }, { role: "rootfs", digest: "3".repeat(64), size: 10 }],
    });

    it("a spec said to be 1 GiB is refused before any of it is sent", async () => {
      const storeDir = remoteStore();
      const s = await session(storeDir);
      await s.writer.json(query({ digest: "4".repeat(64), size: 1 << 30 }));
      const a = await s.answer();
      expect(a).toMatchObject({ t: "error", code: "INTEGRITY" });
      expect(a.message).toMatch(/is 1073741824 bytes, more than the 4194304 a sealed spec may have; nothing was admitted/);
      await s.done();
      expect(readdirSync(join(storeDir, "cas", "tmp"))).toEqual([]);
    });

    it("a large blob of the store named as a small spec is not read", async () => {
      const storeDir = remoteStore();
      const store = await Store.open(storeDir);
      const big = await store.putBytes(Buffer.alloc(5 << 20, 0x20));
      store.close();
      const s = await session(storeDir);
      await s.writer.json(query({ digest: big.digest, size: 100 }));
      const a = await s.answer();
      expect(a).toMatchObject({ t: "error", code: "INTEGRITY" });
      expect(a.message).toMatch(/is 5242880 bytes, more than the 4194304 a sealed spec may have/);
      await s.done();
    });
  });
});
