/*
 * ratelimit.c — per-user and per-address token buckets for every /v1 route,
 * and the client address (see ratelimit.h for the design).
 *
 * The buckets are limiters of the rate-limit engine (auth/ratelimit.h), two
 * per class of route: one keyed by user id, one by client address (rate
 * times NOTEBOOKD_RATE_IP_MULTIPLIER). The engine's table, sharded locks,
 * lease, sync thread and failed-sync rule are the door limits' too; this
 * file classifies the request and writes the answer's RateLimit fields.
 */
#include "api/ratelimit.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/ratelimit.h"
#include "auth/service.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "http/router.h"

#define MAX_PROXIES 64

typedef struct cidr {
	unsigned char addr[16]; /* IPv4 as ::ffff:a.b.c.d */
	int bits;
} cidr_t;

static struct {
	pthread_once_t once;
	int rate[NB_RL_CLASSES]; /* per user, per minute; 0: off */
	int ip_mult;
	nb_ratelimit_t *buckets[NB_RL_CLASSES][2]; /* [class][0 = user, 1 = client address]; NULL: off */
	cidr_t proxies[MAX_PROXIES];
	int nproxies;
	atomic_long rejected[NB_RL_CLASSES];
} rl = {.once = PTHREAD_ONCE_INIT};

static const char *class_names[NB_RL_CLASSES] = {"read", "write", "upload", "generate"};

const char *nb_api_rl_class_name(nb_rl_class_t c)
{
	return (unsigned)c < NB_RL_CLASSES ? class_names[c] : "read";
}

/* ----------------------------------------------------------- addresses */

/* Parses an IPv4 or IPv6 address into the 16-byte form; false if neither. */
static bool parse_addr(const char *s, size_t n, unsigned char out[16])
{
	char tmp[64];
	if (n == 0 || n >= sizeof tmp)
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	unsigned char v4[4];
	if (inet_pton(AF_INET, tmp, v4) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, v4, 4);
		return true;
	}
	return inet_pton(AF_INET6, tmp, out) == 1;
}

static bool cidr_match(const cidr_t *c, const unsigned char a[16])
{
	int bits = c->bits;
	int i = 0;
	for (; bits >= 8; bits -= 8, i++)
		if (c->addr[i] != a[i])
			return false;
	if (bits == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - bits));
	return (c->addr[i] & mask) == (a[i] & mask);
}

static bool trusted_bin(const unsigned char a[16])
{
	for (int i = 0; i < rl.nproxies; i++)
		if (cidr_match(&rl.proxies[i], a))
			return true;
	return false;
}

static void parse_proxies(const char *list)
{
	for (const char *p = list; p && *p;) {
		size_t n = strcspn(p, ",");
		const char *e = p + n;
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		const char *q = e;
		while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
			q--;
		if (q > p) {
			const char *slash = memchr(p, '/', (size_t)(q - p));
			cidr_t c;
			bool ok = parse_addr(p, (size_t)((slash ? slash : q) - p), c.addr);
			bool v4 = ok && memchr(p, ':', (size_t)((slash ? slash : q) - p)) == NULL;
			c.bits = 128;
			if (ok && slash) {
				char *end;
				long b = strtol(slash + 1, &end, 10);
				if (end != q || b < 0 || b > (v4 ? 32 : 128))
					ok = false;
				else
					c.bits = (int)(v4 ? b + 96 : b);
			}
			if (!ok)
				nb_warn("NOTEBOOKD_TRUSTED_PROXIES: ignoring \"%.*s\" (not an address or CIDR)", (int)(q - p), p);
			else if (rl.nproxies < MAX_PROXIES)
				rl.proxies[rl.nproxies++] = c;
		}
		p = *e ? e + 1 : e;
	}
}

/* A client address gets ip_mult times the user's rate (many users behind one NAT address). */
static int ip_rate(int user_rate)
{
	long ipc = (long)user_rate * (rl.ip_mult > 0 ? rl.ip_mult : 1);
	return ipc > 1000000000L ? 1000000000 : (int)ipc;
}

static void init(void)
{
	rl.rate[NB_RL_READ] = nb_cfg.rate_read_per_min;
	rl.rate[NB_RL_WRITE] = nb_cfg.rate_write_per_min;
	rl.rate[NB_RL_UPLOAD] = nb_cfg.rate_upload_per_min;
	rl.rate[NB_RL_GENERATE] = nb_cfg.rate_generate_per_min;
	rl.ip_mult = nb_cfg.rate_ip_multiplier;
	parse_proxies(nb_cfg.trusted_proxies);
	/* Shared through the process's one sync (nb_auth_init starts it); keys hashed from the current secret. */
	bool shared = nb_ratelimit_sync_start(nb_cfg.database_url, nb_cfg.rate_sync_ms) == 0;
	size_t keylen = 0;
	const unsigned char *key = nb_auth_key(&keylen);
	for (int c = 0; c < NB_RL_CLASSES; c++) {
		if (rl.rate[c] <= 0)
			continue;
		for (int k = 0; k < 2; k++) {
			rl.buckets[c][k] = nb_ratelimit_create(k ? ip_rate(rl.rate[c]) : rl.rate[c]);
			if (shared) {
				char name[64];
				snprintf(name, sizeof name, "notebookd api %s %s", class_names[c], k ? "ip" : "user");
				nb_ratelimit_share(rl.buckets[c][k], key, keylen, name, NB_RATELIMIT_API_LEASE_DIV);
			}
		}
	}
}

bool nb_api_trusted_proxy(const char *addr)
{
	pthread_once(&rl.once, init);
	unsigned char a[16];
	return parse_addr(addr, strlen(addr), a) && trusted_bin(a);
}

void nb_api_client_addr(nb_req_t *req)
{
	pthread_once(&rl.once, init);
	if (rl.nproxies == 0)
		return;
	unsigned char a[16];
	if (!parse_addr(req->remote, strlen(req->remote), a) || !trusted_bin(a))
		return;
	const char *xff = nb_req_header(req, "x-forwarded-for");
	if (!xff)
		return;
	/* Right to left: each hop was appended by the one after it; the first
	 * address not of a trusted proxy is the client. A malformed entry stops
	 * the walk at the last good hop. */
	const char *end = xff + strlen(xff);
	while (end > xff) {
		const char *start = end;
		while (start > xff && start[-1] != ',')
			start--;
		const char *s = start, *e = end;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (!parse_addr(s, (size_t)(e - s), a))
			return;
		snprintf(req->remote, sizeof req->remote, "%.*s", (int)(e - s), s);
		if (!trusted_bin(a))
			return;
		end = start > xff ? start - 1 : xff;
	}
}

static int refuse(nb_req_t *req, nb_rl_class_t cls, const char *kind, int user_cap, int ip_cap, int retry)
{
	atomic_fetch_add(&rl.rejected[cls], 1);
	const char *name = class_names[cls];
	char v[160];
	if (user_cap > 0)
		snprintf(v, sizeof v, "\"%s-user\";q=%d;w=60, \"%s-ip\";q=%d;w=60", name, user_cap, name, ip_cap);
	else
		snprintf(v, sizeof v, "\"%s-ip\";q=%d;w=60", name, ip_cap);
	nb_resp_error(req, NB_ERATELIMIT, "too many requests: retry after the time given", NULL);
	req->resp.retry_after = retry;
	nb_resp_header(&req->resp, "RateLimit-Policy", v);
	snprintf(v, sizeof v, "\"%s-%s\";r=0;t=%d", name, kind, retry);
	nb_resp_header(&req->resp, "RateLimit", v);
	return NB_ERATELIMIT;
}

/*
 * The RateLimit fields of an allowed request: the policy of the class and the
 * state of its bucket with the fewest tokens left (t: seconds until it is full
 * again). Formatted straight into the response's header buffer, which the
 * connection keeps from one request to the next: no allocation once warm, no
 * statement.
 */
static void advertise(nb_req_t *req, nb_rl_class_t cls, int user_cap, int ip_cap, const char *kind, int left, int t)
{
	const char *name = class_names[cls];
	if (user_cap > 0)
		nb_buf_printf(&req->resp.headers,
			      "RateLimit-Policy: \"%s-user\";q=%d;w=60, \"%s-ip\";q=%d;w=60\r\n"
			      "RateLimit: \"%s-%s\";r=%d;t=%d\r\n",
			      name, user_cap, name, ip_cap, name, kind, left, t);
	else
		nb_buf_printf(&req->resp.headers,
			      "RateLimit-Policy: \"%s-ip\";q=%d;w=60\r\nRateLimit: \"%s-ip\";r=%d;t=%d\r\n", name,
			      ip_cap, name, left, t);
}

int nb_api_ratelimit_check(nb_req_t *req, const char *user_id)
{
	pthread_once(&rl.once, init);
	if (strncmp(req->path, "/v1/", 4) != 0 || !req->route)
		return 0;
	nb_rl_class_t cls = NB_RL_READ;
	if (req->route->flags & NB_ROUTE_RL_GENERATE)
		cls = NB_RL_GENERATE;
	else if (req->route->flags & NB_ROUTE_RL_UPLOAD)
		cls = NB_RL_UPLOAD;
	else if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
		cls = NB_RL_WRITE;
	int user_cap = rl.rate[cls];
	if (user_cap <= 0)
		return 0;
	int ip_cap = ip_rate(user_cap);
	int64_t now = nb_mono_ms(); /* the clock of the limits' syncs */
	bool user = user_id && user_id[0];
	int left, full, uleft = 0, ufull = 0, retry;
	if (user && (retry = nb_ratelimit_take(rl.buckets[cls][0], user_id, now, &uleft, &ufull)) > 0)
		return refuse(req, cls, "user", user_cap, ip_cap, retry);
	if ((retry = nb_ratelimit_take(rl.buckets[cls][1], req->remote, now, &left, &full)) > 0) {
		if (user)
			nb_ratelimit_give(rl.buckets[cls][0], user_id, now); /* give the user's token back */
		return refuse(req, cls, "ip", user ? user_cap : 0, ip_cap, retry);
	}
	if (user && uleft <= left)
		advertise(req, cls, user_cap, ip_cap, "user", uleft, ufull);
	else
		advertise(req, cls, user ? user_cap : 0, ip_cap, "ip", left, full);
	return 0;
}

long nb_api_ratelimit_rejections(nb_rl_class_t c)
{
	return (unsigned)c < NB_RL_CLASSES ? atomic_load(&rl.rejected[c]) : 0;
}
