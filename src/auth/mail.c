/*
 * mail.c — SMTP through libcurl, or .eml files (see mail.h).
 */
#include "auth/mail.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/tpool.h"
#include "core/uuid.h"

static nb_tpool_t *mail_pool;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Headers with CR or LF would let a value inject headers: replace them. */
static void header_value(nb_buf_t *b, const char *s)
{
	for (; *s; s++)
		nb_buf_putc(b, (*s == '\r' || *s == '\n') ? ' ' : *s);
}

static void build_message(nb_buf_t *m, const char *to, const char *subject, const char *body)
{
	char date[64], id[37];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	nb_uuid_v7_str(id);
	const char *from = nb_cfg.mail_from ? nb_cfg.mail_from : "notebookd@localhost";
	nb_buf_puts(m, "From: ");
	header_value(m, from);
	nb_buf_puts(m, "\r\nTo: ");
	header_value(m, to);
	nb_buf_puts(m, "\r\nSubject: ");
	header_value(m, subject);
	nb_buf_printf(m, "\r\nDate: %s\r\nMessage-ID: <%s@notebookd>\r\nMIME-Version: 1.0\r\n"
			 "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
		      date, id);
	for (const char *p = body; *p; p++) { /* normalise line ends to CRLF */
		if (*p == '\n' && (p == body || p[-1] != '\r'))
			nb_buf_putc(m, '\r');
		nb_buf_putc(m, *p);
	}
	nb_buf_puts(m, "\r\n");
}

static int mkdirs(const char *path)
{
	char tmp[1024];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

static int write_eml(const nb_buf_t *m, char *err, size_t errlen)
{
	const char *dir = nb_cfg.mail_dir ? nb_cfg.mail_dir : "var/mail";
	if (mkdirs(dir) < 0) {
		snprintf(err, errlen, "could not create mail directory %s: %s", dir, strerror(errno));
		return -1;
	}
	char id[37], path[1200], tmp[1210];
	nb_uuid_v7_str(id);
	snprintf(path, sizeof path, "%s/%s.eml", dir, id);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, m->data, m->len) != (ssize_t)m->len) {
		snprintf(err, errlen, "could not write %s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	rename(tmp, path); /* readers never see a half-written file */
	nb_info("mail written to %s", path);
	return 0;
}

typedef struct reader {
	const char *data;
	size_t len, pos;
} reader_t;

static size_t read_cb(char *buf, size_t size, size_t nmemb, void *arg)
{
	reader_t *r = arg;
	size_t n = size * nmemb;
	if (n > r->len - r->pos)
		n = r->len - r->pos;
	memcpy(buf, r->data + r->pos, n);
	r->pos += n;
	return n;
}

/* The bare address of "Name <a@b>" or "a@b", in angle brackets. */
static void angle_addr(const char *s, char *out, size_t n)
{
	const char *lt = strchr(s, '<');
	if (lt)
		snprintf(out, n, "%s", lt);
	else
		snprintf(out, n, "<%s>", s);
}

static int send_smtp(const char *to, const nb_buf_t *m, char *err, size_t errlen)
{
	pthread_once(&curl_once, curl_init_once);
	CURL *curl = curl_easy_init();
	if (!curl) {
		snprintf(err, errlen, "could not start libcurl");
		return -1;
	}
	char from[320], rcpt[320];
	angle_addr(nb_cfg.mail_from ? nb_cfg.mail_from : "notebookd@localhost", from, sizeof from);
	angle_addr(to, rcpt, sizeof rcpt);
	struct curl_slist *rcpts = curl_slist_append(NULL, rcpt);
	reader_t rd = {m->data, m->len, 0};
	curl_easy_setopt(curl, CURLOPT_URL, nb_cfg.smtp_url);
	curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpts);
	curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(curl, CURLOPT_READDATA, &rd);
	curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(curl, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
	CURLcode rc = curl_easy_perform(curl);
	if (rc != CURLE_OK)
		snprintf(err, errlen, "could not send mail: %s", curl_easy_strerror(rc));
	curl_slist_free_all(rcpts);
	curl_easy_cleanup(curl);
	return rc == CURLE_OK ? 0 : -1;
}

int nb_mail_send(const char *to, const char *subject, const char *body, char *err, size_t errlen)
{
	nb_buf_t m = NB_BUF_INIT;
	build_message(&m, to, subject, body);
	int rc = nb_cfg.smtp_url ? send_smtp(to, &m, err, errlen) : write_eml(&m, err, errlen);
	nb_buf_dispose(&m);
	return rc;
}

typedef struct mail_job {
	char *to, *subject, *body;
} mail_job_t;

static void mail_task(void *arg)
{
	mail_job_t *j = arg;
	char err[256];
	if (nb_mail_send(j->to, j->subject, j->body, err, sizeof err) < 0)
		nb_warn("%s", err);
	free(j->to);
	free(j->subject);
	free(j->body);
	free(j);
}

void nb_mail_init(void)
{
	if (!mail_pool)
		mail_pool = nb_tpool_create("mail", 2);
}

void nb_mail_shutdown(void)
{
	nb_tpool_destroy(mail_pool);
	mail_pool = NULL;
}

void nb_mail_send_async(const char *to, const char *subject, const char *body)
{
	mail_job_t *j = nb_xmalloc(sizeof *j);
	j->to = nb_xstrdup(to);
	j->subject = nb_xstrdup(subject);
	j->body = nb_xstrdup(body);
	if (!mail_pool) {
		mail_task(j);
		return;
	}
	nb_tpool_submit(mail_pool, mail_task, j);
}
