-- 0005_chat: what chat and the study outputs need of generation_history.
-- dropped_citations counts the citations a generator claimed that did not
-- check out against the stored chunk text (API.md, generation); source_id
-- and the 'source_guide' kind are for source guides (made per source), so
-- the record's shape matches the API's generation resource.
ALTER TABLE generation_history
	ADD COLUMN dropped_citations integer NOT NULL DEFAULT 0 CHECK (dropped_citations >= 0),
	ADD COLUMN source_id uuid REFERENCES sources (id) ON DELETE CASCADE;
CREATE INDEX generation_history_source_id_idx ON generation_history (source_id);

ALTER TABLE generation_history DROP CONSTRAINT generation_history_kind_check;
ALTER TABLE generation_history ADD CONSTRAINT generation_history_kind_check
	CHECK (kind IN ('chat', 'quiz', 'study_guide', 'source_guide'));

-- GET /v1/generations?notebook_id=: the user's records of one notebook, newest first.
CREATE INDEX generation_history_user_notebook_created_idx
	ON generation_history (user_id, notebook_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
