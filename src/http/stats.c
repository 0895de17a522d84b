/*
 * stats.c — answers by route and status, and latency by route (server.h).
 *
 * The slot of a request is its route's index in the server's route copy (the
 * pattern, so the label set is the route table), or the last slot when no
 * route matched. The counters are relaxed atomics in one array allocated with
 * the server: no lock and no allocation per request.
 */
#include <string.h>

#include "core/timeutil.h"
#include "http/internal.h"

/* Exact statuses counted on their own, one list for the slots and the labels;
 * the last five slots are the classes of the others. */
#define EXACT_STATUSES(X)                                                                                    \
	X(200) X(201) X(202) X(204) X(206) X(301) X(302) X(304) X(400) X(401) X(403) X(404) X(405) X(408)  \
	X(409) X(410) X(411) X(412) X(413) X(414) X(415) X(416) X(422) X(429) X(431) X(500) X(501) X(502)  \
	X(503) X(504) X(505)
#define AS_INT(code) code,
#define AS_LABEL(code) #code,

static const int exact[] = {EXACT_STATUSES(AS_INT)};
#define NEXACT ((int)(sizeof exact / sizeof exact[0]))
_Static_assert(sizeof exact / sizeof exact[0] + 5 == NB_HTTP_STATUS_SLOTS,
	       "NB_HTTP_STATUS_SLOTS counts the exact statuses and the five classes");

static int status_slot(int status)
{
	for (int i = 0; i < NEXACT; i++)
		if (exact[i] == status)
			return i;
	int cls = status / 100;
	if (cls < 1 || cls > 5)
		cls = 5;
	return NEXACT + cls - 1;
}

const char *nb_server_status_label(int i)
{
	static const char *const labels[NB_HTTP_STATUS_SLOTS] = {EXACT_STATUSES(AS_LABEL) "1xx", "2xx", "3xx",
								 "4xx", "5xx"};
	return i >= 0 && i < NB_HTTP_STATUS_SLOTS ? labels[i] : "";
}

void nb_http__count_answer(sreq_t *r, int status)
{
	if (atomic_exchange(&r->counted, true)) /* the handler's late answer after a deadline's 503 */
		return;
	nb_server_t *s = r->srv;
	int cls = status / 100;
	if (cls >= 1 && cls <= 5)
		atomic_fetch_add(&s->by_class[cls], 1);
	if (!s->rstats)
		return;
	int slot = s->nrstats - 1;
	if (r->req.route && r->req.route >= s->route_copy && r->req.route < s->route_copy + s->nrstats - 1)
		slot = (int)(r->req.route - s->route_copy);
	route_stat_t *st = &s->rstats[slot];
	atomic_fetch_add_explicit(&st->by_status[status_slot(status)], 1, memory_order_relaxed);
	if (r->req.start_us > 0)
		nb_histo_observe(&st->latency, nb_mono_us() - r->req.start_us);
}

int nb_server_route_slots(const nb_server_t *s)
{
	return s->nrstats;
}

bool nb_server_route_stats(nb_server_t *s, int i, nb_route_stats_t *out)
{
	memset(out, 0, sizeof *out);
	if (i < 0 || i >= s->nrstats)
		return false;
	if (i == s->nrstats - 1) {
		out->method = "";
		out->pattern = NULL;
	} else {
		const nb_route_t *rt = &s->route_copy[i];
		if (!rt->pattern)
			return false;
		out->method = rt->method;
		out->pattern = rt->pattern;
	}
	const route_stat_t *st = &s->rstats[i];
	for (int k = 0; k < NB_HTTP_STATUS_SLOTS; k++)
		out->by_status[k] = atomic_load_explicit(&st->by_status[k], memory_order_relaxed);
	nb_histo_snap_add(&out->latency, &st->latency);
	return true;
}
