/*
 * replica_lag.c — the replica's position against sampled primary positions
 * (see replica_lag.h). Pure: unit-tested in tests/unit/test_replica_lag.c.
 */
#include "db/replica_lag.h"

#include <stdio.h>
#include <string.h>

int nb_lsn_parse(const char *text, uint64_t *out)
{
	if (!text)
		return -1;
	unsigned int hi, lo;
	char tail;
	/* two hex numbers of up to 8 digits each, nothing after */
	size_t slash = strcspn(text, "/");
	if (slash == 0 || slash > 8 || text[slash] != '/' || strlen(text + slash + 1) == 0 ||
	    strlen(text + slash + 1) > 8 || strspn(text, "0123456789ABCDEFabcdef") != slash ||
	    strspn(text + slash + 1, "0123456789ABCDEFabcdef") != strlen(text + slash + 1))
		return -1;
	if (sscanf(text, "%X/%X%c", &hi, &lo, &tail) != 2)
		return -1;
	*out = ((uint64_t)hi << 32) | lo;
	return 0;
}

void nb_rlag_init(nb_rlag_t *t)
{
	memset(t, 0, sizeof *t);
}

void nb_rlag_primary(nb_rlag_t *t, int64_t t_ms, uint64_t lsn)
{
	if (t->n > 0 && lsn < t->s[t->n - 1].lsn)
		t->n = 0; /* the primary went back: another server (failover); start again */
	if (t->n > 0 && lsn == t->s[t->n - 1].lsn) {
		/* No WAL since the newest sample. Replayed already: the same position
		 * now stands for a later time (safe_before moves on while the primary
		 * is idle). Not yet: keep the older time (the lag's lower bound). */
		if (lsn <= t->replay_lsn && t_ms > t->s[t->n - 1].t_ms)
			t->s[t->n - 1].t_ms = t_ms;
		return;
	}
	if (t->n == NB_RLAG_SAMPLES)
		return;
	t->s[t->n].t_ms = t_ms;
	t->s[t->n].lsn = lsn;
	t->n++;
}

void nb_rlag_replica(nb_rlag_t *t, int64_t now_ms, uint64_t replay_lsn, bool known)
{
	if (known)
		t->replay_lsn = replay_lsn;
	int covered = 0; /* a position the replica replayed stays replayed, known now or not */
	while (covered < t->n && t->s[covered].lsn <= t->replay_lsn)
		covered++;
	if (covered > 0) {
		if (t->s[covered - 1].t_ms > t->safe_before_ms)
			t->safe_before_ms = t->s[covered - 1].t_ms;
		/* keep the newest covered one when nothing is left: it is the reference of an idle primary */
		int drop = covered == t->n ? covered - 1 : covered;
		memmove(t->s, t->s + drop, (size_t)(t->n - drop) * sizeof t->s[0]);
		t->n -= drop;
		covered -= drop;
	}
	if (covered < t->n && t->replay_lsn) { /* never reached: no lag to speak of (the replica is down) */
		int64_t lag = now_ms - t->s[covered].t_ms;
		t->lag_ms = lag > 0 ? lag : 0;
		t->lag_bytes = t->s[t->n - 1].lsn - t->replay_lsn;
	} else {
		t->lag_ms = 0;
		t->lag_bytes = 0;
	}
}
