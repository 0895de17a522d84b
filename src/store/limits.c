/*
 * limits.c — the statements of the shared rate-limit buckets (see limits.h).
 *
 * The batch travels as three array literals (text format), unnested
 * WITH ORDINALITY so that the answer comes back in the batch's order. The
 * rows are grouped by key: one batch holds every limiter of a process, and
 * two keys alike (a 64-bit collision) must not fail it (ON CONFLICT may not
 * touch a row twice), round after round since a failed batch is replayed.
 */
#include "store/limits.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/buf.h"
#include "core/err.h"
#include "db/db.h"

NB_STMT(st_sync,
	"WITH u AS (SELECT k, d, c, i FROM unnest($1::bigint[], $2::float8[], $3::float8[]) WITH ORDINALITY"
	"  AS u(k, d, c, i)),"
	" w AS (INSERT INTO rate_buckets AS b (key, tokens, cap, at)"
	"  SELECT k, max(c) - sum(d), max(c), now() FROM u GROUP BY k"
	"  ON CONFLICT (key) DO UPDATE SET"
	"   tokens = least(excluded.cap, b.tokens + extract(epoch FROM now() - b.at) * excluded.cap / 60)"
	"            - (excluded.cap - excluded.tokens),"
	"   cap = excluded.cap, at = now()"
	"  RETURNING b.key, b.tokens)"
	" SELECT w.tokens FROM u JOIN w ON w.key = u.k ORDER BY u.i");

NB_STMT(st_purge, "DELETE FROM rate_buckets WHERE at < now() - make_interval(secs => $1)");

int nb_store_limits_sync(nb_conn_t *c, int n, const int64_t *keys, const double *spent, const double *caps,
			 double *tokens_out)
{
	if (n <= 0)
		return 0;
	nb_buf_t k = NB_BUF_INIT, d = NB_BUF_INIT, cp = NB_BUF_INIT;
	for (int i = 0; i < n; i++) {
		nb_buf_printf(&k, "%s%lld", i ? "," : "{", (long long)keys[i]);
		nb_buf_printf(&d, "%s%.17g", i ? "," : "{", spent[i]);
		nb_buf_printf(&cp, "%s%.17g", i ? "," : "{", caps[i]);
	}
	nb_buf_puts(&k, "}");
	nb_buf_puts(&d, "}");
	nb_buf_puts(&cp, "}");
	nb_params_t p;
	nb_params_init(&p);
	nb_p_text(&p, k.data);
	nb_p_text(&p, d.data);
	nb_p_text(&p, cp.data);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_sync, &p, &r);
	if (rc == 0) {
		if (PQntuples(r) != n) {
			rc = NB_EDB;
		} else {
			for (int i = 0; i < n; i++)
				tokens_out[i] = strtod(nb_db_get(r, i, 0), NULL);
		}
	}
	PQclear(r);
	nb_buf_dispose(&k);
	nb_buf_dispose(&d);
	nb_buf_dispose(&cp);
	return rc;
}

int nb_store_limits_purge(nb_conn_t *c, int idle_s)
{
	nb_params_t p;
	nb_params_init(&p);
	nb_p_int(&p, idle_s);
	PGresult *r = NULL;
	int rc = nb_db_exec(c, &st_purge, &p, &r);
	if (rc == 0)
		rc = atoi(PQcmdTuples(r));
	PQclear(r);
	return rc;
}
