// A minimal WebAssembly binary reader: what the spec, the seal and `wmb verify` need to know
// about a module or a component, read from the bytes themselves (no toolchain involved).
//
// - the sections of a core module (version 1) or a component (layer 0x0d 0x00 0x01 0x00):
//   id, name (the custom section's own name for id 0), offsets and sizes;
// - for a component: its top-level imports (names like `wasi:cli/environment@0.2.3`), and every
//   nested core module (also inside nested components) with its memories' limits, both defined
//   and imported, so the seal can compare the memory maximum with the profile's memory_bytes.
//
// Only the sections that hold this information are decoded; everything else is skipped by size.

/** Names are UTF-8 (the spec): a name that is not is a malformed binary, found by fuzzing. */
const UTF8 = new TextDecoder("utf-8", { fatal: true });

export class WasmFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WasmFormatError";
  }
}

export type WasmKind = "module" | "component";

export interface WasmSection {
  id: number;
  /** "type", "import", "core module", … or the custom section's name ("custom:name"). */
  name: string;
  /** Offset of the section id byte. */
  offset: number;
  /** Offset of the section's contents (after id and size). */
  contentOffset: number;
  /** Size of the contents in bytes. */
  size: number;
}

export interface WasmSections {
  kind: WasmKind;
  sections: WasmSection[];
}

export interface MemoryLimits {
  /** Index in the module's memory index space (imports come first). */
  index: number;
  /** "module.field" for an imported memory, undefined for one the module defines. */
  importedFrom?: string;
  /** In pages. */
  min: number;
  /** In pages; null when none is declared (the memory may grow to the address space). */
  max: number | null;
  /** Bytes per page: 65536 unless the custom-page-sizes proposal says otherwise. */
  pageSize: number;
  shared: boolean;
  memory64: boolean;
}

export interface CoreModuleInfo {
  /** Where it sits: "module[0]", "component[1]/module[0]" (indices count sections of that kind). */
  path: string;
  /** Byte range of the module's bytes in the outermost binary. */
  offset: number;
  size: number;
  memories: MemoryLimits[];
}

export type ComponentImportKind = "module" | "func" | "value" | "type" | "component" | "instance";

export interface ComponentImport {
  name: string;
  kind: ComponentImportKind;
}

export interface ComponentInfo {
  sections: WasmSection[];
  /** The outermost component's imports, in binary order. */
  imports: ComponentImport[];
  /** The outermost component's export names, in binary order. */
  exports: string[];
  /** Every core module, nested components included, in binary order. */
  coreModules: CoreModuleInfo[];
}

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const CORE_VERSION = [0x01, 0x00, 0x00, 0x00];
const COMPONENT_LAYER = [0x0d, 0x00, 0x01, 0x00];
const WASM_PAGE = 65536;

const CORE_SECTION_NAMES: Record<number, string> = {
  0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory", 6: "global", 7: "export",
  8: "start", 9: "element", 10: "code", 11: "data", 12: "data count", 13: "tag",
};
const COMPONENT_SECTION_NAMES: Record<number, string> = {
  0: "custom", 1: "core module", 2: "core instance", 3: "core type", 4: "component", 5: "instance", 6: "alias",
  7: "type", 8: "canon", 9: "start", 10: "import", 11: "export", 12: "value",
};

/** True when `bytes` start with the wasm magic number. */
export function isWasm(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && MAGIC.every((b, i) => bytes[i] === b);
}

/** "module" or "component", from the 8-byte preamble. */
export function wasmKind(bytes: Uint8Array, base = 0): WasmKind {
  if (bytes.length - base < 8 || !MAGIC.every((b, i) => bytes[base + i] === b)) {
    throw new WasmFormatError(`no WebAssembly magic number at offset ${base}.`);
  }
  const tail = Array.from(bytes.subarray(base + 4, base + 8));
  if (tail.every((b, i) => b === CORE_VERSION[i])) return "module";
  if (tail.every((b, i) => b === COMPONENT_LAYER[i])) return "component";
  throw new WasmFormatError(`unknown WebAssembly version/layer ${tail.map((b) => b.toString(16).padStart(2, "0")).join(" ")} at offset ${base}.`);
}

/** The sections of a core module or a component, offsets relative to `bytes`. */
export function readWasmSections(bytes: Uint8Array): WasmSections {
  return readSectionsAt(bytes, 0, bytes.length);
}

function readSectionsAt(bytes: Uint8Array, start: number, end: number): WasmSections {
  const kind = wasmKind(bytes.subarray(0, end), start);
  const names = kind === "module" ? CORE_SECTION_NAMES : COMPONENT_SECTION_NAMES;
  const r = new Reader(bytes, start + 8, end);
  const sections: WasmSection[] = [];
  while (!r.done()) {
    const offset = r.pos;
    const id = r.byte();
    const size = r.u32();
    const contentOffset = r.pos;
    if (contentOffset + size > end) throw new WasmFormatError(`section ${id} at offset ${offset} runs past the end (${size} bytes declared).`);
    let name = names[id] ?? `unknown(${id})`;
    if (id === 0) name = `custom:${new Reader(bytes, contentOffset, contentOffset + size).name()}`;
    sections.push({ id, name, offset, contentOffset, size });
    r.pos = contentOffset + size;
  }
  return { kind, sections };
}

/** The memories a core module declares or imports. */
export function readCoreModuleMemories(bytes: Uint8Array, start = 0, end = bytes.length): MemoryLimits[] {
  const { kind, sections } = readSectionsAt(bytes, start, end);
  if (kind !== "module") throw new WasmFormatError("expected a core module, found a component.");
  const memories: MemoryLimits[] = [];
  for (const s of sections) {
    const r = new Reader(bytes, s.contentOffset, s.contentOffset + s.size);
    if (s.id === 2) {
      for (let n = r.u32(); n > 0; n--) {
        const module = r.name();
        const field = r.name();
        const desc = r.byte();
        switch (desc) {
          case 0x00: // func
            r.u32();
            break;
          case 0x01: // table
            r.refType();
            r.limits();
            break;
          case 0x02: // memory
            memories.push({ index: memories.length, importedFrom: `${module}.${field}`, ...r.limits() });
            break;
          case 0x03: // global
            r.valType();
            r.byte();
            break;
          case 0x04: // tag
            r.byte();
            r.u32();
            break;
          default:
            throw new WasmFormatError(`import ${module}.${field} at offset ${r.pos - 1} has an unknown kind 0x${desc.toString(16)}.`);
        }
      }
    } else if (s.id === 5) {
      for (let n = r.u32(); n > 0; n--) memories.push({ index: memories.length, ...r.limits() });
    }
  }
  return memories;
}

/** A component's top-level imports and all its nested core modules with their memories. */
export function readComponent(bytes: Uint8Array): ComponentInfo {
  const { kind, sections } = readWasmSections(bytes);
  if (kind !== "component") throw new WasmFormatError("expected a WebAssembly component, found a core module.");
  const imports: ComponentImport[] = [];
  const exports: string[] = [];
  const coreModules: CoreModuleInfo[] = [];
  collectModules(bytes, sections, "", coreModules);
  for (const s of sections) {
    if (s.id !== 10 && s.id !== 11) continue;
    const r = new Reader(bytes, s.contentOffset, s.contentOffset + s.size);
    for (let n = r.u32(); n > 0; n--) {
      const name = r.externName();
      if (s.id === 10) {
        imports.push({ name, kind: r.externDesc() });
      } else {
        exports.push(name);
        r.sortIdx();
        if (r.byte() === 0x01) r.externDesc();
      }
    }
  }
  return { sections, imports, exports, coreModules };
}

function collectModules(bytes: Uint8Array, sections: WasmSection[], prefix: string, out: CoreModuleInfo[]): void {
  let modules = 0;
  let components = 0;
  for (const s of sections) {
    if (s.id === 1) {
      const path = `${prefix}module[${modules++}]`;
      out.push({ path, offset: s.contentOffset, size: s.size, memories: readCoreModuleMemories(bytes, s.contentOffset, s.contentOffset + s.size) });
    } else if (s.id === 4) {
      const nested = readSectionsAt(bytes, s.contentOffset, s.contentOffset + s.size);
      collectModules(bytes, nested.sections, `${prefix}component[${components++}]/`, out);
    }
  }
}

/** Bytes a memory may grow to, or null when it declares no maximum. */
export function memoryMaximumBytes(m: MemoryLimits): number | null {
  return m.max === null ? null : m.max * m.pageSize;
}

class Reader {
  constructor(
    private readonly bytes: Uint8Array,
    public pos: number,
    private readonly end: number,
  ) {}

  done(): boolean {
    return this.pos >= this.end;
  }

  byte(): number {
    if (this.pos >= this.end) throw new WasmFormatError(`unexpected end of data at offset ${this.pos}.`);
    return this.bytes[this.pos++]!;
  }

  u32(): number {
    const v = this.uleb(5);
    if (v > 0xffffffffn) throw new WasmFormatError(`u32 out of range at offset ${this.pos}.`);
    return Number(v);
  }

  u64(): bigint {
    return this.uleb(10);
  }

  private uleb(maxBytes: number): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < maxBytes; i++) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw new WasmFormatError(`LEB128 number too long at offset ${this.pos}.`);
  }

  /** Signed LEB128 of up to 33 bits (heap types, component value types). */
  s33(): number {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 5; i++) {
      const b = this.byte();
      result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) {
        if (b & 0x40) result -= 1n << shift;
        return Number(result);
      }
    }
    throw new WasmFormatError(`s33 too long at offset ${this.pos}.`);
  }

  name(): string {
    const len = this.u32();
    if (this.pos + len > this.end) throw new WasmFormatError(`name runs past the end at offset ${this.pos}.`);
    let s: string;
    try {
      s = UTF8.decode(this.bytes.subarray(this.pos, this.pos + len));
    } catch {
      throw new WasmFormatError(`name at offset ${this.pos} is not UTF-8.`);
    }
    this.pos += len;
    return s;
  }

  limits(): Omit<MemoryLimits, "index" | "importedFrom"> {
    const flags = this.byte();
    if (flags & ~0x0f) throw new WasmFormatError(`unknown limits flags 0x${flags.toString(16)} at offset ${this.pos - 1}.`);
    const memory64 = (flags & 0x04) !== 0;
    const read = () => (memory64 ? Number(this.u64()) : this.u32());
    const min = read();
    const max = flags & 0x01 ? read() : null;
    const pageSize = flags & 0x08 ? 2 ** this.u32() : WASM_PAGE;
    return { min, max, pageSize, shared: (flags & 0x02) !== 0, memory64 };
  }

  /** funcref/externref, or (ref null? heaptype) from the GC/function-references proposals. */
  refType(): void {
    const b = this.byte();
    if (b === 0x63 || b === 0x64) this.s33();
  }

  valType(): void {
    const b = this.byte();
    if (b === 0x63 || b === 0x64) this.s33();
  }

  /** Component import/export name: a discriminant byte, then the name. */
  externName(): string {
    const at = this.pos;
    const tag = this.byte();
    if (tag !== 0x00 && tag !== 0x01) throw new WasmFormatError(`unknown component import name encoding 0x${tag.toString(16)} at offset ${at}.`);
    return this.name();
  }

  /** An export's sort (core sorts take a second byte) and index. */
  sortIdx(): void {
    if (this.byte() === 0x00) this.byte();
    this.u32();
  }

  externDesc(): ComponentImportKind {
    const at = this.pos;
    const sort = this.byte();
    switch (sort) {
      case 0x00: {
        const core = this.byte();
        if (core !== 0x11) throw new WasmFormatError(`unknown core sort 0x${core.toString(16)} in an import at offset ${at}.`);
        this.u32();
        return "module";
      }
      case 0x01:
        this.u32();
        return "func";
      case 0x02:
        // wasm-tools writes the value type directly (a primitive code or a type index).
        this.s33();
        return "value";
      case 0x03: {
        const bound = this.byte();
        if (bound === 0x00) this.u32();
        return "type";
      }
      case 0x04:
        this.u32();
        return "component";
      case 0x05:
        this.u32();
        return "instance";
      default:
        throw new WasmFormatError(`unknown import kind 0x${sort.toString(16)} at offset ${at}.`);
    }
  }
}
