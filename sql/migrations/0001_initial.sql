-- 0001_initial: the thirteen domain tables of DESIGN.md §2 with every
-- property of §3: uuid keys made by the application (UUIDv7), foreign keys
-- with ON DELETE CASCADE and an index on each, partial live-row indexes on the
-- critical paths, deleted_at / created_at / updated_at everywhere, CHECK
-- constraints on enums and ranges, a stored full-text vector on chunks, and
-- the job queue with its claim index.

CREATE EXTENSION IF NOT EXISTS btree_gin;

-- updated_at follows every UPDATE without each statement having to say so.
CREATE FUNCTION nb_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	NEW.updated_at := now();
	RETURN NEW;
END;
$$;

-- users ------------------------------------------------------------------
CREATE TABLE users (
	id                uuid PRIMARY KEY,
	email             text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
	password_hash     text NOT NULL CHECK (length(password_hash) > 0),
	display_name      text CHECK (display_name IS NULL OR length(display_name) <= 200),
	email_verified_at timestamptz,
	created_at        timestamptz NOT NULL DEFAULT now(),
	updated_at        timestamptz NOT NULL DEFAULT now(),
	deleted_at        timestamptz
);
CREATE UNIQUE INDEX users_email_live_key ON users (lower(email)) WHERE deleted_at IS NULL;

-- refresh_tokens ---------------------------------------------------------
CREATE TABLE refresh_tokens (
	id               uuid PRIMARY KEY,
	user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	family_id        uuid NOT NULL,
	token_hash       bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
	family_issued_at timestamptz NOT NULL DEFAULT now(),
	expires_at       timestamptz NOT NULL,
	revoked_at       timestamptz,
	replaced_by      uuid REFERENCES refresh_tokens (id) ON DELETE CASCADE,
	created_at       timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now(),
	deleted_at       timestamptz
);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_replaced_by_idx ON refresh_tokens (replaced_by);

-- otps -------------------------------------------------------------------
CREATE TABLE otps (
	id          uuid PRIMARY KEY,
	user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	purpose     text NOT NULL CHECK (purpose IN ('login', 'verify_email', 'reset_password')),
	code_hash   bytea NOT NULL CHECK (octet_length(code_hash) = 32),
	expires_at  timestamptz NOT NULL,
	attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	consumed_at timestamptz,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	deleted_at  timestamptz
);
CREATE INDEX otps_user_id_idx ON otps (user_id);
CREATE INDEX otps_live_idx ON otps (user_id, purpose, created_at DESC)
	WHERE consumed_at IS NULL AND deleted_at IS NULL;

-- notebooks --------------------------------------------------------------
CREATE TABLE notebooks (
	id          uuid PRIMARY KEY,
	owner_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	title       text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
	description text CHECK (description IS NULL OR char_length(description) <= 10000),
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	deleted_at  timestamptz
);
CREATE INDEX notebooks_owner_id_idx ON notebooks (owner_id);
CREATE INDEX notebooks_owner_live_idx ON notebooks (owner_id, created_at DESC, id DESC)
	WHERE deleted_at IS NULL;
CREATE INDEX notebooks_owner_trash_idx ON notebooks (owner_id, deleted_at DESC, id DESC)
	WHERE deleted_at IS NOT NULL;

-- documents --------------------------------------------------------------
CREATE TABLE documents (
	id             uuid PRIMARY KEY,
	user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	sha256         bytea NOT NULL CHECK (octet_length(sha256) = 32),
	mime_type      text NOT NULL CHECK (length(mime_type) BETWEEN 1 AND 255),
	byte_size      bigint NOT NULL CHECK (byte_size >= 0),
	content        bytea NOT NULL,
	extracted_text text,
	page_count     integer CHECK (page_count IS NULL OR page_count >= 0),
	page_offsets   integer[],
	extracted_at   timestamptz,
	created_at     timestamptz NOT NULL DEFAULT now(),
	updated_at     timestamptz NOT NULL DEFAULT now(),
	deleted_at     timestamptz
);
CREATE INDEX documents_user_id_idx ON documents (user_id);
CREATE UNIQUE INDEX documents_user_sha256_key ON documents (user_id, sha256) WHERE deleted_at IS NULL;
CREATE INDEX documents_user_created_idx ON documents (user_id, created_at DESC) WHERE deleted_at IS NULL;

-- sources ----------------------------------------------------------------
CREATE TABLE sources (
	id          uuid PRIMARY KEY,
	notebook_id uuid NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
	document_id uuid REFERENCES documents (id) ON DELETE CASCADE,
	title       text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 500),
	kind        text NOT NULL CHECK (kind IN ('text', 'markdown', 'html', 'pdf', 'url')),
	url         text CHECK (url IS NULL OR length(url) <= 2048),
	status      text NOT NULL DEFAULT 'pending'
	            CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
	error       text,
	byte_size   bigint CHECK (byte_size IS NULL OR byte_size >= 0),
	chunk_count integer NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
	page_count  integer CHECK (page_count IS NULL OR page_count >= 0),
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	deleted_at  timestamptz,
	CHECK ((kind = 'url') = (url IS NOT NULL)),
	CHECK (status <> 'failed' OR error IS NOT NULL)
);
CREATE INDEX sources_notebook_id_idx ON sources (notebook_id);
CREATE INDEX sources_document_id_idx ON sources (document_id);
CREATE INDEX sources_notebook_live_idx ON sources (notebook_id, created_at, id) WHERE deleted_at IS NULL;

-- chunks -----------------------------------------------------------------
CREATE TABLE chunks (
	id          uuid PRIMARY KEY,
	source_id   uuid NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
	notebook_id uuid NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
	chunk_index integer NOT NULL CHECK (chunk_index >= 0),
	text        text NOT NULL,
	char_start  integer NOT NULL CHECK (char_start >= 0),
	char_end    integer NOT NULL,
	page        integer CHECK (page IS NULL OR page >= 1),
	token_count integer NOT NULL CHECK (token_count >= 0),
	tsv         tsvector NOT NULL GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
	created_at  timestamptz NOT NULL DEFAULT now(),
	updated_at  timestamptz NOT NULL DEFAULT now(),
	deleted_at  timestamptz,
	CHECK (char_end >= char_start),
	UNIQUE (source_id, chunk_index)
);
CREATE INDEX chunks_notebook_id_idx ON chunks (notebook_id);
CREATE INDEX chunks_source_live_idx ON chunks (source_id, chunk_index) WHERE deleted_at IS NULL;
CREATE INDEX chunks_notebook_tsv_idx ON chunks USING gin (notebook_id, tsv) WHERE deleted_at IS NULL;

-- conversations ------------------------------------------------------------
CREATE TABLE conversations (
	id              uuid PRIMARY KEY,
	user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	notebook_id     uuid NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
	title           text CHECK (title IS NULL OR char_length(title) <= 200),
	last_message_at timestamptz,
	created_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now(),
	deleted_at      timestamptz
);
CREATE INDEX conversations_user_id_idx ON conversations (user_id);
CREATE INDEX conversations_notebook_id_idx ON conversations (notebook_id);
CREATE INDEX conversations_user_notebook_live_idx ON conversations
	(user_id, notebook_id, (coalesce(last_message_at, created_at)) DESC, id DESC)
	WHERE deleted_at IS NULL;

-- messages ---------------------------------------------------------------
CREATE TABLE messages (
	id              uuid PRIMARY KEY,
	conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	role            text NOT NULL CHECK (role IN ('user', 'assistant')),
	content         text NOT NULL,
	citations       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(citations) = 'array'),
	created_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now(),
	deleted_at      timestamptz
);
CREATE INDEX messages_conversation_id_idx ON messages (conversation_id);
CREATE INDEX messages_conversation_live_idx ON messages (conversation_id, created_at, id)
	WHERE deleted_at IS NULL;

-- quizzes ----------------------------------------------------------------
CREATE TABLE quizzes (
	id            uuid PRIMARY KEY,
	notebook_id   uuid NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
	title         text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
	status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'failed')),
	error         text,
	num_questions integer NOT NULL DEFAULT 5 CHECK (num_questions BETWEEN 1 AND 20),
	source_ids    uuid[],
	questions     jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(questions) = 'array'),
	created_at    timestamptz NOT NULL DEFAULT now(),
	updated_at    timestamptz NOT NULL DEFAULT now(),
	deleted_at    timestamptz
);
CREATE INDEX quizzes_notebook_id_idx ON quizzes (notebook_id);
CREATE INDEX quizzes_notebook_live_idx ON quizzes (notebook_id, created_at DESC) WHERE deleted_at IS NULL;

-- study_guides -----------------------------------------------------------
CREATE TABLE study_guides (
	id               uuid PRIMARY KEY,
	notebook_id      uuid NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
	title            text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
	status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'failed')),
	error            text,
	source_ids       uuid[],
	summary          jsonb,
	key_terms        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(key_terms) = 'array'),
	review_questions jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(review_questions) = 'array'),
	markdown         text,
	created_at       timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now(),
	deleted_at       timestamptz
);
CREATE INDEX study_guides_notebook_id_idx ON study_guides (notebook_id);
CREATE INDEX study_guides_notebook_live_idx ON study_guides (notebook_id, created_at DESC)
	WHERE deleted_at IS NULL;

-- jobs -------------------------------------------------------------------
-- A job references what it works on; deleting that (a source, a quiz)
-- deletes its jobs with it.
CREATE TABLE jobs (
	id             uuid PRIMARY KEY,
	user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	document_id    uuid REFERENCES documents (id) ON DELETE CASCADE,
	source_id      uuid REFERENCES sources (id) ON DELETE CASCADE,
	quiz_id        uuid REFERENCES quizzes (id) ON DELETE CASCADE,
	study_guide_id uuid REFERENCES study_guides (id) ON DELETE CASCADE,
	kind           text NOT NULL CHECK (kind IN ('ingest_source', 'generate_quiz',
	                                             'generate_study_guide', 'noop', 'fail')),
	status         text NOT NULL DEFAULT 'pending'
	               CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'dead')),
	payload        jsonb NOT NULL DEFAULT '{}',
	attempts       integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	max_attempts   integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
	run_at         timestamptz NOT NULL DEFAULT now(),
	locked_by      text,
	locked_until   timestamptz,
	last_error     text,
	finished_at    timestamptz,
	created_at     timestamptz NOT NULL DEFAULT now(),
	updated_at     timestamptz NOT NULL DEFAULT now(),
	deleted_at     timestamptz,
	CHECK (status <> 'running' OR locked_until IS NOT NULL)
);
CREATE INDEX jobs_user_id_idx ON jobs (user_id);
CREATE INDEX jobs_document_id_idx ON jobs (document_id);
CREATE INDEX jobs_source_id_idx ON jobs (source_id);
CREATE INDEX jobs_quiz_id_idx ON jobs (quiz_id);
CREATE INDEX jobs_study_guide_id_idx ON jobs (study_guide_id);
-- The claim: ready jobs in run_at order. Small, because finished jobs leave it.
CREATE INDEX jobs_claim_idx ON jobs (run_at) WHERE status IN ('pending', 'failed') AND deleted_at IS NULL;
-- The reaper: running jobs whose lease ran out.
CREATE INDEX jobs_lease_idx ON jobs (locked_until) WHERE status = 'running';
CREATE INDEX jobs_user_created_idx ON jobs (user_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;

-- generation_history -----------------------------------------------------
CREATE TABLE generation_history (
	id              uuid PRIMARY KEY,
	user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	notebook_id     uuid NOT NULL REFERENCES notebooks (id) ON DELETE CASCADE,
	conversation_id uuid REFERENCES conversations (id) ON DELETE CASCADE,
	quiz_id         uuid REFERENCES quizzes (id) ON DELETE CASCADE,
	study_guide_id  uuid REFERENCES study_guides (id) ON DELETE CASCADE,
	kind            text NOT NULL CHECK (kind IN ('chat', 'quiz', 'study_guide')),
	provider        text NOT NULL CHECK (provider IN ('extractive', 'openai')),
	model           text NOT NULL,
	input_tokens    integer NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
	output_tokens   integer NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
	latency_ms      integer NOT NULL DEFAULT 0 CHECK (latency_ms >= 0),
	status          text NOT NULL CHECK (status IN ('succeeded', 'failed')),
	error           text,
	created_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now(),
	deleted_at      timestamptz
);
CREATE INDEX generation_history_user_id_idx ON generation_history (user_id);
CREATE INDEX generation_history_notebook_id_idx ON generation_history (notebook_id);
CREATE INDEX generation_history_conversation_id_idx ON generation_history (conversation_id);
CREATE INDEX generation_history_quiz_id_idx ON generation_history (quiz_id);
CREATE INDEX generation_history_study_guide_id_idx ON generation_history (study_guide_id);
CREATE INDEX generation_history_user_created_idx ON generation_history (user_id, created_at DESC, id DESC)
	WHERE deleted_at IS NULL;

-- updated_at triggers on all thirteen tables.
DO $$
DECLARE t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['users', 'refresh_tokens', 'otps', 'notebooks', 'documents',
	                         'sources', 'chunks', 'jobs', 'conversations', 'messages',
	                         'quizzes', 'study_guides', 'generation_history'] LOOP
		EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW '
		               'EXECUTE FUNCTION nb_touch_updated_at()', t || '_touch', t);
	END LOOP;
END;
$$;
