// A sealed machine as an OCI artifact (the contract other clients read; README "OCI layout"):
//
//   tag, blake3-<identity hex> -> image index  (artifactType ARTIFACT_TYPE)
//     ├─ manifest "component": a plain CNCF wasm artifact, so wasm tools accept it:
//     │     config application/vnd.wasm.config.v0+json, exactly one application/wasm layer
//     └─ manifest "machine": config = the sealed spec (SPEC_MEDIA_TYPE, no sources),
//           one layer = the rootfs tar
//
// Every document is written here from the spec and the component alone (no time, no host, no
// location), so the same machine gives the same index digest from any host or store.
import type { SealedSpec } from "../formats/machine-spec.ts";
import { withSources, formatSpec } from "../formats/machine-spec.ts";
import type { ComponentInfo } from "../formats/wasm.ts";
import { MEDIA_INDEX, MEDIA_MANIFEST, sha256Of } from "./oci/client.ts";
import { WmbError } from "../errors.ts";
import { quotedValue } from "../terminal-text.ts";

export const ARTIFACT_TYPE = "application/vnd.wmb.machine.v1";
export const SPEC_MEDIA_TYPE = "application/vnd.wmb.machine.spec.v2+json";
export const WASM_CONFIG_MEDIA_TYPE = "application/vnd.wasm.config.v0+json";
export const WASM_LAYER_MEDIA_TYPE = "application/wasm";
export const ROOTFS_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar";
/** wmb's annotation keys (org.opencontainers.* is the OCI specs' own). */
export const ANNOTATION = { identity: "dev.wmb.identity", blake3: "dev.wmb.blake3", role: "dev.wmb.role" } as const;
const TITLE = "org.opencontainers.image.title";
const VERSION = "org.opencontainers.image.version";
/** The wasm config's `created`: fixed, so the config is the same bytes from every host. */
const CREATED = "1970-01-01T00:00:00Z";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
  artifactType?: string;
}

/** A blob of the artifact: bytes wmb wrote, or a store blob (kernel, rootfs) known by BLAKE3. */
export interface ArtifactBlob {
  descriptor: Descriptor;
  bytes?: Uint8Array;
  /** BLAKE3 hex, for blobs read from the store. */
  blake3?: string;
}

export interface MachineArtifact {
  identity: string;
  /** Config and layer blobs, in upload order (manifests name them, so they go first). */
  blobs: ArtifactBlob[];
  /** The two manifests, then the index. */
  manifests: { role: "component" | "machine"; bytes: Uint8Array; digest: string }[];
  index: { bytes: Uint8Array; digest: string };
}

/** The spec as it travels: no sources, so its bytes name no location. */
export function portableSpecBytes(spec: SealedSpec): Uint8Array {
  return new TextEncoder().encode(formatSpec(withSources(spec, { kernel: [], rootfs: [] })));
}

function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

function bytesBlob(mediaType: string, bytes: Uint8Array, annotations?: Record<string, string>): ArtifactBlob {
  return { descriptor: { mediaType, digest: sha256Of(bytes), size: bytes.length, ...(annotations ? { annotations } : {}) }, bytes };
}

/** The artifact of a sealed (schema_version 2) machine. `kernelSha256`/`rootfsSha256` are the
 * sha256 of the store blobs (the spec holds their BLAKE3). */
export function machineArtifact(spec: SealedSpec, component: ComponentInfo, kernelSha256: string, rootfsSha256: string): MachineArtifact {
  if (spec.schema_version < 2) {
    throw new WmbError("USAGE", `${spec.name} (${spec.seal.digest}) has schema_version ${spec.schema_version}, whose identity covers its sources, so it cannot move without changing identity; rebuild it with this wmb.`, { subject: spec.seal.digest });
  }
  const hex = (d: string) => d.replace(/^blake3:/, "");
  const identity = spec.seal.digest;
  const kernel: ArtifactBlob = {
    descriptor: { mediaType: WASM_LAYER_MEDIA_TYPE, digest: kernelSha256, size: spec.kernel_ref.size, annotations: { [ANNOTATION.blake3]: hex(spec.kernel_ref.digest), [TITLE]: `${spec.name}.wasm` } },
    blake3: hex(spec.kernel_ref.digest),
  };
  const rootfs: ArtifactBlob = {
    descriptor: { mediaType: ROOTFS_MEDIA_TYPE, digest: rootfsSha256, size: spec.rootfs_ref.size, annotations: { [ANNOTATION.blake3]: hex(spec.rootfs_ref.digest), [TITLE]: `${spec.name}.rootfs.tar` } },
    blake3: hex(spec.rootfs_ref.digest),
  };
  // The CNCF wasm OCI artifact config (tag-runtime's "Wasm OCI Artifact layout").
  const wasmConfig = bytesBlob(
    WASM_CONFIG_MEDIA_TYPE,
    json({
      created: CREATED,
      architecture: "wasm",
      os: "wasip2",
      layerDigests: [kernelSha256],
      component: { exports: [...component.exports].sort(), imports: component.imports.map((i) => i.name).sort(), target: null },
    }),
  );
  const specBlob = bytesBlob(SPEC_MEDIA_TYPE, portableSpecBytes(spec), { [ANNOTATION.identity]: identity });
  const titled = (role: string) => ({ [ANNOTATION.role]: role, [ANNOTATION.identity]: identity, [TITLE]: spec.name, [VERSION]: spec.version });
  const componentManifest = json({
    schemaVersion: 2,
    mediaType: MEDIA_MANIFEST,
    config: wasmConfig.descriptor,
    layers: [kernel.descriptor],
    annotations: titled("component"),
  });
  const machineManifest = json({
    schemaVersion: 2,
    mediaType: MEDIA_MANIFEST,
    artifactType: ARTIFACT_TYPE,
    config: specBlob.descriptor,
    layers: [rootfs.descriptor],
    annotations: titled("machine"),
  });
  const manifests = [
    { role: "component" as const, bytes: componentManifest, digest: sha256Of(componentManifest) },
    { role: "machine" as const, bytes: machineManifest, digest: sha256Of(machineManifest) },
  ];
  const index = json({
    schemaVersion: 2,
    mediaType: MEDIA_INDEX,
    artifactType: ARTIFACT_TYPE,
    manifests: [
      { mediaType: MEDIA_MANIFEST, digest: manifests[0]!.digest, size: componentManifest.length, platform: { architecture: "wasm", os: "wasip2" }, annotations: { [ANNOTATION.role]: "component" } },
      { mediaType: MEDIA_MANIFEST, digest: manifests[1]!.digest, size: machineManifest.length, artifactType: ARTIFACT_TYPE, annotations: { [ANNOTATION.role]: "machine" } },
    ],
    annotations: { [ANNOTATION.identity]: identity, [TITLE]: spec.name, [VERSION]: spec.version },
  });
  return { identity, blobs: [wasmConfig, kernel, specBlob, rootfs], manifests, index: { bytes: index, digest: sha256Of(index) } };
}

// ---- reading a pulled artifact ---------------------------------------------------------------

export interface PulledIndex {
  identity: string;
  component: Descriptor;
  machine: Descriptor;
}

export interface PulledManifest {
  config: Descriptor;
  layer: Descriptor;
}

function invalid(what: string, why: string): WmbError {
  return new WmbError("INTEGRITY", `${what} is not a wmb machine: ${why}; nothing was admitted.`, { subject: what });
}

function parse(bytes: Uint8Array, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(Buffer.from(bytes).toString("utf8")) as unknown;
    if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* below */
  }
  throw invalid(what, "it is not a JSON object");
}

function descriptor(v: unknown, what: string): Descriptor {
  const d = v as Descriptor;
  if (!d || typeof d.mediaType !== "string" || typeof d.digest !== "string" || !/^sha256:[0-9a-f]{64}$/.test(d.digest) || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw invalid(what, "a descriptor lacks a media type, a sha256 digest or a size");
  }
  return d;
}

export function readMachineIndex(bytes: Uint8Array, what: string): PulledIndex {
  const index = parse(bytes, what);
  if (index.mediaType !== MEDIA_INDEX) throw invalid(what, `its media type is ${quotedValue(index.mediaType)}, not an OCI image index`);
  if (index.artifactType !== ARTIFACT_TYPE) throw invalid(what, `its artifactType is ${quotedValue(index.artifactType)}, not ${ARTIFACT_TYPE}`);
  const identity = (index.annotations as Record<string, string> | undefined)?.[ANNOTATION.identity];
  if (typeof identity !== "string" || !/^blake3:[0-9a-f]{64}$/.test(identity)) throw invalid(what, `it has no ${ANNOTATION.identity} annotation`);
  const manifests = Array.isArray(index.manifests) ? index.manifests.map((m) => descriptor(m, what)) : [];
  const role = (r: string) => {
    const found = manifests.filter((m) => m.annotations?.[ANNOTATION.role] === r);
    if (found.length !== 1 || found[0]!.mediaType !== MEDIA_MANIFEST) throw invalid(what, `it does not list exactly one ${r} manifest`);
    return found[0]!;
  };
  return { identity, component: role("component"), machine: role("machine") };
}

/** A manifest with one config of `configType` and exactly one layer of `layerType`. */
export function readManifest(bytes: Uint8Array, configType: string, layerType: string, what: string): PulledManifest {
  const m = parse(bytes, what);
  if (m.mediaType !== MEDIA_MANIFEST) throw invalid(what, `its media type is ${quotedValue(m.mediaType)}`);
  const config = descriptor(m.config, what);
  if (config.mediaType !== configType) throw invalid(what, `its config is ${quotedValue(config.mediaType)}, not ${configType}`);
  const layers = Array.isArray(m.layers) ? m.layers.map((l) => descriptor(l, what)) : [];
  if (layers.length !== 1 || layers[0]!.mediaType !== layerType) throw invalid(what, `it must have exactly one ${layerType} layer`);
  return { config, layer: layers[0]! };
}
