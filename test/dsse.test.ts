// DSSE envelopes (#25): PAE exactly as the spec writes it, signatures that openssl and Python's
// cryptography accept with the printed public key, and the attacks a registry writer can try.
import { spawnSync } from "node:child_process";
import { createPublicKey } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { wmbSync } from "./helpers/cli.ts";
import { DSSE_MEDIA_TYPE, MAX_ENVELOPE_BYTES, encodeEnvelope, pae, parseEnvelope, signEnvelope, untrustedReason, verifyEnvelope, type DsseEnvelope } from "../src/trust/dsse.ts";
import { generateSecretKeyFile, parsePublicKey, readSigningKey, type PublicKey, type SigningKey } from "../src/trust/keys.ts";
import { RESULT_FINGERPRINT_TYPE, resultFingerprintBytes } from "../src/trust/result-fingerprint.ts";
import { IN_TOTO_PAYLOAD_TYPE } from "../src/trust/statements.ts";
import { hashBytes, type ActionKey } from "../src/digest.ts";
import { isWmbError } from "../src/errors.ts";

const KEY = "a".repeat(64) as ActionKey;
const HAS_PYTHON_CRYPTOGRAPHY = spawnSync("python3", ["-c", "import cryptography"]).status === 0;
const result = (text: string) => ({ sandbox: "bwrap" as const, outputs: { "shout.txt": { blake3: hashBytes(text), size: text.length, executable: false } } });

function refusal(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    if (!isWmbError(e)) throw e;
    return { code: e.code, message: e.message };
  }
  throw new Error("accepted");
}

/** PAE computed here from the spec's words, not with src/trust/dsse.ts. */
function independentPae(type: string, body: Uint8Array): Buffer {
  const t = Buffer.from(type, "utf8");
  return Buffer.concat([Buffer.from("DSSEv1"), Buffer.from(" "), Buffer.from(String(t.byteLength)), Buffer.from(" "), t, Buffer.from(" "), Buffer.from(String(body.byteLength)), Buffer.from(" "), body]);
}

function keyAt(dir: string, name: string): SigningKey {
  generateSecretKeyFile(name, join(dir, `${name}.secret`));
  return readSigningKey(join(dir, `${name}.secret`));
}

describe("PAE", () => {
  it("is the spec's example byte for byte", () => {
    expect(pae("http://example.com/HelloWorld", Buffer.from("hello world")).toString()).toBe("DSSEv1 29 http://example.com/HelloWorld 11 hello world");
    expect(pae("", new Uint8Array()).toString()).toBe("DSSEv1 0  0 ");
  });

  it("counts bytes, not characters, in type and body", () => {
    const type = "application/vnd.wmb.tést+json";
    const body = Buffer.from([0, 0xff, 0x20, 0x0a, 0xc3, 0xa9]);
    expect(pae(type, body).equals(independentPae(type, body))).toBe(true);
    expect(pae(type, body).subarray(0, 10).toString()).toBe("DSSEv1 30 ");
  });
});

describe("signatures an independent tool accepts", () => {
  let dir: string;
  let printed: string;
  let envelopeFile: string;
  let envelope: DsseEnvelope;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "wmb-dsse-"));
    const r = wmbSync(dir, ["key", "generate", "ci", "--out", join(dir, "ci.secret")]);
    expect(r.code, r.stderr).toBe(0);
    printed = r.stdout.trim();
    envelope = signEnvelope(RESULT_FINGERPRINT_TYPE, resultFingerprintBytes(KEY, result("HELLO\n")), readSigningKey(join(dir, "ci.secret")));
    envelopeFile = join(dir, "envelope.json");
    writeFileSync(envelopeFile, encodeEnvelope(envelope));
    // The public key as openssl and Python read it, made from the printed NAME:BASE64 alone.
    const raw = Buffer.from(printed.split(":")[1]!, "base64");
    const pem = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" }).export({ type: "spki", format: "pem" });
    writeFileSync(join(dir, "pub.pem"), pem);
  });

  it("openssl pkeyutl -verify accepts the signature over the PAE bytes, and refuses other bytes", () => {
    const json = JSON.parse(encodeEnvelope(envelope).toString()) as DsseEnvelope;
    const body = Buffer.from(json.payload, "base64");
    const paeBytes = independentPae(json.payloadType, body);
    expect(pae(json.payloadType, body).equals(paeBytes)).toBe(true);
    writeFileSync(join(dir, "pae.bin"), paeBytes);
    writeFileSync(join(dir, "sig.bin"), Buffer.from(json.signatures[0]!.sig, "base64"));
    const verify = () => spawnSync("openssl", ["pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "pae.bin", "-sigfile", "sig.bin"], { cwd: dir, encoding: "utf8" });
    const ok = verify();
    expect(ok.status, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toContain("Signature Verified Successfully");

    const other = Buffer.from(paeBytes);
    other[other.length - 3]! ^= 1;
    writeFileSync(join(dir, "pae.bin"), other);
    expect(verify().status).toBe(1);
    // The payload alone (without PAE) is not what is signed.
    writeFileSync(join(dir, "pae.bin"), body);
    expect(verify().status).toBe(1);
  });

  it.skipIf(!HAS_PYTHON_CRYPTOGRAPHY)("Python's cryptography accepts it, with PAE computed in Python from the envelope file", () => {
    const script = `
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
name, b64 = sys.argv[2].split(":", 1)
key = Ed25519PublicKey.from_public_bytes(base64.b64decode(b64))
env = json.load(open(sys.argv[1]))
body = base64.b64decode(env["payload"])
t = env["payloadType"].encode()
pae = b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)
for s in env["signatures"]:
    assert s["keyid"] == name
    key.verify(base64.b64decode(s["sig"]), pae)  # raises InvalidSignature
print("ok", env["payloadType"])
`;
    const r = spawnSync("python3", ["-c", script, envelopeFile, printed], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`ok ${RESULT_FINGERPRINT_TYPE}`);
    const tampered = join(dir, "tampered.json");
    writeFileSync(tampered, JSON.stringify({ ...envelope, payload: Buffer.from(resultFingerprintBytes(KEY, result("PWNED\n"))).toString("base64") }));
    const bad = spawnSync("python3", ["-c", script, tampered, printed], { encoding: "utf8" });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain("InvalidSignature");
  });

  it("reads back what it wrote, and names the media type", () => {
    expect(DSSE_MEDIA_TYPE).toBe("application/vnd.dsse.envelope.v1+json");
    const back = parseEnvelope(encodeEnvelope(envelope), "the envelope");
    expect(back).toEqual(envelope);
    const v = verifyEnvelope(back, [parsePublicKey(printed, "test")], RESULT_FINGERPRINT_TYPE);
    expect(v.validSigners).toEqual(["ci"]);
    expect(Buffer.from(v.payloadBytes!).equals(Buffer.from(resultFingerprintBytes(KEY, result("HELLO\n"))))).toBe(true);
  });
});

describe("attacks on signatures", () => {
  let ci: SigningKey;
  let ci2026: SigningKey;
  let rogue: SigningKey;
  let trusted: PublicKey[];
  const good = () => resultFingerprintBytes(KEY, result("HELLO\n"));
  const poisoned = () => resultFingerprintBytes(KEY, result("PWNED BY THE CACHE\n"));

  beforeAll(() => {
    const dir = mkdtempSync(join(tmpdir(), "wmb-dsse-"));
    ci = keyAt(dir, "ci");
    ci2026 = keyAt(dir, "ci-2026");
    rogue = keyAt(dir, "rogue");
    trusted = [ci.publicKey, ci2026.publicKey];
  });

  it("a valid signature by a trusted key hands out the payload", () => {
    const v = verifyEnvelope(signEnvelope(RESULT_FINGERPRINT_TYPE, good(), [ci, ci2026]), trusted, RESULT_FINGERPRINT_TYPE);
    expect(v).toEqual({ payloadType: RESULT_FINGERPRINT_TYPE, payloadBytes: Buffer.from(good()), validSigners: ["ci", "ci-2026"], validKeys: [ci.publicKey, ci2026.publicKey], untrustedSigners: [], badSignatures: [] });
    expect(untrustedReason(v)).toBeUndefined();
  });

  it("a signature copied onto other payload bytes is a bad signature, and the payload is withheld", () => {
    const signed = signEnvelope(RESULT_FINGERPRINT_TYPE, good(), ci);
    const copied: DsseEnvelope = { ...signed, payload: Buffer.from(poisoned()).toString("base64") };
    const v = verifyEnvelope(copied, trusted, RESULT_FINGERPRINT_TYPE);
    expect(v.validSigners).toEqual([]);
    expect(v.badSignatures).toEqual(["ci"]);
    expect(v.payloadBytes).toBeUndefined();
    expect(untrustedReason(v)).toBe("a bad signature claiming ci");
  });

  it("a signature by a key not in the trusted list names that signer as untrusted", () => {
    const v = verifyEnvelope(signEnvelope(RESULT_FINGERPRINT_TYPE, poisoned(), rogue), trusted, RESULT_FINGERPRINT_TYPE);
    expect(v).toMatchObject({ validSigners: [], untrustedSigners: ["rogue"], badSignatures: [] });
    expect(v.payloadBytes).toBeUndefined();
    expect(untrustedReason(v)).toBe("signed by a key not trusted here: rogue");
  });

  it("a rogue key using a trusted key's name is a bad signature, not that key's", () => {
    const forged = signEnvelope(RESULT_FINGERPRINT_TYPE, poisoned(), rogue);
    forged.signatures[0]!.keyid = "ci";
    expect(verifyEnvelope(forged, trusted, RESULT_FINGERPRINT_TYPE)).toMatchObject({ validSigners: [], badSignatures: ["ci"] });
  });

  it("a valid signature by a key removed from the trusted list is untrusted", () => {
    const env = signEnvelope(RESULT_FINGERPRINT_TYPE, good(), ci);
    expect(verifyEnvelope(env, trusted, RESULT_FINGERPRINT_TYPE).validSigners).toEqual(["ci"]);
    const v = verifyEnvelope(env, [ci2026.publicKey], RESULT_FINGERPRINT_TYPE);
    expect(v).toMatchObject({ validSigners: [], untrustedSigners: ["ci"] });
    expect(v.payloadBytes).toBeUndefined();
    expect(verifyEnvelope(env, [], RESULT_FINGERPRINT_TYPE).untrustedSigners).toEqual(["ci"]);
  });

  it("one valid signature among bad and untrusted ones counts; the others are reported", () => {
    const env = signEnvelope(RESULT_FINGERPRINT_TYPE, good(), [rogue, ci]);
    const wrong = signEnvelope(RESULT_FINGERPRINT_TYPE, poisoned(), ci2026).signatures[0]!;
    env.signatures.push(wrong, wrong);
    expect(verifyEnvelope(env, trusted, RESULT_FINGERPRINT_TYPE)).toMatchObject({ validSigners: ["ci"], untrustedSigners: ["rogue"], badSignatures: ["ci-2026"] });
  });

  it("an envelope of another payloadType is refused, and relabelling one breaks its signature", () => {
    const env = signEnvelope(IN_TOTO_PAYLOAD_TYPE, good(), ci);
    expect(refusal(() => verifyEnvelope(env, trusted, RESULT_FINGERPRINT_TYPE, "the signature of //examples:shout"))).toEqual({
      code: "INTEGRITY",
      message: `the signature of //examples:shout holds a "${IN_TOTO_PAYLOAD_TYPE}" document where a "${RESULT_FINGERPRINT_TYPE}" one belongs.`,
    });
    const relabelled = { ...env, payloadType: RESULT_FINGERPRINT_TYPE };
    expect(verifyEnvelope(relabelled, trusted, RESULT_FINGERPRINT_TYPE)).toMatchObject({ validSigners: [], badSignatures: ["ci"] });
  });

  it("a signature without keyid is tried against every trusted key; URL-safe base64 is read", () => {
    const env = signEnvelope(RESULT_FINGERPRINT_TYPE, good(), ci2026);
    const sig = Buffer.from(env.signatures[0]!.sig, "base64").toString("base64url");
    const bytes = Buffer.from(JSON.stringify({ payloadType: env.payloadType, payload: Buffer.from(good()).toString("base64url"), signatures: [{ sig }], extra: "ignored, as the spec says" }));
    const v = verifyEnvelope(parseEnvelope(bytes, "x"), trusted, RESULT_FINGERPRINT_TYPE);
    expect(v.validSigners).toEqual(["ci-2026"]);
    expect(verifyEnvelope(parseEnvelope(bytes, "x"), [], RESULT_FINGERPRINT_TYPE).untrustedSigners).toEqual([""]);
  });

  it("refuses a malformed envelope with one sentence each", () => {
    const text = encodeEnvelope(signEnvelope(RESULT_FINGERPRINT_TYPE, good(), ci)).toString();
    const parsed = JSON.parse(text) as Record<string, unknown>;
    const sig = (parsed.signatures as { sig: string }[])[0]!.sig;
    const cases: [string | Uint8Array, string][] = [
      [text.slice(0, text.length - 9), "it is not JSON ("],
      ["", "it is not JSON ("],
      [Buffer.from([0x7b, 0xff, 0x7d]), "it is not UTF-8"],
      ["[]", "it is not a JSON object"],
      [JSON.stringify({ ...parsed, payloadType: 1 }), 'its "payloadType" is missing or not a string'],
      [JSON.stringify({ ...parsed, payload: undefined }), 'its "payload" is missing or not a string'],
      [JSON.stringify({ ...parsed, payload: "not base64!" }), 'its "payload" is not base64'],
      [JSON.stringify({ ...parsed, payload: "QUJD=" }), 'its "payload" is not base64'],
      [JSON.stringify({ ...parsed, signatures: {} }), 'its "signatures" is missing or not an array'],
      [JSON.stringify({ ...parsed, signatures: [] }), "it has no signatures"],
      [JSON.stringify({ ...parsed, signatures: ["x"] }), "its signature 1 is not an object"],
      [JSON.stringify({ ...parsed, signatures: [{ keyid: "ci" }] }), 'its signature 1 has no "sig" string'],
      [JSON.stringify({ ...parsed, signatures: [{ keyid: 5, sig }] }), 'the "keyid" of its signature 1 is not a string'],
      [JSON.stringify({ ...parsed, signatures: [{ keyid: "ci", sig: sig.slice(0, -2) + "%=" }] }), 'the "sig" of its signature 1 is not base64'],
      [JSON.stringify({ ...parsed, signatures: Array(33).fill({ keyid: "ci", sig }) }), "it has 33 signatures, more than 32"],
      [Buffer.alloc(MAX_ENVELOPE_BYTES + 1, 0x20), `it is ${MAX_ENVELOPE_BYTES + 1} bytes, more than`],
    ];
    for (const [bytes, why] of cases) {
      const r = refusal(() => parseEnvelope(typeof bytes === "string" ? Buffer.from(bytes) : bytes, "the signature of //examples:shout"));
      expect(r.code).toBe("INTEGRITY");
      expect(r.message.startsWith(`the signature of //examples:shout is not a DSSE envelope: ${why}`), `${r.message} / ${why}`).toBe(true);
      expect(r.message.split("\n")).toHaveLength(1);
      expect(r.message.endsWith(".")).toBe(true);
    }
  });

  it("a signature of the wrong length is bad, not a crash", () => {
    const env = signEnvelope(RESULT_FINGERPRINT_TYPE, good(), ci);
    env.signatures[0]!.sig = Buffer.alloc(63).toString("base64");
    expect(verifyEnvelope(env, trusted, RESULT_FINGERPRINT_TYPE).badSignatures).toEqual(["ci"]);
  });
});
