-- Version 6: action results found in a remote cache. A remote hit is used without downloading
-- its outputs (only what a local action or wmb-out/ needs is fetched), so it cannot be an
-- action_results row (whose outputs must be whole blobs here); this table remembers it, for
-- the next build (no second lookup) and for `why` and `query history`. Its fetched outputs
-- are blobs here, but it never becomes an action_results row: a remote hit is served only
-- through the remote cache's checks (#25), never as a local result.
CREATE TABLE remote_results (
  action_key TEXT NOT NULL,
  source     TEXT NOT NULL,               -- "<registry>/<repository>" of the remote cache
  label      TEXT NOT NULL,
  rule       TEXT NOT NULL,
  key_inputs TEXT NOT NULL,               -- canonical JSON of ActionKeyInputs, as for action_results
  result     TEXT NOT NULL,               -- JSON: outputs (path -> blake3, sha256, size, executable), sandbox
  created_at INTEGER NOT NULL,
  PRIMARY KEY (action_key, source)
);
