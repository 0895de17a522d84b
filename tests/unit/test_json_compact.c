/*
 * test_json_compact.c — nb_buf_json_compact: JSON PostgreSQL prints with
 * spaces ("id" : 1) becomes compact; whitespace inside strings, escaped
 * quotes and backslashes survive.
 */
#include <jansson.h>
#include <stdlib.h>

#include "core/buf.h"
#include "t.h"

static char *compact(const char *s)
{
	nb_buf_t b = NB_BUF_INIT;
	nb_buf_json_compact(&b, s, strlen(s));
	nb_buf_putc(&b, '\0');
	return nb_buf_steal(&b, NULL);
}

static void test_postgres_spacing_removed(void)
{
	char *s = compact("{\"id\" : \"a b\", \"n\" : 1, \"l\" : [1, 2, {\"x\" : null}]}");
	CHECK_STR(s, "{\"id\":\"a b\",\"n\":1,\"l\":[1,2,{\"x\":null}]}");
	free(s);
	s = compact("{\n\t\"a\": true\r\n}");
	CHECK_STR(s, "{\"a\":true}");
	free(s);
}

static void test_strings_kept_verbatim(void)
{
	const char *in = "{\"q\" : \"say \\\"hi\\\" , ok\", \"b\" : \"back\\\\\", \"t\" : \"  two  spaces \\n\"}";
	char *s = compact(in);
	CHECK_STR(s, "{\"q\":\"say \\\"hi\\\" , ok\",\"b\":\"back\\\\\",\"t\":\"  two  spaces \\n\"}");
	/* the same value as before */
	json_t *a = json_loads(in, 0, NULL), *b = json_loads(s, 0, NULL);
	CHECK(a && b && json_equal(a, b));
	json_decref(a);
	json_decref(b);
	free(s);
}

static void test_compact_input_unchanged(void)
{
	const char *in = "{\"a\":[],\"b\":{},\"c\":\"\"}";
	char *s = compact(in);
	CHECK_STR(s, in);
	free(s);
	s = compact("");
	CHECK_STR(s, "");
	free(s);
}

int main(void)
{
	T_RUN(test_postgres_spacing_removed);
	T_RUN(test_strings_kept_verbatim);
	T_RUN(test_compact_input_unchanged);
	return t_done();
}
