-- Version 3: a transpiled component is a store entry of its own, kept as long as its kernel
-- blob is (before, it was a pseudo action result that gc dropped, so `run` transpiled again).
CREATE TABLE transpiled (
  kernel_digest TEXT NOT NULL,           -- blake3 hex of the component it was made from
  transpiler    TEXT NOT NULL,           -- TRANSPILER_ID: another jco-transpile is another entry
  path          TEXT NOT NULL,           -- file name in the transpiled directory
  digest        TEXT NOT NULL REFERENCES blobs (digest),
  created_at    INTEGER NOT NULL,
  PRIMARY KEY (kernel_digest, transpiler, path)
);
CREATE INDEX transpiled_by_digest ON transpiled (digest);
DELETE FROM action_results WHERE label LIKE 'transpile:%';

-- Results of verify's deliberately varied rounds are evidence, never served: a build's result
-- (the newest of them) is what a cache hit returns.
ALTER TABLE action_results ADD COLUMN produced_by TEXT NOT NULL DEFAULT 'build';  -- build | verify

-- The labels a build requested, stored once per distinct list: builds.targets names a row here
-- (rows written before version 3 hold the JSON array itself). A no-op of 10,000 requested
-- labels then adds a few bytes to the index, not the list again.
CREATE TABLE IF NOT EXISTS target_sets (
  digest TEXT PRIMARY KEY,               -- blake3 of `labels`
  labels TEXT NOT NULL                   -- JSON array of labels
);
