// Text that remotes write reaches the terminal without escape sequences or control characters:
// terminalText itself, and a hostile registry (a few lines of node:http on 127.0.0.1) whose
// error answers carry OSC and CSI sequences, met by `wmb pull` (an error) and by a build using
// it as its remote cache (a warning). The ssh side is in hostile-ssh.test.ts.
import { createServer, type Server } from "node:http";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeWorkspace, wmb } from "./helpers/cli.ts";
import { terminalText } from "../src/terminal-text.ts";

/** Any byte a terminal acts on: C0 but newline, DEL, C1. */
export const CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

describe("terminalText", () => {
  it("drops escape sequences and control characters, keeping the text around them", () => {
    expect(terminalText("a\x1b]0;owned\x07b")).toBe("ab"); // OSC ended by BEL
    expect(terminalText("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b")).toBe("alinkb"); // OSC ended by ST
    expect(terminalText("a\x1b[2J\x1b[1;31mred\x1b[0mb")).toBe("aredb"); // CSI
    expect(terminalText("a\x9b2J\x9d0;t\x9cb")).toBe("ab"); // the same as 8-bit C1
    expect(terminalText("a\x1bPq#0;2;0;0;0\x1b\\b\x1b_apc\x07c")).toBe("abc"); // DCS, APC
    expect(terminalText("a\x1b7\x1bcb\x1b(Bc\x1b")).toBe("abc"); // two- and three-byte escapes, a lone ESC
    expect(terminalText("a\x1b]0;never ended")).toBe("a"); // a terminal would swallow the rest too
    expect(terminalText("a\bb\x00c\x7fd\x85e")).toBe("abcde");
    expect(terminalText("é ☃ 日本 \u{1F600}")).toBe("é ☃ 日本 \u{1F600}");
  });

  it("keeps one line by default, newlines and tabs for a detail block", () => {
    expect(terminalText("one\ntwo\r\nthree\tfour\rfive")).toBe("one two three four five");
    expect(terminalText("one\ntwo\r\nthree\tfour\x1b[2K\rfive", { lines: true })).toBe("one\ntwo\nthree\tfourfive");
  });
});

/** A registry whose every tag exists (HEAD) and whose every GET fails with a registry error
 * whose code and message carry escape sequences. */
function hostileRegistry(): Promise<{ host: string; server: Server }> {
  const server = createServer((req, res) => {
    if (req.method === "HEAD") {
      res.writeHead(200, { "docker-content-digest": `sha256:${"ab".repeat(32)}`, "content-type": "application/vnd.oci.image.manifest.v1+json" });
      res.end();
      return;
    }
    res.writeHead(400, { "content-type": "application/json" });
    res.end(JSON.stringify({ errors: [{ code: "DENIED\x1b[2J", message: "boom\x1b]0;owned\x07\x1b[2J\x1b[1;1Hover\r\nerror: forged\x9b2J" }] }));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ host: `127.0.0.1:${(server.address() as { port: number }).port}`, server })));
}

describe("a hostile registry's error text", () => {
  let reg: { host: string; server: Server };
  const env = () => ({ DOCKER_CONFIG: mkdtempSync(join(tmpdir(), "wmb-docker-")) });
  beforeAll(async () => {
    reg = await hostileRegistry();
  });
  afterAll(() => reg?.server.close());

  it("reaches stderr as one line without escapes: an error of pull", async () => {
    const ws = makeWorkspace({ "BUILD.ts": "export default () => {};\n" });
    const r = await wmb(ws, ["pull", "--store", join(ws, "store"), `oci://${reg.host}/acme/m:1`], { env: env() });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^error: .*boom.*over error: forged/);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).not.toMatch(CONTROL);
  });

  it("reaches stderr without escapes: the warning of a build that uses it as its remote cache", async () => {
    const ws = makeWorkspace({ "BUILD.ts": `export default (w) => { w.package("p").write({ name: "a", out: "a.txt", content: "alpha\\n" }); };\n` });
    const r = await wmb(ws, ["build", "//p:a"], { env: { ...env(), WMB_REMOTE_CACHE: `oci://${reg.host}/acme/cache` } });
    expect(r.code, r.stderr).toBe(0);
    const warnings = r.stderr.split("\n").filter((l) => l.startsWith("warning:"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/cannot be used .*boom.*over error: forged.*building locally/);
    expect(r.stderr).not.toMatch(CONTROL);
  });
});
