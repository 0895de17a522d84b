/*
 * service.c — keys, token pairs, bearer checks, rate limits (see service.h).
 */
#include "auth/service.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/jwt.h"
#include "auth/mail.h"
#include "auth/otpq.h"
#include "auth/password.h"
#include "auth/ratelimit.h"
#include "auth/secret.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"

static unsigned char key[256];
static size_t keylen;
/* NOTEBOOKD_JWT_SECRET_PREVIOUS: verifies, never signs; prev_keylen 0 when unset */
static unsigned char prev_key[256];
static size_t prev_keylen;
static atomic_uint key_gen = 1; /* changes with the keys: tokens verified before are checked again */
static nb_ratelimit_t *limits[NB_LIMIT_SCOPES][2]; /* [scope][0 = client, 1 = account] */

/* Reads or creates the development key file. */
static int dev_key(char *err, size_t errlen)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/jwt_secret", nb_cfg.var_dir ? nb_cfg.var_dir : "var");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		mkdir(nb_cfg.var_dir ? nb_cfg.var_dir : "var", 0700);
		unsigned char raw[32];
		char hex[65];
		randombytes_buf(raw, sizeof raw);
		nb_hex_encode(raw, sizeof raw, hex, sizeof hex);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, hex, 64) != 64) {
			snprintf(err, errlen, "could not create %s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			snprintf(err, errlen, "could not open %s: %s", path, strerror(errno));
			return -1;
		}
	}
	ssize_t n = read(fd, key, sizeof key);
	close(fd);
	if (n < 32) {
		snprintf(err, errlen, "%s must hold at least 32 bytes", path);
		return -1;
	}
	keylen = (size_t)n;
	nb_warn("NOTEBOOKD_JWT_SECRET is not set: using the development key in %s (set it in production)", path);
	return 0;
}

int nb_auth_init(char *err, size_t errlen)
{
	atomic_fetch_add(&key_gen, 1); /* tokens verified under other keys are checked again */
	const char *s = nb_cfg.jwt_secret;
	if (s) {
		size_t n = strlen(s);
		if (n < NB_JWT_MIN_KEY || n > sizeof key) {
			snprintf(err, errlen, "NOTEBOOKD_JWT_SECRET must be 32 to %zu bytes long", sizeof key);
			return -1;
		}
		memcpy(key, s, n);
		keylen = n;
	} else if (dev_key(err, errlen) < 0) {
		return -1;
	}
	const char *p = nb_cfg.jwt_secret_previous;
	if (p && *p) {
		size_t n = strlen(p);
		if (n < NB_JWT_MIN_KEY || n > sizeof prev_key) {
			snprintf(err, errlen, "NOTEBOOKD_JWT_SECRET_PREVIOUS must be 32 to %zu bytes long", sizeof prev_key);
			return -1;
		}
		if (n == keylen && sodium_memcmp(p, key, n) == 0) {
			snprintf(err, errlen, "NOTEBOOKD_JWT_SECRET_PREVIOUS is the same as NOTEBOOKD_JWT_SECRET");
			return -1;
		}
		memcpy(prev_key, p, n);
		prev_keylen = n;
		nb_info("JWT rotation: access tokens signed with NOTEBOOKD_JWT_SECRET_PREVIOUS are still accepted "
			"(unset it once NOTEBOOKD_ACCESS_TTL_S has passed)");
	}
	static const char *const scope_names[NB_LIMIT_SCOPES] = {"login", "otp-request", "otp-verify", "register"};
	/* The process's one rate-limit sync, for these limits and the API-wide ones (api/ratelimit.c). */
	bool shared = nb_ratelimit_sync_start(nb_cfg.database_url, nb_cfg.rate_sync_ms) == 0;
	for (int i = 0; i < NB_LIMIT_SCOPES; i++) {
		limits[i][0] = nb_ratelimit_create(nb_cfg.auth_ip_rate_per_min);
		limits[i][1] = nb_ratelimit_create(nb_cfg.auth_rate_per_min);
		if (shared) {
			/* Shared through PostgreSQL like the API-wide limits; keys hashed from the current secret. */
			char name[64];
			snprintf(name, sizeof name, "notebookd door %s ip", scope_names[i]);
			nb_ratelimit_share(limits[i][0], key, keylen, name, NB_RATELIMIT_DOOR_LEASE_DIV);
			snprintf(name, sizeof name, "notebookd door %s account", scope_names[i]);
			nb_ratelimit_share(limits[i][1], key, keylen, name, NB_RATELIMIT_DOOR_LEASE_DIV);
		}
	}
	nb_password_init();
	nb_mail_init();
	nb_otpq_init();
	return 0;
}

void nb_auth_shutdown(void)
{
	nb_otpq_shutdown();
	nb_mail_shutdown();
	nb_ratelimit_sync_stop();
	for (int i = 0; i < NB_LIMIT_SCOPES; i++)
		for (int j = 0; j < 2; j++) {
			nb_ratelimit_destroy(limits[i][j]);
			limits[i][j] = NULL;
		}
}

const unsigned char *nb_auth_key(size_t *len)
{
	*len = keylen;
	return key;
}

const unsigned char *nb_auth_previous_key(size_t *len)
{
	*len = prev_keylen;
	return prev_keylen ? prev_key : NULL;
}

int nb_auth_otp_verify(const char *otp_id, const char *code, size_t len, const unsigned char stored[32])
{
	if (nb_otp_verify(key, keylen, otp_id, code, len, stored) == 0)
		return 0;
	return prev_keylen ? nb_otp_verify(prev_key, prev_keylen, otp_id, code, len, stored) : -1;
}

static json_t *pair(const char *user_id, const char *refresh, json_t *user)
{
	char *access = nb_jwt_sign(key, keylen, nb_cfg.jwt_issuer, nb_cfg.jwt_audience, user_id,
				   nb_now_ms() / 1000, nb_cfg.access_ttl_s);
	if (!access)
		return NULL;
	json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:O}", "access_token", access, "refresh_token", refresh,
			      "token_type", "Bearer", "expires_in", nb_cfg.access_ttl_s, "user", user);
	free(access);
	return o;
}

int nb_auth_issue(nb_conn_t *c, const nb_user_row_t *u, json_t **out)
{
	char token[64];
	unsigned char hash[32];
	nb_refresh_token_new(token, hash);
	int rc = nb_store_refresh_create(c, u->id, hash, nb_cfg.refresh_ttl_s);
	if (rc < 0)
		return rc;
	*out = pair(u->id, token, u->json);
	return *out ? 0 : NB_EINTERNAL;
}

int nb_auth_refresh(nb_conn_t *c, const char *refresh_token, json_t **out)
{
	unsigned char old_hash[32], new_hash[32];
	if (nb_refresh_token_hash(refresh_token, strlen(refresh_token), old_hash) < 0)
		return NB_EUNAUTH;
	char token[64], user_id[37];
	nb_refresh_token_new(token, new_hash);
	int rc = nb_store_refresh_rotate(c, old_hash, new_hash, nb_cfg.refresh_ttl_s, nb_cfg.refresh_absolute_ttl_s,
					 user_id);
	if (rc < 0)
		return rc;
	nb_user_row_t u = {0};
	rc = nb_store_user_by_id(c, user_id, &u);
	if (rc < 0)
		return rc == NB_ENOTFOUND ? NB_EUNAUTH : rc;
	*out = pair(u.id, token, u.json);
	nb_user_row_dispose(&u);
	return *out ? 0 : NB_EINTERNAL;
}

/*
 * Verified bearer tokens, per thread. A token that verified is remembered
 * (its exact bytes, subject and expiry) in a small direct-mapped table of the
 * thread that checked it, so the next request with the same token skips the
 * base64, the HMAC and the JSON parse (an eighth of a notebook list's server
 * CPU in a profile). A hit needs the same bytes, so nothing unverified is
 * ever accepted; expiry is checked on every hit; entries of other keys
 * (nb_auth_init again) never match. An access token has no other state to
 * change: an erased account is refused by the live-user check, which runs on
 * every request whatever this table says.
 */
#define TOKEN_SLOTS 4096
#define TOKEN_MAX_CACHED 352 /* ours are about 324 bytes */

typedef struct token_slot {
	uint32_t gen; /* key_gen when it verified; 0: empty */
	uint16_t len;
	int64_t exp;
	char sub[37];
	char tok[TOKEN_MAX_CACHED];
} token_slot_t;

static pthread_key_t token_key;
static pthread_once_t token_once = PTHREAD_ONCE_INIT;
static bool token_key_ok; /* false: no table, every token is verified */

static void token_key_make(void)
{
	token_key_ok = pthread_key_create(&token_key, free) == 0;
}

static token_slot_t *token_slot(const char *tok, size_t len, bool create)
{
	pthread_once(&token_once, token_key_make);
	if (!token_key_ok)
		return NULL;
	token_slot_t *t = pthread_getspecific(token_key);
	if (!t) {
		if (!create || !(t = calloc(TOKEN_SLOTS, sizeof *t)) || pthread_setspecific(token_key, t) != 0) {
			free(t);
			return NULL;
		}
	}
	/* the signature's last characters: spread like the HMAC they encode */
	uint32_t h = 2166136261u;
	for (size_t i = len - 8; i < len; i++)
		h = (h ^ (unsigned char)tok[i]) * 16777619u;
	return &t[h % TOKEN_SLOTS];
}

int nb_auth_check_bearer(const char *header, char user_id[37])
{
	if (!header || strncasecmp(header, "Bearer ", 7) != 0)
		return NB_EUNAUTH;
	const char *tok = header + 7;
	while (*tok == ' ')
		tok++;
	nb_jwt_claims_t claims;
	const char *why = NULL;
	int64_t now_s = nb_now_ms() / 1000;
	size_t toklen = strlen(tok);
	bool cacheable = toklen >= 16 && toklen <= TOKEN_MAX_CACHED;
	uint32_t gen = atomic_load_explicit(&key_gen, memory_order_relaxed);
	if (cacheable) {
		const token_slot_t *e = token_slot(tok, toklen, false);
		if (e && e->gen == gen && e->len == toklen && e->exp > now_s && memcmp(e->tok, tok, toklen) == 0) {
			memcpy(user_id, e->sub, 37);
			return 0;
		}
	}
	int rc = nb_jwt_verify(key, keylen, nb_cfg.jwt_issuer, nb_cfg.jwt_audience, tok, toklen, now_s, &claims, &why);
	/* Only a signature the current key refuses is worth a second HMAC: any
	 * other reason (expired, wrong audience...) holds whatever the key. */
	if (rc < 0 && prev_keylen && why && strcmp(why, "bad signature") == 0)
		rc = nb_jwt_verify(prev_key, prev_keylen, nb_cfg.jwt_issuer, nb_cfg.jwt_audience, tok, toklen, now_s,
				   &claims, &why);
	if (rc < 0) {
		nb_debug("bearer token refused: %s", why ? why : "invalid");
		return NB_EUNAUTH;
	}
	memcpy(user_id, claims.sub, 37);
	token_slot_t *e = cacheable ? token_slot(tok, toklen, true) : NULL;
	if (e) {
		e->gen = gen;
		e->len = (uint16_t)toklen;
		e->exp = claims.exp;
		memcpy(e->sub, claims.sub, 37);
		memcpy(e->tok, tok, toklen);
	}
	return 0;
}

int nb_auth_limit(nb_limit_scope_t scope, const char *client, const char *account)
{
	int64_t now = nb_mono_ms(); /* the clock of the limits' syncs */
	int a = nb_ratelimit_hit(limits[scope][0], client ? client : "-", now);
	int b = account ? nb_ratelimit_hit(limits[scope][1], account, now) : 0;
	return a > b ? a : b;
}
