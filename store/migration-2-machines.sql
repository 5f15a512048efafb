-- Version 2: sealed machines by identity, so `wmb run blake3:<identity>` finds the spec.
CREATE TABLE machines (
  identity    TEXT PRIMARY KEY,          -- "blake3:<64 hex>", the seal digest
  spec_digest TEXT NOT NULL,             -- blob holding the sealed spec
  label       TEXT,                      -- the target that built it, if built here
  created_at  INTEGER NOT NULL
);
