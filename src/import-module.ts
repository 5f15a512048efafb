// Dynamic import() of a package or file outside wmb's own code (jco-transpile, esbuild, tsx, a
// compiled BUILD.ts). The bundled CLI is compiled through node:vm with a V8 code cache
// (bin/wmb.mjs), and code compiled that way cannot call import() itself: the launcher, an ES
// module, lends its own. From the sources (tsx, tests) import() is used directly.

type Importer = (specifier: string) => Promise<unknown>;

export function importModule<T>(specifier: string): Promise<T> {
  const lent = (globalThis as { __wmbImport?: Importer }).__wmbImport;
  return (lent ? lent(specifier) : import(specifier)) as Promise<T>;
}
