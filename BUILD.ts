// The wmb workspace. `npx wmb build //sqlite-cli:sealed` builds the sealed SQLite machine;
// //examples shows the generic rules.
import type { Workspace } from "./src/build-file.ts";

export default (w: Workspace) => {
  const ex = w.package("examples");
  ex.write({ name: "greeting", out: "greeting.txt", content: "hello, wasm machines\n" });
  ex.glob({ name: "data", patterns: ["data/*.txt"] });
  ex.run({
    name: "shout",
    srcs: [":greeting"],
    outs: ["shout.txt"],
    cmd: "tr a-z A-Z < greeting.txt > shout.txt",
  });
  ex.run({
    name: "hello",
    srcs: [":shout", ":data"],
    outs: ["hello.txt"],
    cmd: "cat shout.txt data/*.txt | sort > hello.txt && wc -l < hello.txt >> hello.txt",
  });
};
