// What wmb signs (#25): the result fingerprint (rebuilt from the result and compared as bytes),
// and the in-toto Statements about machines, each read only in its canonical form.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hashBytes, type ActionKey } from "../src/digest.ts";
import { isWmbError } from "../src/errors.ts";
import { canonicalize } from "../src/formats/jcs.ts";
import { signEnvelope, verifyEnvelope } from "../src/trust/dsse.ts";
import { generateSecretKeyFile, readSigningKey } from "../src/trust/keys.ts";
import { RESULT_FINGERPRINT_TYPE, parseResultFingerprint, resultFingerprintBytes, resultFingerprintMismatch, type ResultToSign } from "../src/trust/result-fingerprint.ts";
import {
  IN_TOTO_PAYLOAD_TYPE,
  MACHINE_PREDICATE_TYPE,
  REBUILD_PREDICATE_TYPE,
  SLSA_PROVENANCE_TYPE,
  STATEMENT_TYPE,
  WMB_BUILD_TYPE,
  independentRebuilders,
  machineStatement,
  machineStatementMismatch,
  parseMachineStatement,
  parseProvenance,
  parseRebuildAttestation,
  provenanceStatement,
  rebuildAttestation,
  statementBytes,
  type ProvenanceInput,
} from "../src/trust/statements.ts";

const KEY = hashBytes("key inputs of //examples:shout") as string as ActionKey;
const OTHER_KEY = hashBytes("key inputs of //examples:greeting") as string as ActionKey;
const d = (s: string) => hashBytes(s);

const shout: ResultToSign = {
  sandbox: "bwrap",
  outputs: {
    "shout.txt": { blake3: d("HELLO\n"), size: 6, executable: false },
    "bin/run": { blake3: d("#!/bin/sh\n"), size: 10, executable: true },
  },
};

function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (!isWmbError(e)) throw e;
    expect(e.code).toBe("INTEGRITY");
    return e.message;
  }
  throw new Error("accepted");
}

/** Canonical bytes of a hand-made document (members set to undefined are left out). */
const bytes = (value: unknown) => Buffer.from(canonicalize(JSON.parse(JSON.stringify(value))));

describe("result fingerprint", () => {
  it("is the canonical JSON of key, sandbox and every output's path, BLAKE3, size and mode", () => {
    const text = Buffer.from(resultFingerprintBytes(KEY, shout)).toString();
    expect(text).toBe(
      `{"action_key":"${KEY}","outputs":[{"blake3":"${d("#!/bin/sh\n")}","executable":true,"path":"bin/run","size":10},{"blake3":"${d("HELLO\n")}","executable":false,"path":"shout.txt","size":6}],"sandbox":"bwrap"}`,
    );
    expect(parseResultFingerprint(Buffer.from(text), "x").outputs.map((o) => o.path)).toEqual(["bin/run", "shout.txt"]);
    // Output order in the result does not change the bytes.
    const reversed = { ...shout, outputs: Object.fromEntries(Object.entries(shout.outputs).reverse()) };
    expect(Buffer.from(resultFingerprintBytes(KEY, reversed)).toString()).toBe(text);
  });

  it("matches the result it was made from, and says what differs otherwise", () => {
    const signed = resultFingerprintBytes(KEY, shout);
    expect(resultFingerprintMismatch(signed, KEY, shout)).toBeUndefined();
    // A signature copied from one result onto another key's.
    expect(resultFingerprintMismatch(signed, OTHER_KEY, shout)).toBe(`the signature is for action key ${KEY}, not ${OTHER_KEY}`);
    const poisoned = { ...shout, outputs: { ...shout.outputs, "shout.txt": { blake3: d("PWNED BY THE CACHE\n"), size: 6, executable: false } } };
    expect(resultFingerprintMismatch(signed, KEY, poisoned)).toBe(`output shout.txt has blake3 ${d("PWNED BY THE CACHE\n")}, and the signed one ${d("HELLO\n")}`);
    const bigger = { ...shout, outputs: { ...shout.outputs, "shout.txt": { ...shout.outputs["shout.txt"]!, size: 7 } } };
    expect(resultFingerprintMismatch(signed, KEY, bigger)).toBe("output shout.txt has size 7, and the signed one 6");
    const executable = { ...shout, outputs: { ...shout.outputs, "shout.txt": { ...shout.outputs["shout.txt"]!, executable: true } } };
    expect(resultFingerprintMismatch(signed, KEY, executable)).toBe("output shout.txt has executable true, and the signed one false");
    expect(resultFingerprintMismatch(signed, KEY, { ...shout, sandbox: "none" })).toBe("it was signed as made with sandbox bwrap, and the result says none");
    expect(resultFingerprintMismatch(signed, KEY, { ...shout, sandbox: undefined })).toBe("it was signed as made with sandbox bwrap, and the result says nothing");
    const extra = { ...shout, outputs: { ...shout.outputs, "more.txt": { blake3: d(""), size: 0, executable: false } } };
    expect(resultFingerprintMismatch(signed, KEY, extra)).toBe("it was signed with outputs bin/run, shout.txt, and the result has bin/run, more.txt, shout.txt");
  });

  it("cannot be signed without saying how the result was made", () => {
    expect(() => resultFingerprintBytes(KEY, { outputs: {} })).toThrow("does not say how it was made");
  });

  it("is read only in its one canonical form, with exactly its members", () => {
    const good = JSON.parse(Buffer.from(resultFingerprintBytes(KEY, shout)).toString()) as Record<string, unknown>;
    const out0 = (good.outputs as Record<string, unknown>[])[0]!;
    const cases: [Uint8Array, string][] = [
      [Buffer.from(JSON.stringify(good, null, 1)), "it is not in canonical JSON form"],
      // Two parsers could read a duplicate member differently: refused.
      [Buffer.from(canonicalize(good).replace('{"action_key"', `{"action_key":"${OTHER_KEY}","action_key"`)), "it is not in canonical JSON form"],
      [bytes({ ...good, label: "//x" }), 'it has member "label" that a v1 fingerprint does not'],
      [bytes({ ...good, sandbox: undefined }), 'it lacks "sandbox"'],
      [bytes({ ...good, sandbox: "docker" }), "sandbox is not one of"],
      [bytes({ ...good, action_key: KEY.toUpperCase() }), "action_key is not 64 lowercase hex digits"],
      [bytes({ ...good, outputs: [(good.outputs as unknown[])[1], out0] }), "outputs[1].path is not after"],
      [bytes({ ...good, outputs: [out0, out0] }), "outputs[1].path is not after"],
      [bytes({ ...good, outputs: [{ ...out0, size: -1 }] }), "outputs[0].size is not a byte count"],
      [bytes({ ...good, outputs: [{ ...out0, size: 1.5 }] }), "outputs[0].size is not a byte count"],
      [bytes({ ...good, outputs: [{ ...out0, executable: "yes" }] }), "outputs[0].executable is not true or false"],
      [bytes({ ...good, outputs: [{ ...out0, mode: 493 }] }), 'outputs[0] has member "mode"'],
      [bytes({ ...good, outputs: [{ ...out0, path: "" }] }), "outputs[0].path is missing or not a non-empty string"],
      [bytes([]), "it is not a JSON object"],
      [Buffer.from("{"), "it is not JSON ("],
    ];
    for (const [payload, why] of cases) {
      const message = refusal(() => parseResultFingerprint(payload, "the fingerprint of //examples:shout"));
      expect(message.startsWith(`the fingerprint of //examples:shout is not a wmb result fingerprint: ${why}`), `${message} / ${why}`).toBe(true);
    }
  });

  it("signs and verifies in well under a millisecond per action", () => {
    const dir = mkdtempSync(join(tmpdir(), "wmb-fp-"));
    generateSecretKeyFile("ci", join(dir, "ci.secret"));
    const key = readSigningKey(join(dir, "ci.secret"));
    const n = 500;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const env = signEnvelope(RESULT_FINGERPRINT_TYPE, resultFingerprintBytes(KEY, shout), key);
      const v = verifyEnvelope(env, [key.publicKey], RESULT_FINGERPRINT_TYPE);
      if (resultFingerprintMismatch(v.payloadBytes!, KEY, shout) !== undefined) throw new Error("mismatch");
    }
    // Generous for a shared 2-core machine; bench/ measures it properly.
    expect((performance.now() - t0) / n).toBeLessThan(1);
  });
});

const identity = `blake3:${d("the sealed spec")}`;
const index = `sha256:${"c".repeat(64)}`;

describe("provenance (SLSA v1 in an in-toto Statement)", () => {
  const input: ProvenanceInput = {
    subjects: [
      { name: "sqlite-cli.wasm", sha256: "1".repeat(64) },
      { name: "sqlite-cli", sha256: "2".repeat(64) },
    ],
    label: "//sqlite-cli:sealed",
    wmbVersion: "0.1.0",
    toolchain: { kind: "hermetic", digest: { blake3: d("clang") } },
    buildFile: d("BUILD.ts"),
    sources: [
      { uri: "sqlite-cli/shims.c", blake3: d("shims") },
      { uri: "sqlite-cli/rootfs/.sqliterc", blake3: d("rc") },
    ],
    builderId: "https://wmb.dev/builders/ci",
    invocationId: "build-42",
    startedOn: new Date("2025-01-02T03:04:05.000Z"),
    finishedOn: new Date("2025-01-02T03:05:00.000Z"),
    actions: [
      { label: "//sqlite-cli:wasm", key: KEY, sandbox: "in-process" },
      { label: "//sqlite-cli:rootfs", key: OTHER_KEY, sandbox: "bwrap" },
    ],
  };

  it("has the in-toto and SLSA shape, BUILD.ts first, and reads back", () => {
    const s = provenanceStatement(input);
    expect(s._type).toBe(STATEMENT_TYPE);
    expect(s.predicateType).toBe(SLSA_PROVENANCE_TYPE);
    expect(s.subject).toEqual([
      { name: "sqlite-cli.wasm", digest: { sha256: "1".repeat(64) } },
      { name: "sqlite-cli", digest: { sha256: "2".repeat(64) } },
    ]);
    const def = s.predicate.buildDefinition;
    expect(def.buildType).toBe(WMB_BUILD_TYPE);
    expect(def.externalParameters).toEqual({ label: "//sqlite-cli:sealed" });
    expect(def.internalParameters).toEqual({ wmbVersion: "0.1.0", toolchain: { kind: "hermetic", digest: { blake3: d("clang") } } });
    expect(def.resolvedDependencies.map((r) => r.uri)).toEqual(["BUILD.ts", "sqlite-cli/rootfs/.sqliterc", "sqlite-cli/shims.c"]);
    expect(def.resolvedDependencies[0]).toEqual({ uri: "BUILD.ts", digest: { blake3: d("BUILD.ts") } });
    expect(s.predicate.runDetails.metadata).toEqual({ invocationId: "build-42", startedOn: "2025-01-02T03:04:05.000Z", finishedOn: "2025-01-02T03:05:00.000Z" });
    expect(s.predicate.runDetails.byproducts).toContainEqual({ name: "//sqlite-cli:rootfs", digest: { blake3: OTHER_KEY }, annotations: { sandbox: "bwrap" } });
    const back = parseProvenance(statementBytes(s), "the provenance");
    expect(JSON.parse(canonicalize(back))).toEqual(JSON.parse(canonicalize(s)));
  });

  it("refuses another predicate type, a wrong buildType, a bad digest, no subject", () => {
    const s = JSON.parse(Buffer.from(statementBytes(provenanceStatement(input))).toString()) as Record<string, any>;
    const cases: [unknown, string][] = [
      [{ ...s, _type: "https://in-toto.io/Statement/v0.1" }, "its _type is not"],
      [{ ...s, predicateType: MACHINE_PREDICATE_TYPE }, `its predicateType is "${MACHINE_PREDICATE_TYPE}"`],
      [{ ...s, subject: [] }, "it has no subject"],
      [{ ...s, subject: [{ name: "x", digest: { sha256: "XYZ" } }] }, "subject[0].digest.sha256 is not 64 lowercase hex digits"],
      [{ ...s, subject: [{ name: "x", digest: { md5: "0".repeat(32) } }] }, "subject[0].digest has neither sha256 nor blake3"],
      [{ ...s, predicate: { ...s.predicate, buildDefinition: { ...s.predicate.buildDefinition, buildType: "https://example.com/x" } } }, "predicate.buildDefinition.buildType is not"],
      [{ ...s, predicate: { ...s.predicate, buildDefinition: { ...s.predicate.buildDefinition, resolvedDependencies: s.predicate.buildDefinition.resolvedDependencies.slice(1) } } }, "predicate.buildDefinition.resolvedDependencies does not start with BUILD.ts"],
      [{ ...s, predicate: { ...s.predicate, runDetails: { ...s.predicate.runDetails, metadata: { startedOn: "yesterday" } } } }, "predicate.runDetails.metadata.startedOn is not an RFC 3339 UTC timestamp"],
    ];
    for (const [doc, why] of cases) {
      const message = refusal(() => parseProvenance(bytes(doc), "the provenance"));
      expect(message.startsWith(`the provenance is not a SLSA provenance: ${why}`), `${message} / ${why}`).toBe(true);
    }
    // Members it does not know are ignored, as in-toto asks.
    expect(parseProvenance(bytes({ ...s, future: 1 }), "x").predicate.buildDefinition.externalParameters.label).toBe("//sqlite-cli:sealed");
  });
});

describe("machine statement", () => {
  it("names the identity and the index, and a re-pushed machine does not match", () => {
    const s = machineStatement({ name: "sqlite-cli", identity, index });
    expect(s).toEqual({ _type: STATEMENT_TYPE, subject: [{ name: "sqlite-cli", digest: { sha256: "c".repeat(64) } }], predicateType: MACHINE_PREDICATE_TYPE, predicate: { identity, index } });
    const back = parseMachineStatement(statementBytes(s), "x");
    expect(machineStatementMismatch(back, { identity, index })).toBeUndefined();
    const other = `sha256:${"d".repeat(64)}`;
    expect(machineStatementMismatch(back, { identity, index: other })).toBe(`the signature is for the index ${index}, not ${other}`);
    const wordcount = `blake3:${d("wordcount")}`;
    expect(machineStatementMismatch(back, { identity: wordcount, index })).toBe(`the signature is for the machine ${identity}, not ${wordcount}`);
    const lying = { ...s, subject: [{ name: "sqlite-cli", digest: { sha256: "d".repeat(64) } }] };
    expect(refusal(() => parseMachineStatement(statementBytes(lying), "x"))).toBe("x is not a wmb machine statement: its subject is not the index its predicate names.");
    expect(refusal(() => parseMachineStatement(statementBytes({ ...s, predicate: { identity: "blake3:zz", index } }), "x"))).toBe("x is not a wmb machine statement: predicate.identity is not blake3:<64 hex digits>.");
  });
});

describe("rebuild attestations", () => {
  const attest = (rebuilder: string, id = identity) => parseRebuildAttestation(statementBytes(rebuildAttestation({ name: "sqlite-cli", identity: id, label: "//sqlite-cli:sealed", rebuilder, wmbVersion: "0.1.0", toolchain: { kind: "hermetic", digest: { blake3: d("clang") } }, rebuiltOn: new Date(0) })), "x");

  it("reads back with its own predicate type", () => {
    const a = attest("alice");
    expect(a.predicateType).toBe(REBUILD_PREDICATE_TYPE);
    expect(a.subject).toEqual([{ name: "sqlite-cli", digest: { blake3: identity.slice(7) } }]);
    expect(a.predicate).toEqual({ identity, label: "//sqlite-cli:sealed", rebuilder: "alice", wmbVersion: "0.1.0", toolchain: { kind: "hermetic", digest: { blake3: d("clang") } }, rebuiltOn: "1970-01-01T00:00:00.000Z" });
    const s = rebuildAttestation({ name: "m", identity, label: "//m", rebuilder: "a", wmbVersion: "0.1.0" });
    expect(refusal(() => parseRebuildAttestation(statementBytes({ ...s, subject: [{ name: "m", digest: { blake3: d("other") } }] }), "x"))).toContain("its subject is not the identity its predicate names");
    expect(refusal(() => parseMachineStatement(statementBytes(s), "x"))).toContain(`its predicateType is "${REBUILD_PREDICATE_TYPE}"`);
  });

  it("count once per distinct trusted rebuilder other than the pusher, for this identity only", () => {
    const ok = (rebuilder: string, signers = [rebuilder], id = identity) => ({ statement: attest(rebuilder, id), validSigners: signers });
    expect(independentRebuilders([ok("alice"), ok("bob")], identity, ["ci"])).toEqual(["alice", "bob"]);
    // N rebuilds all signed by one key count once.
    expect(independentRebuilders([ok("alice"), ok("alice"), ok("alice")], identity, ["ci"])).toEqual(["alice"]);
    // The pusher attesting its own machine is not independent.
    expect(independentRebuilders([ok("ci"), ok("alice")], identity, ["ci"])).toEqual(["alice"]);
    // An attestation for another identity.
    expect(independentRebuilders([ok("alice", ["alice"], `blake3:${d("other")}`)], identity, [])).toEqual([]);
    // A rebuilder named in the statement but not among the envelope's valid signers (mallory signed "bob").
    expect(independentRebuilders([ok("bob", ["mallory"]), ok("bob", [])], identity, [])).toEqual([]);
  });
});

describe("statements in envelopes", () => {
  it("use the in-toto payload type", () => {
    const dir = mkdtempSync(join(tmpdir(), "wmb-st-"));
    generateSecretKeyFile("ci", join(dir, "ci.secret"));
    const key = readSigningKey(join(dir, "ci.secret"));
    const env = signEnvelope(IN_TOTO_PAYLOAD_TYPE, statementBytes(machineStatement({ name: "m", identity, index })), key);
    const v = verifyEnvelope(env, [key.publicKey], IN_TOTO_PAYLOAD_TYPE);
    expect(parseMachineStatement(v.payloadBytes!, "x").predicate).toEqual({ identity, index });
  });
});
