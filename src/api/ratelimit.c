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
#include <time.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "db/pool.h"
#include "store/limits.h"
#include "http/router.h"

#define NSHARDS 64
#define NSLOTS 2048
#define PROBE 8
#define MAX_PROXIES 64
#define SYNC_BATCH 2048
#define IDLE_PURGE_S 600

typedef struct bucket {
	uint64_t key; /* 0: free */
	double tokens; /* this process's view of the balance (the deployment's, when shared) */
	int64_t at_ms; /* monotonic time of the last refill */
	float cap;
	uint16_t pending; /* tokens spent here since the last sync snapshot */
	uint8_t dirty;    /* listed in the shard's dirty list */
} bucket_t;

typedef struct shard {
	pthread_mutex_t mu;
	bucket_t *slots; /* NSLOTS, allocated on first use */
	uint16_t *dirty; /* slots spent from since the last sync */
	int ndirty;
} shard_t;

typedef struct cidr {
	unsigned char addr[16]; /* IPv4 as ::ffff:a.b.c.d */
	int bits;
} cidr_t;

static struct {
	pthread_once_t once;
	int rate[NB_RL_CLASSES]; /* per user, per minute; 0: off */
	int ip_mult;
	int sync_ms; /* > 0: buckets shared through PostgreSQL */
	uint64_t seed;
	nb_pool_t *pool; /* the sync thread's own connection */
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

static void start_sync(void);

static void init(void)
{
	rl.rate[NB_RL_READ] = nb_cfg.rate_read_per_min;
	rl.rate[NB_RL_WRITE] = nb_cfg.rate_write_per_min;
	rl.rate[NB_RL_UPLOAD] = nb_cfg.rate_upload_per_min;
	rl.rate[NB_RL_GENERATE] = nb_cfg.rate_generate_per_min;
	rl.ip_mult = nb_cfg.rate_ip_multiplier;
	for (int i = 0; i < NSHARDS; i++)
		pthread_mutex_init(&rl.shards[i].mu, NULL);
	parse_proxies(nb_cfg.trusted_proxies);
	/* Every server must hash a key alike: the seed comes from the secret they share. */
	uint64_t seed = 0xcbf29ce484222325ull;
	for (const unsigned char *p = (const unsigned char *)(nb_cfg.jwt_secret ? nb_cfg.jwt_secret : ""); *p; p++)
		seed = (seed ^ *p) * 0x100000001b3ull;
	rl.seed = seed;
	bool any = false;
	for (int c = 0; c < NB_RL_CLASSES; c++)
		any |= rl.rate[c] > 0;
	if (any && nb_cfg.rate_sync_ms > 0 && nb_cfg.database_url)
		start_sync();
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

/* How many tokens a server may spend ahead of the deployment's count between two syncs. */
static uint16_t lease_of(double cap)
{
	double l = cap / 4;
	if (l < 1)
		l = 1;
	return l > 60000 ? 60000 : (uint16_t)(l + 0.999);
}

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
 * *wait_ms the time until one more token, *full_ms the time until the bucket
 * is full again.
 */
static bool bucket_take(uint64_t h, double cap, double take, int64_t now, int *left, int64_t *wait_ms,
			int64_t *full_ms)
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
		b->pending = 0; /* keeps `dirty`: the slot may already be listed */
	}
	b->cap = (float)cap;
	refill(b, cap, now);
	bool ok = b->tokens >= take;
	/* Shared: spend at most a lease ahead of the deployment's count between syncs. */
	if (ok && take > 0 && rl.sync_ms > 0 && b->pending >= lease_of(cap))
		ok = false;
	if (ok) {
		b->tokens -= take;
		if (rl.sync_ms > 0) {
			if (take > 0 && b->pending < UINT16_MAX)
				b->pending++;
			else if (take < 0 && b->pending > 0)
				b->pending--;
			if (!b->dirty) {
				if (!sh->dirty)
					sh->dirty = nb_xcalloc(NSLOTS, sizeof *sh->dirty);
				sh->dirty[sh->ndirty++] = (uint16_t)(b - sh->slots);
				b->dirty = 1;
			}
		}
	}
	if (b->tokens > cap)
		b->tokens = cap;
	*left = b->tokens > 0 ? (int)b->tokens : 0;
	double missing = 1.0 - b->tokens;
	*wait_ms = missing > 0 ? (int64_t)(missing * 60000.0 / cap + 0.999) : rl.sync_ms; /* else: the lease */
	*full_ms = b->tokens < cap ? (int64_t)((cap - b->tokens) * 60000.0 / cap + 0.999) : 0;
	pthread_mutex_unlock(&sh->mu);
	return ok;
}

/* ------------------------------------------------------------- sharing */

/*
 * The sync thread: every sync_ms, takes each shard's dirty buckets (key,
 * tokens spent since the last snapshot), adds them to the deployment's
 * buckets in one statement per batch, and sets each local balance to the
 * deployment's, minus what was spent here meanwhile. A failed statement
 * (database down) keeps the local views; that spending is not replayed.
 */
typedef struct sync_item {
	int shard;
	uint16_t slot;
} sync_item_t;

static void sync_batch(sync_item_t *items, int64_t *keys, double *spent, double *caps, double *tokens, int n)
{
	nb_conn_t *c = NULL;
	if (nb_pool_acquire(rl.pool, &c) < 0)
		return;
	int rc = nb_store_limits_sync(c, n, keys, spent, caps, tokens);
	nb_pool_release(rl.pool, c);
	if (rc < 0)
		return;
	int64_t now = nb_mono_ms();
	for (int i = 0; i < n; i++) {
		shard_t *sh = &rl.shards[items[i].shard];
		pthread_mutex_lock(&sh->mu);
		bucket_t *b = &sh->slots[items[i].slot];
		if (b->key == (uint64_t)keys[i]) {
			b->tokens = tokens[i] - b->pending;
			if (b->tokens > b->cap)
				b->tokens = b->cap;
			b->at_ms = now;
		}
		pthread_mutex_unlock(&sh->mu);
	}
}

static void *sync_main(void *arg)
{
	(void)arg;
	sync_item_t *items = nb_xcalloc(SYNC_BATCH, sizeof *items);
	int64_t *keys = nb_xcalloc(SYNC_BATCH, sizeof *keys);
	double *spent = nb_xcalloc(SYNC_BATCH, sizeof *spent);
	double *caps = nb_xcalloc(SYNC_BATCH, sizeof *caps);
	double *tokens = nb_xcalloc(SYNC_BATCH, sizeof *tokens);
	int64_t last_purge = nb_mono_ms();
	for (;;) {
		struct timespec ts = {rl.sync_ms / 1000, (long)(rl.sync_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		int n = 0;
		for (int si = 0; si < NSHARDS; si++) {
			shard_t *sh = &rl.shards[si];
			pthread_mutex_lock(&sh->mu);
			int keep = 0;
			for (int j = 0; j < sh->ndirty; j++) {
				bucket_t *b = &sh->slots[sh->dirty[j]];
				if (n == SYNC_BATCH) { /* the rest waits for the next round */
					sh->dirty[keep++] = sh->dirty[j];
					continue;
				}
				b->dirty = 0;
				if (!b->key)
					continue;
				items[n] = (sync_item_t){si, sh->dirty[j]};
				keys[n] = (int64_t)b->key;
				spent[n] = b->pending;
				caps[n] = b->cap;
				b->pending = 0;
				n++;
			}
			for (int j = 0; j < keep; j++)
				sh->slots[sh->dirty[j]].dirty = 1;
			sh->ndirty = keep;
			pthread_mutex_unlock(&sh->mu);
		}
		if (n > 0)
			sync_batch(items, keys, spent, caps, tokens, n);
		if (nb_mono_ms() - last_purge > IDLE_PURGE_S * 1000) {
			last_purge = nb_mono_ms();
			nb_conn_t *c = NULL;
			if (nb_pool_acquire(rl.pool, &c) == 0) {
				nb_store_limits_purge(c, IDLE_PURGE_S);
				nb_pool_release(rl.pool, c);
			}
		}
	}
	return NULL;
}

static void start_sync(void)
{
	nb_pool_opts_t po;
	nb_pool_opts_from_config(&po, nb_cfg.database_url);
	po.application_name = "notebookd ratelimit";
	po.size = 1;
	po.overflow = 0;
	po.acquire_timeout_ms = 1000;
	rl.pool = nb_pool_create(&po);
	rl.sync_ms = nb_cfg.rate_sync_ms;
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, sync_main, NULL) != 0) {
		nb_warn("rate limits: could not start the sync thread; limits stay per process");
		rl.sync_ms = 0;
	}
	pthread_attr_destroy(&at);
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

/*
 * The RateLimit fields of an allowed request: the policy of the class and the
 * state of its bucket with the fewest tokens left (t: seconds until it is full
 * again). Formatted straight into the response's header buffer, which the
 * connection keeps from one request to the next: no allocation once warm, no
 * statement.
 */
static void advertise(nb_req_t *req, nb_rl_class_t cls, int user_cap, int ip_cap, const char *kind, int left,
		      int64_t full_ms)
{
	const char *name = class_names[cls];
	int t = (int)((full_ms + 999) / 1000);
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
	long ipc = (long)user_cap * (rl.ip_mult > 0 ? rl.ip_mult : 1);
	int ip_cap = ipc > 1000000000L ? 1000000000 : (int)ipc;
	int64_t now = nb_mono_ms();
	int left, uleft = 0;
	int64_t wait, full, ufull = 0;
	uint64_t hu = 0;
	if (user_id && user_id[0]) {
		hu = hash_key((int)cls, 'u', user_id);
		if (!bucket_take(hu, user_cap, 1, now, &uleft, &wait, &ufull))
			return refuse(req, cls, "user", user_cap, ip_cap, wait);
	}
	if (!bucket_take(hash_key((int)cls, 'a', req->remote), ip_cap, 1, now, &left, &wait, &full)) {
		if (hu)
			bucket_take(hu, user_cap, -1, now, &uleft, &wait, &ufull); /* give the user's token back */
		return refuse(req, cls, "ip", hu ? user_cap : 0, ip_cap, wait);
	}
	if (hu && uleft <= left)
		advertise(req, cls, user_cap, ip_cap, "user", uleft, ufull);
	else
		advertise(req, cls, hu ? user_cap : 0, ip_cap, "ip", left, full);
	return 0;
}

long nb_api_ratelimit_rejections(nb_rl_class_t c)
{
	return (unsigned)c < NB_RL_CLASSES ? atomic_load(&rl.rejected[c]) : 0;
}
