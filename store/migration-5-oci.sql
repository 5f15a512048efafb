-- Version 5: OCI registries address blobs by sha256, the store by BLAKE3. The mapping is kept
-- for blobs pushed or pulled, so a re-push hashes nothing again.
CREATE TABLE sha256_digests (
  digest TEXT PRIMARY KEY,               -- BLAKE3 hex of a blob
  sha256 TEXT NOT NULL                   -- "sha256:<64 hex>" of the same bytes
);
-- The machine an OCI image index holds (by the index's sha256): a pull by @sha256, or by a tag
-- that still points to it, then needs no request beyond the tag's one manifest.
CREATE TABLE oci_indexes (
  sha256   TEXT PRIMARY KEY,             -- "sha256:<64 hex>" of the index
  identity TEXT NOT NULL                 -- "blake3:<64 hex>", the machine's identity
);
