-- Version 9: the store's generation, a number that changes whenever what a build would be served
-- can change: a result recorded, replaced or dropped (also its outputs), a blob dropped or
-- re-verified, an action recorded in a build's history. A no-op build's memo (src/noop-memo.ts)
-- names the generation it was made at and is used only while it is unchanged. Triggers, so no
-- code path that writes these tables can forget it.
CREATE TABLE generation (n INTEGER NOT NULL);
INSERT INTO generation (n) VALUES (0);
CREATE TRIGGER generation_result_added AFTER INSERT ON action_results BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER generation_result_changed AFTER UPDATE ON action_results BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER generation_result_dropped AFTER DELETE ON action_results BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER generation_output_added AFTER INSERT ON action_outputs BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER generation_output_dropped AFTER DELETE ON action_outputs BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER generation_blob_changed AFTER UPDATE ON blobs BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER generation_blob_dropped AFTER DELETE ON blobs BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER generation_action_recorded AFTER INSERT ON build_actions BEGIN UPDATE generation SET n = n + 1; END;
CREATE TRIGGER generation_action_dropped AFTER DELETE ON build_actions BEGIN UPDATE generation SET n = n + 1; END;
