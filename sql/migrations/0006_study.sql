-- 0006_study: quizzes, study guides and source guides (API.md: quiz,
-- study_guide, source summary/topics). A source guide lives on its source:
-- summary {text, citations} and topics [string], NULL until the guide job
-- has run after the source became ready. The guide is made by its own job
-- kind, 'generate_source_guide', keyed by the source (jobs.source_id).
ALTER TABLE sources
	ADD COLUMN summary jsonb CHECK (summary IS NULL OR jsonb_typeof(summary) = 'object'),
	ADD COLUMN topics jsonb CHECK (topics IS NULL OR jsonb_typeof(topics) = 'array');

ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('ingest_source', 'generate_quiz',
	'generate_study_guide', 'generate_source_guide', 'reindex_notebook', 'noop', 'fail'));
