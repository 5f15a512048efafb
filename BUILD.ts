// The wmb workspace. `npx wmb build //sqlite-cli:sealed` builds the sealed SQLite machine;
// //examples shows the generic rules.
import type { Workspace } from "./src/build-file.ts";

/** The machine's memory limit: linked into the wasm as its maximum, and declared in the spec. */
const MEMORY_BYTES = 128 * 1024 * 1024;

export default (w: Workspace) => {
  const ex = w.package("examples");
  ex.write({ name: "greeting", out: "greeting.txt", content: "hello, wasm machines\n" });
  ex.glob({ name: "data", patterns: ["data/*.txt"] });
  ex.run({ name: "shout", srcs: [":greeting"], outs: ["shout.txt"], cmd: "tr a-z A-Z < greeting.txt > shout.txt" });
  ex.run({
    name: "hello",
    srcs: [":shout", ":data"],
    outs: ["hello.txt"],
    cmd: "cat shout.txt data/*.txt | sort > hello.txt && wc -l < hello.txt >> hello.txt",
  });

  const p = w.package("sqlite-cli");

  // Sources: the official amalgamation, shipped inside the npm package sqlite3.
  p.fetch({
    name: "sqlite3_npm",
    package: "sqlite3@6.0.1",
    integrity: "sha512-X0czUUMG2tmSqJpEQa3tCuZSHKIx8PwM53vLZzKp/o6Rpy25fiVfjdbnZ988M8+O3ZWR1ih0K255VumCb3MAnQ==",
  });
  p.extract({
    name: "src",
    srcs: [":sqlite3_npm"],
    archive: "package/deps/sqlite-autoconf-3520000.tar.gz",
    files: {
      "sqlite3.c": "sqlite-autoconf-3520000/sqlite3.c",
      "sqlite3.h": "sqlite-autoconf-3520000/sqlite3.h",
      "shell.c": "sqlite-autoconf-3520000/shell.c",
    },
  });

  // The WASI preview1 command adapter, from the jco tarball.
  p.fetch({
    name: "jco_npm",
    package: "@bytecodealliance/jco@1.35.0",
    integrity: "sha512-O53cWIMm/M1SpwLxKRicvAMDnzWf4zWs6I6qFZIGbn3HUovDMCCe9blkGxxYuyocHjVf/cXgNmlMu/x7Tyi77A==",
  });
  p.extract({
    name: "adapter",
    srcs: [":jco_npm"],
    files: { "wasi_snapshot_preview1.command.wasm": "package/lib/wasi_snapshot_preview1.command.wasm" },
  });

  // The core module: one compile per C file, then one link.
  p.wasi_binary({
    name: "wasm",
    out: "sqlite-cli.core.wasm",
    copts: ["-Os"],
    // What SQLite's shell needs on WASI: no extensions, threads or system(); emulated
    // signals, getpid and process clocks from wasi-libc; temp tables and sorts in memory,
    // since the machine has no writable temp directory (only /db).
    defines: [
      "SQLITE_OMIT_LOAD_EXTENSION",
      "SQLITE_THREADSAFE=0",
      "SQLITE_NOHAVE_SYSTEM",
      "_WASI_EMULATED_SIGNAL",
      "_WASI_EMULATED_GETPID",
      "_WASI_EMULATED_PROCESS_CLOCKS",
      "SQLITE_ENABLE_MATH_FUNCTIONS",
      "SQLITE_TEMP_STORE=3",
    ],
    sources: [
      { src: "sqlite3.c", srcs: [":src"] },
      { src: "shell.c", srcs: [":src", "shims/wasi_shims.h"], copts: ["-include", "shims/wasi_shims.h"] },
      { src: "shims/wasi_shims.c", srcs: ["shims/wasi_shims.c", "shims/wasi_shims.h"] },
    ],
    linkopts: ["-lwasi-emulated-signal", "-lwasi-emulated-getpid", "-lwasi-emulated-process-clocks"],
    max_memory: MEMORY_BYTES,
    stack_size: 1024 * 1024,
  });

  p.component({
    name: "component",
    srcs: [":wasm", ":adapter"],
    module: "sqlite-cli.core.wasm",
    adapter: "wasi_snapshot_preview1.command.wasm",
    out: "component.wasm",
  });

  p.rootfs({
    name: "rootfs",
    srcs: ["rootfs/.sqliterc"],
    files: { "/.sqliterc": "rootfs/.sqliterc" },
    dirs: ["/db"],
    out: "rootfs.tar",
  });

  p.spec({
    name: "spec",
    srcs: [":component", ":rootfs", "spec.template.json"],
    machine: "sqlite-cli",
    template: "spec.template.json",
    kernel: "component.wasm",
    rootfs: "rootfs.tar",
  });

  p.seal({
    name: "sealed",
    srcs: [":spec", ":component", ":rootfs"],
    machine: "sqlite-cli",
    kernel: "component.wasm",
    rootfs: "rootfs.tar",
  });

  // A second, small machine with its own profile (16 MiB, nothing writable): the engine and
  // the runtime are not sqlite-shaped.
  const wc = w.package("examples/wordcount");
  wc.wasi_binary({ name: "wasm", out: "wordcount.core.wasm", copts: ["-Os"], sources: [{ src: "wordcount.c", srcs: ["wordcount.c"] }], max_memory: 16 * 1024 * 1024 });
  wc.component({ name: "component", srcs: [":wasm", "//sqlite-cli:adapter"], module: "wordcount.core.wasm", adapter: "wasi_snapshot_preview1.command.wasm", out: "component.wasm" });
  wc.rootfs({ name: "rootfs", srcs: ["rootfs/etc/motd"], files: { "/etc/motd": "rootfs/etc/motd" }, out: "rootfs.tar" });
  wc.spec({ name: "spec", srcs: [":component", ":rootfs", "spec.template.json"], machine: "wordcount", template: "spec.template.json", kernel: "component.wasm", rootfs: "rootfs.tar" });
  wc.seal({ name: "sealed", srcs: [":spec", ":component", ":rootfs"], machine: "wordcount", kernel: "component.wasm", rootfs: "rootfs.tar" });
};
