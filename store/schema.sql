-- wmb store index, version 1. Later versions are store/migration-N-*.sql, listed in index-db.ts
-- and applied in order when a store is opened; this file is never edited but for comments.
-- Only the modules in store/ run SQL; everything else goes through store.ts's API.
-- Invariant: a committed row names a blob only after the blob is whole on disk at
-- cas/<2 hex>/<62 hex> (written to a temp file, made read-only, renamed, fsynced with its
-- directory: during a build the fsyncs come right before the commit, docs/ARCHITECTURE.md).
-- So a crash leaves at worst an orphaned blob, never a dangling row.

CREATE TABLE blobs (
  digest      TEXT PRIMARY KEY,          -- blake3 hex of the bytes
  size        INTEGER NOT NULL,
  -- stat of the file when it was last verified: a cache hit trusts a blob whose stat is
  -- unchanged, and re-hashes it otherwise (a write changes ctime, which no user can set).
  stat_sig    TEXT NOT NULL,
  created_at  INTEGER NOT NULL           -- ms since epoch; gc spares young blobs (concurrent builds)
);

-- What an action produced. A key has several results only when the action is not
-- deterministic; the most recently produced one (highest created_at) is served, and all are
-- kept for `wmb query nondeterministic`, `why` and `verify`.
CREATE TABLE action_results (
  id             INTEGER PRIMARY KEY,
  action_key     TEXT NOT NULL,
  outputs_digest TEXT NOT NULL,          -- blake3 of JSON [[path, digest, executable 0|1], …] sorted by path (outputsDigestOf)
  label          TEXT NOT NULL,
  rule           TEXT NOT NULL,
  key_inputs     TEXT NOT NULL,          -- canonical JSON of ActionKeyInputs, for `wmb why`
  created_at     INTEGER NOT NULL,         -- ms; when last produced: a rerun that repeats an older result makes it newest again
  duration_ms    INTEGER NOT NULL,
  UNIQUE (action_key, outputs_digest)
);
CREATE INDEX action_results_by_key ON action_results (action_key, created_at);
CREATE INDEX action_results_by_label ON action_results (label, created_at);

CREATE TABLE action_outputs (
  result_id  INTEGER NOT NULL REFERENCES action_results (id) ON DELETE CASCADE,
  path       TEXT NOT NULL,
  digest     TEXT NOT NULL REFERENCES blobs (digest),
  executable INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (result_id, path)
);
CREATE INDEX action_outputs_by_digest ON action_outputs (digest);

-- Every `wmb build` (and verify round): the history `wmb query` reads.
CREATE TABLE builds (
  id          INTEGER PRIMARY KEY,
  started_at  INTEGER NOT NULL,
  finished_at INTEGER,
  command     TEXT NOT NULL,             -- build | verify
  targets     TEXT NOT NULL,             -- JSON array of labels; from version 3, the digest of a target_sets row
  status      TEXT NOT NULL,             -- running | ok | failed | interrupted
  workspace   TEXT NOT NULL,
  toolchain   TEXT
);

CREATE TABLE build_actions (
  build_id    INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
  label       TEXT NOT NULL,
  action_key  TEXT NOT NULL,
  result_id   INTEGER REFERENCES action_results (id) ON DELETE SET NULL,
  outputs     TEXT,                      -- JSON {path: digest}; kept even after gc drops the result
  status      TEXT NOT NULL,             -- cached | executed | failed (a skipped action gets no row)
  duration_ms INTEGER NOT NULL,
  PRIMARY KEY (build_id, label)
);
CREATE INDEX build_actions_by_label ON build_actions (label, build_id);

-- Source files are hashed once per change.
CREATE TABLE stat_cache (
  path     TEXT PRIMARY KEY,
  stat_sig TEXT NOT NULL,                -- size:mtime_ns:ino
  digest   TEXT NOT NULL
);

-- Blobs kept by gc whatever the builds say: sealed machines (built or imported). Transpiled
-- components are kept by their own table (migration 3) for as long as their kernel blob.
CREATE TABLE gc_roots (
  name       TEXT NOT NULL,
  digest     TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (name, digest)
);
