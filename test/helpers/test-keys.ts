// Keys and refusals for the trust suites (#25): a fresh Ed25519 key pair per call, and the one
// sentence a refused command prints.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import type { CliResult } from "./cli.ts";
import { generateSecretKeyFile } from "../../src/trust/keys.ts";

/** A key pair in a temp dir: the secret file's path and the public key as wmb prints it. */
export function testKey(name: string): { file: string; pub: string } {
  const file = join(mkdtempSync(join(tmpdir(), "wmb-trust-key-")), `${name}.secret`);
  return { file, pub: generateSecretKeyFile(name, file).toString() };
}

/** stderr of a refused command: exactly one line, returned. */
export function oneSentence(r: CliResult): string {
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0]!;
}
