-- 0008_ops: running it in production (issue 13).
-- (0008 adds no index for the fair job claim: it counts running jobs over
-- jobs_lease_idx; an index of running jobs by owner halved the queue benchmark.)
--
-- Retention runs by itself: each process with job workers checks this table
-- every little while and the one whose UPDATE moves next_run_at forward runs
-- the purge (one run per period across the deployment, whatever the number
-- of processes; a run that dies is simply done again next period). The last
-- run's counts stay here for the operator.
CREATE TABLE scheduled_tasks (
	name             text PRIMARY KEY CHECK (name IN ('retention')),
	next_run_at      timestamptz NOT NULL DEFAULT now(),
	last_started_at  timestamptz,
	last_started_by  text,
	last_finished_at timestamptz,
	last_result      jsonb,
	created_at       timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now(),
	deleted_at       timestamptz
);
INSERT INTO scheduled_tasks (name) VALUES ('retention');

-- The retention's batched deletes find their rows by index, each batch a
-- short statement of its own.
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
CREATE INDEX otps_expires_idx ON otps (expires_at);
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;
