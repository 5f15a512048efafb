// Ed25519 keys, written as Nix writes them: a public key is `NAME:BASE64(32 raw bytes)`, a
// secret key file holds `NAME:BASE64(64 bytes: seed || public key)` (libsodium's secret key),
// so a wmb key and a Nix key are the same file. node:crypto does the arithmetic.
//
// A secret key never leaves this module as bytes or text: SigningKey keeps it in a KeyObject
// (which prints and serializes as nothing), and no error message quotes a key file's content.
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { closeSync, constants, fchmodSync, fstatSync, fsyncSync, mkdirSync, openSync, readSync, unlinkSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join } from "node:path";
import { inspect } from "node:util";
import { WmbError } from "../errors.ts";
import { decodeBase64, encodeBase64 } from "./base64.ts";

const NAME = /^[A-Za-z0-9._-]{1,128}$/;
const PUBLIC_BYTES = 32;
const SECRET_BYTES = 64;
export const SIGNATURE_BYTES = 64;
/** A key file is ~100 bytes; anything much larger is not one, and is not read whole. */
const MAX_KEY_FILE = 4096;
// DER framing of a raw Ed25519 key (RFC 8410): node:crypto imports DER, and this keeps the
// seed out of JavaScript strings (a JWK would put it in one).
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** Whether `name` may name a key: letters, digits, `.`, `_`, `-` (it is also a file name). */
export function isKeyName(name: string): boolean {
  return NAME.test(name);
}

export function checkKeyName(name: string): string {
  if (!isKeyName(name)) throw new WmbError("USAGE", `${JSON.stringify(name)} is not a key name; use letters, digits, ".", "_" and "-" (at most 128), e.g. ci-2025.`);
  return name;
}

/** A public key someone trusts (or one's own): its name is the DSSE keyid of its signatures. */
export class PublicKey {
  readonly name: string;
  /** The 32 raw bytes. */
  readonly bytes: Buffer;
  private readonly key: KeyObject;

  constructor(name: string, bytes: Uint8Array) {
    if (bytes.length !== PUBLIC_BYTES) throw new Error(`an Ed25519 public key has ${PUBLIC_BYTES} bytes, not ${bytes.length}`);
    this.name = name;
    this.bytes = Buffer.from(bytes);
    this.key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, this.bytes]), format: "der", type: "spki" });
  }

  /** `NAME:BASE64`, the form `wmb key generate` prints and `--trusted-key` takes. */
  toString(): string {
    return `${this.name}:${encodeBase64(this.bytes)}`;
  }

  toJSON(): string {
    return this.toString();
  }

  /** Whether `signature` is this key's Ed25519 signature of exactly `data`. */
  verify(data: Uint8Array, signature: Uint8Array): boolean {
    return signature.length === SIGNATURE_BYTES && verify(null, data, this.key, signature);
  }

  /** SubjectPublicKeyInfo PEM, what openssl and Python's cryptography read. */
  pem(): string {
    return this.key.export({ type: "spki", format: "pem" }).toString();
  }

  equals(other: PublicKey): boolean {
    return this.name === other.name && this.bytes.equals(other.bytes);
  }
}

/** The key a build or push signs with. It holds the secret in a KeyObject and shows only its
 * public half when printed, logged or serialized. */
export class SigningKey {
  readonly publicKey: PublicKey;
  readonly #key: KeyObject;

  private constructor(key: KeyObject, publicKey: PublicKey) {
    this.#key = key;
    this.publicKey = publicKey;
  }

  get name(): string {
    return this.publicKey.name;
  }

  /** Ed25519 signature (64 bytes) of `data`. */
  sign(data: Uint8Array): Buffer {
    return sign(null, data, this.#key);
  }

  toString(): string {
    return `signing key ${this.publicKey}`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return `SigningKey(${this.publicKey})`;
  }

  /** @internal From the 64 bytes of a secret key file; undefined when its halves disagree. */
  static fromSecretBytes(name: string, secret: Uint8Array): SigningKey | undefined {
    const der = Buffer.concat([PKCS8_PREFIX, secret.subarray(0, 32)]);
    const key = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
    der.fill(0);
    const derived = rawPublicKey(createPublicKey(key));
    if (!derived.equals(secret.subarray(32, SECRET_BYTES))) return undefined;
    return new SigningKey(key, new PublicKey(name, derived));
  }
}

function rawPublicKey(key: KeyObject): Buffer {
  return (key.export({ type: "spki", format: "der" }) as Buffer).subarray(SPKI_PREFIX.length);
}

/**
 * `NAME:BASE64` as a public key. `source` says where the text came from ("--trusted-key",
 * "WMB_TRUSTED_KEYS entry 2") for the sentence a malformed key gets; the text itself is never
 * quoted, since a secret key pasted by mistake must not end up in a log.
 */
export function parsePublicKey(text: string, source: string): PublicKey {
  const bad = (why: string): never => {
    throw new WmbError("USAGE", `${source} is not a public key: ${why}; expected NAME:BASE64 as \`wmb key generate\` or \`wmb key public\` prints it.`, { subject: source });
  };
  text = text.trim();
  const colon = text.indexOf(":");
  if (colon < 0) return bad("it has no NAME: before the key");
  const name = text.slice(0, colon);
  if (!isKeyName(name)) return bad('its name is not letters, digits, ".", "_" and "-"');
  const bytes = decodeBase64(text.slice(colon + 1), "standard");
  if (!bytes) return bad(`the part after ${name}: is not base64`);
  if (bytes.length === SECRET_BYTES) return bad(`it holds ${SECRET_BYTES} bytes, as a secret key does (never share that one), and an Ed25519 public key has ${PUBLIC_BYTES}`);
  if (bytes.length !== PUBLIC_BYTES) return bad(`it holds ${bytes.length} bytes, and an Ed25519 public key has ${PUBLIC_BYTES}`);
  return new PublicKey(name, bytes);
}

/** The secret key in `file`. Refused, with one sentence naming the file and never its content:
 * a missing, unreadable, non-regular or group/other-accessible file, or one that is not a key. */
export function readSigningKey(file: string, source?: string): SigningKey {
  const where = source ? `the signing key ${file} (from ${source})` : `the signing key file ${file}`;
  const fail = (why: string): never => {
    throw new WmbError("USAGE", `${where} ${why}.`, { subject: file });
  };
  let fd: number;
  try {
    // A symlink is followed: secret mounts (Kubernetes, systemd credentials) are symlinks. The
    // checks below are of the file opened, not of the name.
    fd = openSync(file, constants.O_RDONLY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === "ENOENT" ? "does not exist; create one with `wmb key generate NAME`" : `cannot be read (${code ?? (e as Error).message})`);
  }
  const buf = Buffer.alloc(MAX_KEY_FILE + 1);
  let text = "";
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) fail("is not a regular file");
    // As ssh does with identity files: a key others can read is not secret any more.
    if (st.mode & 0o077) fail(`is accessible by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}); run \`chmod 600 ${file}\``);
    let length = 0;
    for (let n; length <= MAX_KEY_FILE && (n = readSync(fd, buf, length, buf.length - length, null)) > 0; ) length += n;
    if (length > MAX_KEY_FILE) fail("is not a wmb secret key (it is larger than any key file)");
    text = buf.toString("latin1", 0, length).trim();
  } finally {
    closeSync(fd);
    buf.fill(0);
  }
  const colon = text.indexOf(":");
  const name = text.slice(0, colon);
  const bytes = colon > 0 && isKeyName(name) ? decodeBase64(text.slice(colon + 1), "standard") : undefined;
  if (!bytes) return fail("is not a wmb secret key: it does not hold NAME:BASE64");
  try {
    if (bytes.length === PUBLIC_BYTES) fail(`holds a public key, not a secret key (${SECRET_BYTES} bytes)`);
    if (bytes.length !== SECRET_BYTES) fail(`is not a wmb secret key: it holds ${bytes.length} bytes, and an Ed25519 secret key file holds ${SECRET_BYTES}`);
    return SigningKey.fromSecretBytes(name, bytes) ?? fail("is damaged: its public half is not the one its seed gives");
  } finally {
    bytes.fill(0);
  }
}

/** Where `wmb key generate NAME` puts a key by default: $XDG_CONFIG_HOME/wmb/keys/NAME.secret,
 * else ~/.config/wmb/keys/NAME.secret (a relative XDG_CONFIG_HOME is ignored, as the XDG spec says). */
export function defaultSecretKeyFile(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const config = xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), ".config");
  return join(config, "wmb", "keys", `${checkKeyName(name)}.secret`);
}

/** A new Ed25519 key named `name`, its secret written to `file` (created exclusively, mode 0600,
 * parent directories 0700): never over an existing file. Returns its public key. */
export function generateSecretKeyFile(name: string, file: string): PublicKey {
  checkKeyName(name);
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new WmbError("USAGE", `cannot create the directory of ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}).`, { subject: file });
  }
  let fd: number;
  try {
    // O_EXCL: an existing file, or a symlink planted where the key goes, is never written through.
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EEXIST") throw new WmbError("USAGE", `${file} already exists; wmb never overwrites a key, so choose another NAME or --out FILE.`, { subject: file });
    throw new WmbError("USAGE", `cannot create ${file} (${code ?? (e as Error).message}).`, { subject: file });
  }
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const pkcs8 = privateKey.export({ type: "pkcs8", format: "der" }) as Buffer;
  const raw = rawPublicKey(publicKey);
  const secret = Buffer.concat([pkcs8.subarray(PKCS8_PREFIX.length), raw]);
  const line = Buffer.from(`${name}:${encodeBase64(secret)}`, "latin1");
  try {
    fchmodSync(fd, 0o600); // whatever the umask took away from the owner, and nothing more
    // No newline at the end, as `nix key generate-secret` writes it.
    for (let at = 0; at < line.length; ) at += writeSync(fd, line, at);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(file);
    throw new WmbError("USAGE", `cannot write ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}).`, { subject: file });
  } finally {
    pkcs8.fill(0);
    secret.fill(0);
    line.fill(0);
  }
  closeSync(fd);
  return new PublicKey(name, raw);
}
