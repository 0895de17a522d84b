/*
 * ratelimit.c — per-user and per-address token buckets for every /v1 route,
 * and the client address (see ratelimit.h for the design).
 *
 * A bucket is 24 bytes in a fixed table (NSHARDS shards of NSLOTS slots,
 * about 3 MiB, allocated once and touched lazily), found by a 64-bit keyed
 * hash of (class, kind, key) with a short linear probe. When the probe finds
 * no free slot, the bucket closest to full is forgotten: a flood of fresh
 * keys evicts the entries touched longest ago (a throttled client keeps
 * touching its own). Tokens refill
 * continuously at rate/60 per second up to the rate (the burst).
 */
#include "api/ratelimit.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "http/router.h"

#define NSHARDS 64
#define NSLOTS 2048
#define PROBE 8
#define MAX_PROXIES 64

typedef struct bucket {
	uint64_t key; /* 0: free */
	double tokens;
	int64_t at_ms; /* monotonic time of the last refill */
} bucket_t;

typedef struct shard {
	pthread_mutex_t mu;
	bucket_t *slots; /* NSLOTS, allocated on first use */
} shard_t;

typedef struct cidr {
	unsigned char addr[16]; /* IPv4 as ::ffff:a.b.c.d */
	int bits;
} cidr_t;

static struct {
	pthread_once_t once;
	int rate[NB_RL_CLASSES]; /* per user, per minute; 0: off */
	int ip_mult;
	uint64_t seed;
	shard_t shards[NSHARDS];
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

static void init(void)
{
	rl.rate[NB_RL_READ] = nb_cfg.rate_read_per_min;
	rl.rate[NB_RL_WRITE] = nb_cfg.rate_write_per_min;
	rl.rate[NB_RL_UPLOAD] = nb_cfg.rate_upload_per_min;
	rl.rate[NB_RL_GENERATE] = nb_cfg.rate_generate_per_min;
	rl.ip_mult = nb_cfg.rate_ip_multiplier;
	rl.seed = (uint64_t)nb_mono_us() * 0x9E3779B97F4A7C15ull ^ (uint64_t)nb_now_ms();
	for (int i = 0; i < NSHARDS; i++)
		pthread_mutex_init(&rl.shards[i].mu, NULL);
	parse_proxies(nb_cfg.trusted_proxies);
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

/* ------------------------------------------------------------- buckets */

static uint64_t hash_key(int cls, char kind, const char *key)
{
	uint64_t h = 0xcbf29ce484222325ull ^ rl.seed;
	h = (h ^ (unsigned)cls) * 0x100000001b3ull;
	h = (h ^ (unsigned char)kind) * 0x100000001b3ull;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h ? h : 1;
}

static void refill(bucket_t *b, double cap, int64_t now)
{
	if (now > b->at_ms) {
		b->tokens += (double)(now - b->at_ms) * cap / 60000.0;
		if (b->tokens > cap)
			b->tokens = cap;
		b->at_ms = now;
	}
}

/*
 * Takes `take` tokens (1, or -1 to give one back) from the bucket of h with
 * capacity cap. Returns true when allowed; *left is the whole tokens left,
 * *wait_ms the time until one more token.
 */
static bool bucket_take(uint64_t h, double cap, double take, int64_t now, int *left, int64_t *wait_ms)
{
	shard_t *sh = &rl.shards[h % NSHARDS];
	pthread_mutex_lock(&sh->mu);
	if (!sh->slots)
		sh->slots = nb_xcalloc(NSLOTS, sizeof *sh->slots);
	size_t base = (size_t)(h / NSHARDS) % NSLOTS;
	bucket_t *b = NULL, *victim = NULL;
	for (int i = 0; i < PROBE; i++) {
		bucket_t *s = &sh->slots[(base + (size_t)i) % NSLOTS];
		if (s->key == h) {
			b = s;
			break;
		}
		/* a free slot, else the one touched longest ago */
		if (!victim || (victim->key != 0 && (s->key == 0 || s->at_ms < victim->at_ms)))
			victim = s;
	}
	if (!b) {
		b = victim;
		b->key = h;
		b->tokens = cap;
		b->at_ms = now;
	}
	refill(b, cap, now);
	bool ok = b->tokens >= take;
	if (ok)
		b->tokens -= take;
	if (b->tokens > cap)
		b->tokens = cap;
	*left = b->tokens > 0 ? (int)b->tokens : 0;
	double missing = 1.0 - b->tokens;
	*wait_ms = missing > 0 ? (int64_t)(missing * 60000.0 / cap) + 1 : 0;
	pthread_mutex_unlock(&sh->mu);
	return ok;
}

static int refuse(nb_req_t *req, nb_rl_class_t cls, const char *kind, int user_cap, int ip_cap, int64_t wait_ms)
{
	atomic_fetch_add(&rl.rejected[cls], 1);
	const char *name = class_names[cls];
	int retry = (int)((wait_ms + 999) / 1000);
	if (retry < 1)
		retry = 1;
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
	long ipc = (long)user_cap * (rl.ip_mult > 0 ? rl.ip_mult : 1);
	int ip_cap = ipc > 1000000000L ? 1000000000 : (int)ipc;
	int64_t now = nb_mono_ms();
	int left;
	int64_t wait;
	uint64_t hu = 0;
	if (user_id && user_id[0]) {
		hu = hash_key((int)cls, 'u', user_id);
		if (!bucket_take(hu, user_cap, 1, now, &left, &wait))
			return refuse(req, cls, "user", user_cap, ip_cap, wait);
	}
	if (!bucket_take(hash_key((int)cls, 'a', req->remote), ip_cap, 1, now, &left, &wait)) {
		if (hu)
			bucket_take(hu, user_cap, -1, now, &left, &wait); /* give the user's token back */
		return refuse(req, cls, "ip", hu ? user_cap : 0, ip_cap, wait);
	}
	return 0;
}

long nb_api_ratelimit_rejections(nb_rl_class_t c)
{
	return (unsigned)c < NB_RL_CLASSES ? atomic_load(&rl.rejected[c]) : 0;
}
