// Keys (#25): `wmb key generate` / `wmb key public` driven as a user would, the secret key file's
// form and mode, and where trusted and signing keys come from (flag > environment > wmb.json).
import { chmodSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { wmbSync } from "./helpers/cli.ts";
import { generateSecretKeyFile, parsePublicKey, readSigningKey, type SigningKey } from "../src/trust/keys.ts";
import { trustFrom } from "../src/trust/trust-config.ts";
import { readWorkspaceConfig } from "../src/workspace-config.ts";
import { isWmbError } from "../src/errors.ts";

const PUBLIC_FORM = /^([A-Za-z0-9._-]+):([A-Za-z0-9+/]{43}=)$/;

function scratch(): string {
  return mkdtempSync(join(tmpdir(), "wmb-keys-"));
}

/** The one sentence a WmbError carries (or the test fails). */
function sentence(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (!isWmbError(e)) throw e;
    return e.message;
  }
  throw new Error("no error");
}

const HAS_PYTHON_CRYPTOGRAPHY = spawnSync("python3", ["-c", "import cryptography"]).status === 0;

describe("wmb key generate", () => {
  it("writes a 0600 secret key under XDG_CONFIG_HOME, prints NAME:BASE64, and never overwrites", () => {
    const home = scratch();
    const config = join(home, "config");
    const env = { XDG_CONFIG_HOME: config, HOME: home };
    const r = wmbSync(home, ["key", "generate", "ci-2025"], { env });
    expect(r.code, r.stderr).toBe(0);
    const printed = r.stdout.trim();
    const m = PUBLIC_FORM.exec(printed);
    expect(m, printed).not.toBeNull();
    expect(m![1]).toBe("ci-2025");
    expect(Buffer.from(m![2]!, "base64")).toHaveLength(32);

    const file = join(config, "wmb", "keys", "ci-2025.secret");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(config, "wmb", "keys")).mode & 0o777).toBe(0o700);
    // Nix's form: NAME:BASE64(seed || public), no newline; the public half is what was printed.
    const secret = readFileSync(file, "latin1");
    expect(secret).toMatch(/^ci-2025:[A-Za-z0-9+/]{86}==$/);
    const bytes = Buffer.from(secret.slice("ci-2025:".length), "base64");
    expect(bytes).toHaveLength(64);
    expect(bytes.subarray(32).equals(Buffer.from(m![2]!, "base64"))).toBe(true);
    // The secret is in no output.
    expect(r.stdout + r.stderr).not.toContain(secret.slice("ci-2025:".length, 40));

    expect(wmbSync(home, ["key", "public", file]).stdout.trim()).toBe(printed);

    const before = readFileSync(file);
    const again = wmbSync(home, ["key", "generate", "ci-2025"], { env });
    expect(again.code).toBe(2);
    expect(again.stderr.trim().split("\n")).toEqual([`error: ${file} already exists; wmb never overwrites a key, so choose another NAME or --out FILE.`]);
    expect(readFileSync(file).equals(before)).toBe(true);
  });

  it("takes --out and --json, refuses a symlink planted at --out and a bad name", () => {
    const dir = scratch();
    const out = join(dir, "nested", "k.secret");
    const r = wmbSync(dir, ["key", "generate", "rebuilder.1", "--out", out, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as { name: string; public_key: string; secret_key_file: string };
    expect(json.name).toBe("rebuilder.1");
    expect(json.public_key).toMatch(PUBLIC_FORM);
    expect(json.secret_key_file).toBe(out);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(JSON.stringify(json)).not.toContain(readFileSync(out, "latin1").split(":")[1]!.slice(0, 20));

    const victim = join(dir, "victim");
    writeFileSync(victim, "keep me\n");
    symlinkSync(victim, join(dir, "planted.secret"));
    const planted = wmbSync(dir, ["key", "generate", "x", "--out", join(dir, "planted.secret")]);
    expect(planted.code).toBe(2);
    expect(readFileSync(victim, "utf8")).toBe("keep me\n");

    const bad = wmbSync(dir, ["key", "generate", "../escape"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('"../escape" is not a key name');
  });

  it("refuses a secret key file readable by group or others, naming the file and chmod 600", () => {
    const dir = scratch();
    const file = join(dir, "k.secret");
    expect(wmbSync(dir, ["key", "generate", "k", "--out", file]).code).toBe(0);
    const content = readFileSync(file, "latin1");
    for (const mode of [0o640, 0o604]) {
      chmodSync(file, mode);
      const r = wmbSync(dir, ["key", "public", file]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(file);
      expect(r.stderr).toContain(`chmod 600 ${file}`);
      expect(r.stderr).not.toContain(content.slice(2, 30));
    }
    chmodSync(file, 0o400);
    expect(readSigningKey(file).name).toBe("k");
  });

  it.skipIf(!HAS_PYTHON_CRYPTOGRAPHY)("writes the key Python's cryptography derives from the same seed", () => {
    const dir = scratch();
    const file = join(dir, "py.secret");
    const printed = wmbSync(dir, ["key", "generate", "py", "--out", file]).stdout.trim();
    const script = [
      "import base64, sys",
      "from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey",
      "from cryptography.hazmat.primitives import serialization",
      "raw = base64.b64decode(open(sys.argv[1]).read().split(':', 1)[1])",
      "pub = Ed25519PrivateKey.from_private_bytes(raw[:32]).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)",
      "assert pub == raw[32:], 'public half'",
      "print('py:' + base64.b64encode(pub).decode())",
    ].join("\n");
    const r = spawnSync("python3", ["-c", script, file], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(printed);
  });
});

describe("reading keys", () => {
  const key = (bytes: number) => `ci:${Buffer.alloc(bytes, 7).toString("base64")}`;

  it("takes NAME:BASE64 of 32 bytes and refuses every other length, never quoting the text", () => {
    expect(parsePublicKey(key(32), "--trusted-key").toString()).toBe(key(32));
    expect(sentence(() => parsePublicKey(key(31), "--trusted-key"))).toBe(
      "--trusted-key is not a public key: it holds 31 bytes, and an Ed25519 public key has 32; expected NAME:BASE64 as `wmb key generate` or `wmb key public` prints it.",
    );
    expect(sentence(() => parsePublicKey(key(33), "x"))).toContain("33 bytes");
    const pastedSecret = sentence(() => parsePublicKey(key(64), "WMB_TRUSTED_KEYS entry 2"));
    expect(pastedSecret).toContain("as a secret key does");
    expect(pastedSecret).not.toContain(Buffer.alloc(64, 7).toString("base64").slice(0, 12));
    expect(sentence(() => parsePublicKey("no-colon", "x"))).toContain("no NAME:");
    expect(sentence(() => parsePublicKey("bad name:AAAA", "x"))).toContain("its name");
    // Node would decode these; they are not the one spelling of a key.
    for (const b64 of ["!" + Buffer.alloc(32).toString("base64").slice(1), Buffer.alloc(32).toString("base64").replace("=", ""), Buffer.alloc(32).toString("base64").slice(0, 42) + "B="]) {
      expect(sentence(() => parsePublicKey(`ci:${b64}`, "x"))).toContain("is not base64");
    }
  });

  it("refuses a secret key file whose halves disagree, a public key given as a secret, and a directory", () => {
    const dir = scratch();
    const file = join(dir, "k.secret");
    generateSecretKeyFile("k", file);
    const bytes = Buffer.from(readFileSync(file, "latin1").slice(2), "base64");
    bytes[40]! ^= 1;
    const damaged = join(dir, "damaged.secret");
    writeFileSync(damaged, `k:${bytes.toString("base64")}`, { mode: 0o600 });
    expect(sentence(() => readSigningKey(damaged))).toBe(`the signing key file ${damaged} is damaged: its public half is not the one its seed gives.`);
    const pub = join(dir, "pub.secret");
    writeFileSync(pub, key(32), { mode: 0o600 });
    expect(sentence(() => readSigningKey(pub))).toContain("holds a public key, not a secret key");
    const short = join(dir, "short.secret");
    writeFileSync(short, key(63), { mode: 0o600 });
    expect(sentence(() => readSigningKey(short))).toContain("holds 63 bytes");
    expect(sentence(() => readSigningKey(join(dir, "missing"), "WMB_SIGNING_KEY"))).toBe(
      `the signing key ${join(dir, "missing")} (from WMB_SIGNING_KEY) does not exist; create one with \`wmb key generate NAME\`.`,
    );
    chmodSync(dir, 0o700);
    expect(sentence(() => readSigningKey(dir))).toContain("is not a regular file");
  });

  it("never shows the secret when a signing key is printed or serialized", () => {
    const dir = scratch();
    const file = join(dir, "k.secret");
    generateSecretKeyFile("k", file);
    const secret = readFileSync(file, "latin1").slice(2);
    const k: SigningKey = readSigningKey(file);
    const seedB64 = Buffer.from(secret, "base64").subarray(0, 32).toString("base64").slice(0, 16);
    for (const shown of [inspect(k, { showHidden: true, depth: 9 }), JSON.stringify(k), String(k), JSON.stringify({ k })]) {
      expect(shown).not.toContain(secret.slice(0, 16));
      expect(shown).not.toContain(seedB64);
      expect(shown).toContain(k.publicKey.toString());
    }
  });
});

describe("trust configuration", () => {
  const a = `a:${Buffer.alloc(32, 1).toString("base64")}`;
  const b = `b:${Buffer.alloc(32, 2).toString("base64")}`;
  const c = `c:${Buffer.alloc(32, 3).toString("base64")}`;

  it("takes the flag over the environment over wmb.json, whole", () => {
    const ws = scratch();
    writeFileSync(join(ws, "wmb.json"), JSON.stringify({ trusted_keys: [c], signing_key: "keys/ws.secret" }));
    const workspace = { root: ws, config: readWorkspaceConfig(ws) };
    const names = (t: ReturnType<typeof trustFrom>) => t.trusted.map((k) => k.name);
    const all = trustFrom({ flags: { trustedKeys: [a], signingKey: "flag.secret" }, env: { WMB_TRUSTED_KEYS: b, WMB_SIGNING_KEY: "/env.secret" }, workspace, cwd: "/here" });
    expect(names(all)).toEqual(["a"]);
    expect(all.trustedFrom).toBe("--trusted-key");
    expect(all.signingKeyFile).toEqual({ path: "/here/flag.secret", from: "--signing-key" });
    expect(all.signer).toBeUndefined();

    const env = trustFrom({ env: { WMB_TRUSTED_KEYS: ` ${a} ,${b},`, WMB_SIGNING_KEY: "/env.secret" }, workspace });
    expect(names(env)).toEqual(["a", "b"]);
    expect(env.trustedFrom).toBe("WMB_TRUSTED_KEYS");
    expect(env.signingKeyFile).toEqual({ path: "/env.secret", from: "WMB_SIGNING_KEY" });

    const file = trustFrom({ env: { WMB_TRUSTED_KEYS: "", HOME: "/home/u" }, workspace });
    expect(names(file)).toEqual(["c"]);
    expect(file.trustedFrom).toBe(join(ws, "wmb.json"));
    expect(file.signingKeyFile).toEqual({ path: join(ws, "keys/ws.secret"), from: `${join(ws, "wmb.json")} signing_key` });

    const home = trustFrom({ env: { HOME: "/home/u" }, workspace: { root: ws, config: { signing_key: "~/.config/wmb/keys/ci.secret" } } });
    expect(home.signingKeyFile?.path).toBe("/home/u/.config/wmb/keys/ci.secret");
    expect(home.trustedFrom).toBeUndefined();
    expect(home.trusted).toEqual([]);

    // An empty list in use still decides: nothing is trusted, rather than everything unauthenticated.
    const none = trustFrom({ env: {}, workspace: { root: ws, config: { trusted_keys: [] } } });
    expect(none.trusted).toEqual([]);
    expect(none.trustedFrom).toBe(join(ws, "wmb.json"));
  });

  it("names where a malformed or ambiguous key came from, in one sentence", () => {
    expect(sentence(() => trustFrom({ env: { WMB_TRUSTED_KEYS: `${a},b:AAAA` } }))).toMatch(/^WMB_TRUSTED_KEYS entry 2 is not a public key: it holds 3 bytes/);
    expect(sentence(() => trustFrom({ flags: { trustedKeys: ["nope"] }, env: {} }))).toMatch(/^--trusted-key is not a public key/);
    const ws = scratch();
    expect(sentence(() => trustFrom({ env: {}, workspace: { root: ws, config: { trusted_keys: [a, "x"] } } }))).toMatch(new RegExp(`^${join(ws, "wmb.json")} trusted_keys entry 2 is not a public key`));
    const a2 = `a:${Buffer.alloc(32, 9).toString("base64")}`;
    expect(sentence(() => trustFrom({ flags: { trustedKeys: [a, a2] }, env: {} }))).toBe(
      "--trusted-key names two different keys a; give each key its own name (e.g. a-2025 and a-2026 while rotating).",
    );
    expect(trustFrom({ flags: { trustedKeys: [a, a] }, env: {} }).trusted).toHaveLength(1);
  });

  it("reads the signing key only when asked to sign", () => {
    const dir = scratch();
    const file = join(dir, "k.secret");
    generateSecretKeyFile("k", file);
    chmodSync(file, 0o644);
    const flags = { signingKey: file };
    expect(trustFrom({ flags, env: {} }).signer).toBeUndefined();
    expect(sentence(() => trustFrom({ flags, env: {} }, { sign: true }))).toContain(`(from --signing-key) is accessible by group or others`);
    chmodSync(file, 0o600);
    expect(trustFrom({ flags, env: {} }, { sign: true }).signer?.name).toBe("k");
  });

  it("checks the wmb.json fields' types", () => {
    const ws = scratch();
    for (const [config, says] of [
      [{ trusted_keys: "a:AAAA" }, '"trusted_keys" that is not an array'],
      [{ trusted_keys: [1] }, '"trusted_keys" that is not an array'],
      [{ signing_key: 7 }, '"signing_key" that is not a file path'],
      [{ signing_key: "" }, '"signing_key" that is not a file path'],
    ] as const) {
      writeFileSync(join(ws, "wmb.json"), JSON.stringify(config));
      expect(sentence(() => readWorkspaceConfig(ws))).toContain(says);
    }
  });
});
