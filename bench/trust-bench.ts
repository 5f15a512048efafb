// What signatures cost per action (#25): signing one result (fingerprint, PAE, Ed25519, envelope
// JSON) and checking one (envelope parse, Ed25519 verify, fingerprint rebuilt and compared), in
// process, for results of 1, 3 and 20 outputs; then end to end on a loopback registry, a
// 40-action graph built from the remote cache by a fresh clone with and without trusted keys
// (the referrer reads a signed lookup adds), per action.
import { mkdtempSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cli, fmt, median, row, section, withRegistry } from "./harness.ts";
import { hashBytes, type ActionKey } from "../src/digest.ts";
import { generateSecretKeyFile, readSigningKey } from "../src/trust/keys.ts";
import { judgeResult, signResult } from "../src/remote/result-signatures.ts";

function result(outputs: number) {
  return {
    sandbox: "bwrap" as const,
    outputs: Object.fromEntries(Array.from({ length: outputs }, (_, i) => [`out/file-${i}.o`, { blake3: hashBytes(`output ${i}`), size: 1000 + i, executable: i % 2 === 0 }])),
  };
}

/** µs per call, the median of 5 batches of `n`. */
function perCall(n: number, f: () => unknown): number {
  for (let i = 0; i < 200; i++) f();
  return median(
    [0, 1, 2, 3, 4].map(() => {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) f();
      return ((performance.now() - t0) * 1000) / n;
    }),
  );
}

export async function trustBench(): Promise<void> {
  section("signatures (in process, node:crypto Ed25519, one trusted key)");
  const dir = mkdtempSync(join(tmpdir(), "wmb-bench-keys-"));
  generateSecretKeyFile("ci", join(dir, "ci.secret"));
  const signer = readSigningKey(join(dir, "ci.secret"));
  const key = hashBytes("an action key") as string as ActionKey;
  for (const n of [1, 3, 20]) {
    const r = result(n);
    const envelope = signResult(signer, key, r);
    const sign = perCall(2000, () => signResult(signer, key, r));
    const check = perCall(2000, () => {
      if (!judgeResult([envelope], [signer.publicKey], key, r).trusted) throw new Error("not trusted");
    });
    row(`sign one result, ${n} output${n === 1 ? "" : "s"}`, `${sign.toFixed(0)} µs`);
    row(`check one result, ${n} output${n === 1 ? "" : "s"}`, `${check.toFixed(0)} µs`, "goal: under 1 ms per action");
  }

  section("signed remote results end to end (loopback docker-registry, 40 actions)");
  await withRegistry((host) => {
    const docker = { DOCKER_CONFIG: mkdtempSync(join(tmpdir(), "wmb-bench-docker-")) };
    const cache = `oci://${host}/bench/signed`;
    const workspace = () => {
      const ws = mkdtempSync(join(tmpdir(), "wmb-bench-trust-ws-"));
      const lines = Array.from({ length: 40 }, (_, i) => `  p.write({ name: "w${i}", out: "w${i}.txt", content: "file ${i}\\n" });`);
      mkdirSync(join(ws, "p"));
      writeFileSync(join(ws, "BUILD.ts"), `export default (w) => {\n  const p = w.package("p");\n${lines.join("\n")}\n};\n`);
      return ws;
    };
    const up = cli(workspace(), ["build", "--remote-upload", "--remote-cache", cache, "--signing-key", join(dir, "ci.secret"), "//p:all"], docker).ms;
    row("upload and sign 40 results", fmt(up), `${fmt(up / 40)} per action, registry writes included`);
    const fresh = (env: Record<string, string>) => median([0, 1, 2].map(() => cli(workspace(), ["build", "--remote-cache", cache, "//p:all"], { ...docker, ...env }).ms));
    const open = fresh({});
    const signed = fresh({ WMB_TRUSTED_KEYS: signer.publicKey.toString() });
    row("fresh clone from the remote, no trusted keys (median of 3)", fmt(open));
    row("fresh clone from the remote, CI's key trusted (median of 3)", fmt(signed), `+${fmt((signed - open) / 40)} per action (referrer reads + check)`);
  });
}
