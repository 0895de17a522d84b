/*
 * idempotency.c — Idempotency-Key around the handlers that create (see
 * idempotency.h for the design).
 *
 * The fingerprint is BLAKE2b-256 over the method, the path and the body —
 * JSON re-serialised with sorted keys (so the order of fields does not
 * matter), multipart with its boundary string left out (clients pick a new
 * one per attempt).
 */
#include "api/idempotency.h"

#include <sodium.h>
#include <string.h>

#include "api/middleware.h"
#include "core/err.h"
#include "core/log.h"
#include "db/db.h"
#include "store/idempotency.h"

/* Copies the header's key into out (an sf-string's quotes removed); false when malformed. */
static bool parse_key(const char *h, char out[NB_IDEM_KEY_MAX + 1])
{
	size_t n = strlen(h);
	while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
		n--;
	while (n && (*h == ' ' || *h == '\t'))
		h++, n--;
	if (n >= 2 && h[0] == '"' && h[n - 1] == '"')
		h++, n -= 2;
	if (n == 0 || n > NB_IDEM_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (h[i] < 0x21 || h[i] > 0x7e || h[i] == '"' || h[i] == '\\')
			return false;
	memcpy(out, h, n);
	out[n] = '\0';
	return true;
}

static void update_without_boundary(crypto_generichash_state *st, const nb_req_t *req)
{
	const char *ct = nb_req_header(req, "content-type");
	const char *b = ct ? strstr(ct, "boundary=") : NULL;
	size_t blen = 0;
	char bound[80];
	if (b) {
		b += 9;
		if (*b == '"')
			b++;
		blen = strcspn(b, "\";, \t");
		if (blen >= sizeof bound)
			blen = 0;
		memcpy(bound, b, blen);
	}
	const char *p = req->body, *end = req->body + req->body_len;
	while (blen && p < end) {
		const char *hit = memmem(p, (size_t)(end - p), bound, blen);
		if (!hit)
			break;
		crypto_generichash_update(st, (const unsigned char *)p, (size_t)(hit - p));
		p = hit + blen;
	}
	crypto_generichash_update(st, (const unsigned char *)p, (size_t)(end - p));
}

static void fingerprint(const nb_req_t *req, unsigned char out[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const unsigned char *)req->method, strlen(req->method) + 1);
	crypto_generichash_update(&st, (const unsigned char *)req->path, strlen(req->path) + 1);
	if (req->json) {
		char *s = json_dumps(req->json, JSON_COMPACT | JSON_SORT_KEYS);
		if (s)
			crypto_generichash_update(&st, (const unsigned char *)s, strlen(s));
		free(s);
	} else if (req->body_len) {
		update_without_boundary(&st, req);
	}
	crypto_generichash_final(&st, out, 32);
}

int nb_api_idem_begin(nb_req_t *req, nb_api_idem_t *st)
{
	st->active = false;
	const char *h = nb_req_header(req, "idempotency-key");
	if (!h)
		return 0;
	/* A streamed answer is not a stored body to replay, and its transaction
	 * would stay open for the whole generation: refuse rather than ignore. */
	const char *accept = nb_req_header(req, "accept");
	if (accept && strstr(accept, "text/event-stream"))
		return nb_resp_error(req, NB_EINVALID, "Idempotency-Key: not supported on a streamed answer",
				     "Idempotency-Key");
	if (!parse_key(h, st->key))
		return nb_resp_error(req, NB_EINVALID, "Idempotency-Key: 1 to 255 visible ASCII characters",
				     "Idempotency-Key");
	unsigned char fp[32];
	fingerprint(req, fp);
	nb_conn_t *c;
	int rc = nb_req_db(req, &c);
	if (rc < 0)
		return rc;
	if ((rc = nb_db_begin(c)) < 0)
		return rc;
	nb_idem_row_t row;
	rc = nb_store_idem_claim(c, req->user_id, st->key, fp, &row);
	if (rc == 1) {
		nb_conn_set_outer_tx(c, true);
		st->active = true;
		st->conn = c;
		return 0;
	}
	nb_db_rollback(c);
	if (rc < 0)
		return rc;
	if (!row.same_request)
		rc = nb_resp_error(req, NB_EINVALID, "Idempotency-Key: already used with a different request",
				   "Idempotency-Key");
	else if (row.status == 0)
		rc = nb_resp_error(req, NB_ECONFLICT, "a request with this Idempotency-Key is in progress", NULL);
	else {
		nb_resp_raw(&req->resp, row.status,
			    row.content_type ? nb_arena_strdup(req->arena, row.content_type) : NULL, row.body,
			    row.body_len);
		nb_resp_header(&req->resp, "Idempotent-Replayed", "true");
		rc = NB_ECONFLICT; /* any negative: the answer is set, the handler is skipped */
	}
	nb_store_idem_dispose(&row);
	return rc;
}

void nb_api_idem_end(nb_req_t *req, nb_api_idem_t *st)
{
	if (!st->active)
		return;
	st->active = false;
	nb_conn_t *c = st->conn;
	nb_conn_set_outer_tx(c, false);
	nb_resp_t *resp = &req->resp;
	bool ok = resp->status >= 200 && resp->status < 300;
	int rc = ok ? nb_store_idem_complete(c, req->user_id, st->key, resp->status, resp->content_type,
					     resp->body.data)
		    : nb_store_idem_forget(c, req->user_id, st->key);
	if (rc == 0)
		rc = nb_db_commit(c);
	if (rc == 0)
		return;
	nb_db_rollback(c);
	if (ok) {
		nb_warn("idempotency: could not commit the answer with its key (%d): answering 503", rc);
		nb_buf_reset(&resp->headers);
		nb_resp_error(req, NB_EUNAVAIL, "the request could not be committed; retry with the same key", NULL);
	}
}
