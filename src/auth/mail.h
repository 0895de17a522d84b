/*
 * mail.h — outgoing mail (one-time codes).
 *
 * With NOTEBOOKD_SMTP_URL set, mail goes out over SMTP through libcurl
 * (smtp:// or smtps://, STARTTLS when the server offers it); otherwise each
 * message is written as an .eml file under NOTEBOOKD_MAIL_DIR and the path
 * is logged — the development and test mailbox.
 *
 * nb_mail_send_async queues the message on a small thread pool and returns at
 * once: the HTTP answer never waits for (or reveals, by its timing) a send.
 */
#ifndef NB_AUTH_MAIL_H
#define NB_AUTH_MAIL_H

#include <stddef.h>

/** Starts the mail thread. Call once at start-up. */
void nb_mail_init(void);
/** Sends whatever is queued, then stops the thread. */
void nb_mail_shutdown(void);
/** Sends one plain-text UTF-8 message now. 0, or -1 with a reason in err. */
int nb_mail_send(const char *to, const char *subject, const char *body, char *err, size_t errlen);
/** Queues a message (the strings are copied); failures are logged. */
void nb_mail_send_async(const char *to, const char *subject, const char *body);

#endif
