// Whether Debian's clang/lld/wasi-libc are installed: the suites that use them skip otherwise.
import { createToolchain } from "../../rules/toolchain.ts";

export const systemToolchainInstalled: boolean = (() => {
  try {
    createToolchain("system", { jobs: 1 });
    return true;
  } catch {
    return false;
  }
})();
