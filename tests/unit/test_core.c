/*
 * test_core.c — unit tests of src/core: buffers, arena, UTF-8, UUIDv7, time.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/jsonw.h"
#include "core/timeutil.h"
#include "core/utf8.h"
#include "core/uuid.h"
#include "t.h"

static void test_buf_json_escape(void)
{
	nb_buf_t b = NB_BUF_INIT;
	nb_buf_json_str(&b, "a\"b\\c\n\x01z", 8);
	CHECK_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001z\"");
	nb_buf_reset(&b);
	nb_buf_printf(&b, "%d-%s", 42, "x");
	CHECK_STR(b.data, "42-x");
	nb_buf_dispose(&b);
}

static void test_arena(void)
{
	nb_arena_t *a = nb_arena_create();
	char *s = nb_arena_strdup(a, "hello");
	char *big = nb_arena_alloc(a, 100000);
	memset(big, 'x', 100000);
	char *f = nb_arena_sprintf(a, "%s-%d", s, 7);
	CHECK_STR(f, "hello-7");
	CHECK(((uintptr_t)nb_arena_alloc(a, 3) & 15) == 0);
	CHECK(nb_arena_used(a) >= 100000);
	int *flag = malloc(sizeof(int));
	nb_arena_defer(a, free, flag);
	nb_arena_destroy(a);
	nb_arena_destroy(NULL);
}

static void test_utf8(void)
{
	CHECK(nb_utf8_valid("héllo €𝄞", strlen("héllo €𝄞")));
	CHECK(!nb_utf8_valid("\xC0\xAF", 2));         /* overlong */
	CHECK(!nb_utf8_valid("\xED\xA0\x80", 3));     /* surrogate */
	CHECK(!nb_utf8_valid("\xF4\x90\x80\x80", 4)); /* > U+10FFFF */
	CHECK(!nb_utf8_valid("\xE2\x82", 2));         /* truncated */
	CHECK_INT(nb_utf8_count("a€𝄞", strlen("a€𝄞")), 3);
	CHECK_INT(nb_utf8_prefix("a€𝄞", strlen("a€𝄞"), 2), 4);
	nb_buf_t b = NB_BUF_INIT;
	size_t r = nb_utf8_sanitize(&b, "a\xFF" "b\xE2\x82", 5);
	CHECK_INT(r, 3);
	CHECK_STR(b.data, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD");
	nb_buf_dispose(&b);
}

static void test_uuid_format_parse(void)
{
	nb_uuid_t u, v;
	nb_uuid_v7(&u);
	char s[37];
	nb_uuid_format(&u, s);
	CHECK_INT(strlen(s), 36);
	CHECK(s[14] == '7');                                             /* version */
	CHECK(s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b'); /* variant 10 */
	CHECK_INT(nb_uuid_parse(s, &v), 0);
	CHECK(memcmp(u.b, v.b, 16) == 0);
	CHECK(nb_uuid_parse("not-a-uuid", &v) < 0);
	CHECK(nb_uuid_parse("0193a5b0-7e1c-7abc-8def-0123456789abX", &v) < 0);
	CHECK(nb_uuid_parse("0193a5b0-7e1c-7abc-8def-0123456789a", &v) < 0);
	CHECK(nb_uuid_parse("0193a5b0x7e1c-7abc-8def-0123456789ab", &v) < 0);
	CHECK(nb_uuid_valid("0193A5B0-7E1C-7ABC-8DEF-0123456789AB"));
	int64_t now = nb_now_ms();
	int64_t ts = nb_uuid_v7_ms(&u);
	CHECK(ts <= now + 1 && ts >= now - 5000);
}

static void test_uuid_monotonic(void)
{
	/* Many ids in a tight loop: far more than one per millisecond. */
	enum { N = 200000 };
	nb_uuid_t prev, cur;
	nb_uuid_v7(&prev);
	int ordered = 1;
	for (int i = 0; i < N; i++) {
		nb_uuid_v7(&cur);
		if (memcmp(prev.b, cur.b, 16) >= 0)
			ordered = 0;
		if ((cur.b[6] >> 4) != 7 || (cur.b[8] >> 6) != 2)
			ordered = 0;
		prev = cur;
	}
	CHECK(ordered);
}

#define THREADS 4
#define PER_THREAD 20000
static nb_uuid_t thread_ids[THREADS][PER_THREAD];

static void *gen_thread(void *arg)
{
	nb_uuid_t *out = arg;
	for (int i = 0; i < PER_THREAD; i++)
		nb_uuid_v7(&out[i]);
	return NULL;
}

static int cmp_uuid(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

static void test_uuid_threads_unique(void)
{
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, gen_thread, thread_ids[i]);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	int per_thread_ordered = 1;
	for (int t = 0; t < THREADS; t++)
		for (int i = 1; i < PER_THREAD; i++)
			if (memcmp(thread_ids[t][i - 1].b, thread_ids[t][i].b, 16) >= 0)
				per_thread_ordered = 0;
	CHECK(per_thread_ordered);
	nb_uuid_t *all = malloc(sizeof(nb_uuid_t) * THREADS * PER_THREAD);
	memcpy(all, thread_ids, sizeof(nb_uuid_t) * THREADS * PER_THREAD);
	qsort(all, THREADS * PER_THREAD, sizeof(nb_uuid_t), cmp_uuid);
	int dup = 0;
	for (int i = 1; i < THREADS * PER_THREAD; i++)
		if (memcmp(all[i - 1].b, all[i].b, 16) == 0)
			dup = 1;
	CHECK(!dup);
	free(all);
}

static void test_rfc3339(void)
{
	char out[32];
	nb_rfc3339_ms(1764097292123LL, out);
	CHECK_STR(out, "2025-11-25T19:01:32.123Z");
	nb_rfc3339_ms(0, out);
	CHECK_STR(out, "1970-01-01T00:00:00.000Z");
}

static void test_err_table(void)
{
	CHECK_STR(nb_err_code(NB_ENOTFOUND), "not_found");
	CHECK_INT(nb_err_status(NB_EINVALID), 422);
	CHECK_INT(nb_err_status(NB_EUNAVAIL), 503);
	CHECK_STR(nb_err_code(-999), "internal");
	CHECK_INT(nb_err_status(12345), 500);
}

static void test_utf8_label(void)
{
	CHECK(nb_utf8_label_ok("Biology 101", 11));
	CHECK(nb_utf8_label_ok("Zo\xc3\xab", 4));
	CHECK(!nb_utf8_label_ok("", 0));
	CHECK(!nb_utf8_label_ok("   ", 3));
	CHECK(!nb_utf8_label_ok("\xe2\x80\x83\xc2\xa0", 5)); /* em space, no-break space */
	CHECK(!nb_utf8_label_ok("a\tb", 3));
	CHECK(!nb_utf8_label_ok("a\nb", 3));
	CHECK(!nb_utf8_label_ok("a\x7f", 2));
	CHECK(!nb_utf8_label_ok("a\xc2\x85", 3));		 /* NEL, C1 */
	CHECK(!nb_utf8_label_ok("abc\xe2\x80\xaegpj.exe", 13)); /* right-to-left override */
	CHECK(!nb_utf8_label_ok("a\xe2\x81\xa6" "b", 5));	 /* left-to-right isolate */
	CHECK(!nb_utf8_label_ok("a\xff", 2));			 /* not UTF-8 */
}

/* The JSON writer's integers and nb_buf_printf's one-pass write, against printf. */
static void test_jsonw_int_and_buf_printf(void)
{
	const int64_t vals[] = {0, 1, -1, 9, 10, -10, 123456789, -987654321, INT64_MAX, INT64_MIN, INT64_MIN + 1};
	nb_buf_t b = NB_BUF_INIT;
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		nb_buf_reset(&b);
		nb_jsonw_t w;
		nb_jsonw_init(&w, &b);
		nb_jsonw_int(&w, vals[i]);
		char want[32];
		snprintf(want, sizeof want, "%" PRId64, vals[i]);
		CHECK_STR(b.data, want);
	}
	/* printf into a buffer with room, without, and exactly at its edge */
	nb_buf_t p = NB_BUF_INIT;
	nb_buf_printf(&p, "%s-%d", "a", 1); /* no storage yet */
	CHECK_STR(p.data, "a-1");
	for (int i = 0; i < 200; i++)
		nb_buf_printf(&p, "%03d", i % 1000);
	CHECK_INT((long)p.len, 3 + 600);
	CHECK(p.data[p.len] == '\0');
	char big[300];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	size_t before = p.len;
	nb_buf_printf(&p, "%s", big); /* larger than the room left: measured, grown, written */
	CHECK_INT((long)p.len, (long)(before + sizeof big - 1));
	CHECK(strcmp(p.data + before, big) == 0);
	CHECK(strncmp(p.data, "a-1000001002", 12) == 0);
	nb_buf_dispose(&p);
	nb_buf_dispose(&b);
}

/* The escaper, byte by byte, as the word-at-a-time one must behave. */
static void ref_escape(nb_buf_t *b, const unsigned char *s, size_t n, unsigned flags)
{
	const char *hex = flags & NB_JSON_UPPER_HEX ? "0123456789ABCDEF" : "0123456789abcdef";
	nb_buf_putc(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		char e[7];
		if (c == '"' || c == '\\')
			snprintf(e, sizeof e, "\\%c", c);
		else if (c == '\n' || c == '\r' || c == '\t')
			snprintf(e, sizeof e, "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
		else if ((c == '\b' || c == '\f') && (flags & NB_JSON_SHORT_BF))
			snprintf(e, sizeof e, "\\%c", c == '\b' ? 'b' : 'f');
		else if (c < 0x20)
			snprintf(e, sizeof e, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
		else
			e[0] = (char)c, e[1] = '\0';
		nb_buf_puts(b, e);
	}
	nb_buf_putc(b, '"');
}

/* Strings of every length up to 40 with one byte of every value at every
 * position, and random mixes, in every style: the same bytes as the reference. */
static void test_json_escape_word_at_a_time(void)
{
	unsigned char s[64];
	nb_buf_t got = NB_BUF_INIT, want = NB_BUF_INIT;
	unsigned seed = 12345;
	long cases = 0;
	for (unsigned flags = 0; flags < 4; flags++) {
		for (size_t n = 0; n <= 40; n++) {
			for (size_t at = 0; at < (n ? n : 1); at++) {
				for (int v = 0; v < 256; v += (n > 20 ? 7 : 1)) {
					memset(s, 'a', n);
					if (n)
						s[at] = (unsigned char)v;
					nb_buf_reset(&got);
					nb_buf_reset(&want);
					nb_buf_putc(&got, '<'); /* what is there already stays */
					nb_buf_json_escape(&got, (const char *)s, n, flags);
					nb_buf_putc(&got, ':');
					nb_buf_putc(&want, '<');
					ref_escape(&want, s, n, flags);
					nb_buf_putc(&want, ':');
					CHECK_MSG(got.len == want.len && !memcmp(got.data, want.data, got.len) &&
						      got.data[got.len] == '\0',
						  "n %zu at %zu byte %d flags %u: %s vs %s", n, at, v, flags, got.data, want.data);
					cases++;
				}
			}
		}
		for (int k = 0; k < 2000; k++) {
			size_t n = (size_t)(rand_r(&seed) % 64);
			for (size_t i = 0; i < n; i++) {
				int r = rand_r(&seed) % 10;
				s[i] = (unsigned char)(r == 0 ? rand_r(&seed) % 0x20 : r == 1 ? '"' : r == 2 ? '\\' : r == 3 ? 0x80 + rand_r(&seed) % 0x80 : 'a' + r);
			}
			nb_buf_reset(&got);
			nb_buf_reset(&want);
			nb_buf_json_escape(&got, (const char *)s, n, flags);
			ref_escape(&want, s, n, flags);
			CHECK(got.len == want.len && !memcmp(got.data, want.data, got.len));
			cases++;
		}
	}
	CHECK(cases > 100000);
	nb_buf_dispose(&got);
	nb_buf_dispose(&want);
}

int main(void)
{
	T_RUN(test_buf_json_escape);
	T_RUN(test_arena);
	T_RUN(test_utf8);
	T_RUN(test_uuid_format_parse);
	T_RUN(test_uuid_monotonic);
	T_RUN(test_uuid_threads_unique);
	T_RUN(test_rfc3339);
	T_RUN(test_err_table);
	T_RUN(test_utf8_label);
	T_RUN(test_jsonw_int_and_buf_printf);
	T_RUN(test_json_escape_word_at_a_time);
	return t_done();
}
