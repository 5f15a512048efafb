-- Version 4: how each result was made, so unsandboxed results can be told apart (and never
-- uploaded): bwrap (its host commands ran in the bubblewrap sandbox), none (they ran on the
-- host), in-process (it ran no host command). NULL: recorded before version 4, not known.
ALTER TABLE action_results ADD COLUMN sandbox TEXT;
