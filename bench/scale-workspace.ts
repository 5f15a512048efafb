// The scale benchmark's workspace: one package with N/2 `write` rules, each feeding one `run`
// rule (`tr v V < wI.txt > rI.txt`), and the same graph as a Makefile, so wmb and make are
// timed on identical work.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface ScaleWorkspace {
  dir: string;
  /** Every `run` target, as the command line requests them. */
  labels: string[];
  /** A directory with the same graph as a Makefile (`make -s -j2 all`). */
  makeDir: string;
}

export function scaleWorkspace(actions: number): ScaleWorkspace {
  const pairs = Math.floor(actions / 2);
  const dir = mkdtempSync(join(tmpdir(), `wmb-scale-${actions}-`));
  writeFileSync(join(dir, "package.json"), '{ "type": "module" }\n');
  writeFileSync(
    join(dir, "BUILD.ts"),
    `export default (w) => {
  const p = w.package("s");
  for (let i = 0; i < ${pairs}; i++) {
    p.write({ name: "w" + i, out: "w" + i + ".txt", content: "value " + i + "\\n" });
    p.run({ name: "r" + i, srcs: [":w" + i], outs: ["r" + i + ".txt"], cmd: "tr v V < w" + i + ".txt > r" + i + ".txt" });
  }
};\n`,
  );
  const makeDir = mkdtempSync(join(tmpdir(), `wmb-scale-make-${actions}-`));
  mkdirSync(makeDir, { recursive: true });
  const rules: string[] = [`all: ${Array.from({ length: pairs }, (_, i) => `r${i}.txt`).join(" ")}\n`];
  for (let i = 0; i < pairs; i++) {
    rules.push(`w${i}.txt:\n\tprintf 'value ${i}\\n' > $@\nr${i}.txt: w${i}.txt\n\ttr v V < w${i}.txt > $@\n`);
  }
  writeFileSync(join(makeDir, "Makefile"), rules.join(""));
  return { dir, labels: Array.from({ length: pairs }, (_, i) => `//s:r${i}`), makeDir };
}
