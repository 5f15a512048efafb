-- Version 7: what `wmb serve` shows of a build without re-running it. A build's counts by outcome
-- and its critical path are a few numbers per build (no-ops still add one row and nothing else);
-- each recorded action keeps where it sat on the build's timeline (as --profile draws it) and,
-- when it failed, the sentence it failed with. NULL: recorded before version 7.
ALTER TABLE builds ADD COLUMN executed INTEGER;
ALTER TABLE builds ADD COLUMN cached INTEGER;
ALTER TABLE builds ADD COLUMN remote INTEGER;
ALTER TABLE builds ADD COLUMN failed INTEGER;
ALTER TABLE builds ADD COLUMN skipped INTEGER;
ALTER TABLE builds ADD COLUMN critical_path TEXT;     -- JSON array of labels, first to last
ALTER TABLE build_actions ADD COLUMN start_ms INTEGER; -- ms after the build started
ALTER TABLE build_actions ADD COLUMN lane INTEGER;     -- parallel slot, 0-based (the trace's tid - 1)
ALTER TABLE build_actions ADD COLUMN error TEXT;       -- a failed action's message
