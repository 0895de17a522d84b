/*
 * log.c — JSON-lines logger (see log.h).
 *
 * Each line is built in a local buffer and written with one write(2), so
 * lines from different threads never interleave.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/timeutil.h"

static nb_log_level_t min_level = NB_LOG_INFO;
static _Thread_local char tl_request_id[72];

static const char *level_names[] = {"debug", "info", "warn", "error"};

void nb_log_set_level(const char *name)
{
	for (int i = 0; name && i < 4; i++)
		if (strcasecmp(name, level_names[i]) == 0)
			min_level = (nb_log_level_t)i;
}

void nb_log_set_request_id(const char *id)
{
	if (!id) {
		tl_request_id[0] = '\0';
		return;
	}
	snprintf(tl_request_id, sizeof tl_request_id, "%s", id);
}

static void write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

void nb_log_raw_json(const char *json, unsigned long len)
{
	nb_buf_t b = NB_BUF_INIT;
	nb_buf_append(&b, json, len);
	nb_buf_putc(&b, '\n');
	write_all(b.data, b.len);
	nb_buf_dispose(&b);
}

void nb_log(nb_log_level_t level, const char *fmt, ...)
{
	if (level < min_level)
		return;
	char ts[32];
	nb_rfc3339_ms(nb_now_ms(), ts);
	nb_buf_t msg = NB_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	nb_buf_vprintf(&msg, fmt, ap);
	va_end(ap);

	nb_buf_t b = NB_BUF_INIT;
	nb_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
	nb_buf_json_str(&b, msg.data ? msg.data : "", msg.len);
	if (tl_request_id[0]) {
		nb_buf_puts(&b, ",\"request_id\":");
		nb_buf_json_str(&b, tl_request_id, strlen(tl_request_id));
	}
	nb_buf_puts(&b, "}\n");
	write_all(b.data, b.len);
	nb_buf_dispose(&b);
	nb_buf_dispose(&msg);
}
