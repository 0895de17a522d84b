/*
 * test_api_limits.c — unit tests of src/api/ratelimit.c without a server:
 * trusted proxies (IPv4, IPv6, CIDRs, junk), the X-Forwarded-For walk, and
 * the buckets and 429 headers of one class (limits per process: no sync).
 */
#include <string.h>

#include "api/ratelimit.h"
#include "core/config.h"
#include "core/err.h"
#include "http/router.h"
#include "t.h"

static nb_route_t route_post = {"POST", "/v1/notebooks", NULL, NB_ROUTE_AUTH, NB_EXEC_DEFAULT};

static void req_init(nb_req_t *r, const char *peer, const char *xff)
{
	memset(r, 0, sizeof *r);
	strcpy(r->remote, peer);
	r->method = "POST";
	r->path = (char *)"/v1/notebooks";
	r->route = &route_post;
	if (xff) {
		r->headers[0].name = (char *)"x-forwarded-for";
		r->headers[0].value = (char *)xff;
		r->nheaders = 1;
	}
}

static void req_dispose(nb_req_t *r)
{
	nb_buf_dispose(&r->resp.body);
	nb_buf_dispose(&r->resp.headers);
}

static const char *client(const char *peer, const char *xff)
{
	static nb_req_t r;
	req_init(&r, peer, xff);
	nb_api_client_addr(&r);
	return r.remote;
}

static void test_trusted_proxies(void)
{
	CHECK(nb_api_trusted_proxy("10.0.0.5"));
	CHECK(nb_api_trusted_proxy("192.168.7.200"));
	CHECK(!nb_api_trusted_proxy("192.168.8.1"));
	CHECK(nb_api_trusted_proxy("::1"));
	CHECK(nb_api_trusted_proxy("2001:db8:0:1::77"));
	CHECK(!nb_api_trusted_proxy("2001:db8:0:2::1"));
	CHECK(!nb_api_trusted_proxy("not an address"));
	CHECK(!nb_api_trusted_proxy("10.0.0.6"));
}

static void test_forwarded_for(void)
{
	/* an untrusted peer's header is ignored */
	CHECK_STR(client("203.0.113.1", "198.51.100.9"), "203.0.113.1");
	/* a trusted peer: the right-most address that is not a trusted proxy */
	CHECK_STR(client("10.0.0.5", "198.51.100.9"), "198.51.100.9");
	CHECK_STR(client("10.0.0.5", "6.6.6.6, 198.51.100.9, 192.168.7.1"), "198.51.100.9");
	CHECK_STR(client("10.0.0.5", " 2001:db8:9::1 "), "2001:db8:9::1");
	/* only trusted hops: the left-most */
	CHECK_STR(client("10.0.0.5", "192.168.7.1, 10.0.0.5"), "192.168.7.1");
	/* junk stops the walk at the last good hop */
	CHECK_STR(client("10.0.0.5", "198.51.100.9, garbage"), "10.0.0.5");
	CHECK_STR(client("10.0.0.5", "garbage, 192.168.7.3"), "192.168.7.3");
	CHECK_STR(client("10.0.0.5", NULL), "10.0.0.5");
}

static void test_buckets_and_headers(void)
{
	nb_req_t r;
	for (int i = 0; i < 3; i++) {
		req_init(&r, "203.0.113.50", NULL);
		CHECK_INT(nb_api_ratelimit_check(&r, "user-a"), 0);
		req_dispose(&r);
	}
	req_init(&r, "203.0.113.50", NULL);
	CHECK_INT(nb_api_ratelimit_check(&r, "user-a"), NB_ERATELIMIT);
	CHECK_INT(r.resp.status, 429);
	CHECK(r.resp.retry_after >= 1 && r.resp.retry_after <= 20);
	r.resp.headers.data[r.resp.headers.len] = '\0';
	CHECK(strstr(r.resp.headers.data, "RateLimit-Policy: \"write-user\";q=3;w=60, \"write-ip\";q=6;w=60\r\n"));
	CHECK(strstr(r.resp.headers.data, "RateLimit: \"write-user\";r=0;t="));
	req_dispose(&r);
	/* another user from the same address: the address has 6, 3 are spent */
	for (int i = 0; i < 3; i++) {
		req_init(&r, "203.0.113.50", NULL);
		CHECK_INT(nb_api_ratelimit_check(&r, "user-b"), 0);
		req_dispose(&r);
	}
	req_init(&r, "203.0.113.50", NULL);
	CHECK_INT(nb_api_ratelimit_check(&r, "user-c"), NB_ERATELIMIT);
	CHECK(strstr(r.resp.headers.data, "RateLimit: \"write-ip\";r=0;t="));
	req_dispose(&r);
	/* the refused user-c got its token back: from another address it passes */
	req_init(&r, "203.0.113.51", NULL);
	CHECK_INT(nb_api_ratelimit_check(&r, "user-c"), 0);
	req_dispose(&r);
	/* routes outside /v1/ are not limited */
	req_init(&r, "203.0.113.50", NULL);
	r.path = (char *)"/healthz";
	CHECK_INT(nb_api_ratelimit_check(&r, NULL), 0);
	req_dispose(&r);
	CHECK_INT(nb_api_ratelimit_rejections(NB_RL_WRITE), 2);
}

int main(void)
{
	/* read once, at the limiter's first use */
	nb_cfg.trusted_proxies = (char *)"10.0.0.5, 192.168.7.0/24,::1 , 2001:db8:0:1::/64, junk, 1.2.3.4/33";
	nb_cfg.rate_write_per_min = 3;
	nb_cfg.rate_ip_multiplier = 2;
	nb_cfg.rate_sync_ms = 0;
	T_RUN(test_trusted_proxies);
	T_RUN(test_forwarded_for);
	T_RUN(test_buckets_and_headers);
	return t_done();
}
