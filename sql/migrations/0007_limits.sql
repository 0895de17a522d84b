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
