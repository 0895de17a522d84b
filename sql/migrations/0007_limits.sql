-- 0007_limits: the API-wide rate limits shared by every server of a
-- deployment (src/api/ratelimit.c, src/store/limits.c).
--
-- One row per token bucket, keyed by a 64-bit hash of (class, user or
-- address) that every server computes alike. Each server keeps its buckets
-- in memory and, every NOTEBOOKD_RATE_SYNC_MS, adds what it spent since the
-- last sync to these rows in one statement and takes back the deployment's
-- balance. UNLOGGED: counts are worth nothing after a crash (a restart only
-- forgets recent spending) and writing them to the WAL would cost more than
-- the requests they limit. Rows idle for 10 minutes are deleted by the sync.
CREATE UNLOGGED TABLE rate_buckets (
	key bigint PRIMARY KEY,
	tokens double precision NOT NULL,
	cap double precision NOT NULL CHECK (cap > 0),
	at timestamptz NOT NULL DEFAULT now()
);

-- Idempotency-Key (src/api/idempotency.c, src/store/idempotency.c): a POST
-- that creates something, sent with a key, records the key, a fingerprint of
-- the request and its answer in the transaction that makes its effect, so a
-- crash cannot keep one without the other. The same key from the same user
-- within 24 hours gets that answer back; a key younger than the window but
-- with another fingerprint is refused. `notebookd purge` deletes rows older
-- than the window (by created_at).
CREATE TABLE idempotency_keys (
	user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
	fingerprint bytea NOT NULL,
	status smallint CHECK (status BETWEEN 200 AND 299),
	content_type text,
	body text,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
