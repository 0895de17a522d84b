/*
 * generations.c — GET /v1/generations: the user's generation records
 * (chat answers now; quizzes, study guides and source guides next), newest
 * first, filterable by kind and notebook, keyset-paginated.
 */
#include <string.h>

#include "api/app.h"
#include "api/util.h"
#include "core/err.h"
#include "core/uuid.h"
#include "store/conversations.h"

static const char *const k_kinds[] = {"chat", "quiz", "study_guide", "source_guide", NULL};

int nb_api_generations_list(nb_req_t *req)
{
	nb_page_t page;
	int rc = nb_page_parse(req, 20, 100, &page);
	if (rc < 0)
		return rc;
	const char *kind = nb_req_query(req, "kind");
	if (kind) {
		bool known = false;
		for (const char *const *k = k_kinds; *k && !known; k++)
			known = !strcmp(*k, kind);
		if (!known)
			return nb_resp_error(req, NB_EINVALID, "kind: must be chat, quiz, study_guide or source_guide",
					     "kind");
	}
	const char *nb = nb_req_query(req, "notebook_id");
	if (nb && !nb_uuid_valid(nb))
		return nb_resp_error(req, NB_EINVALID, "notebook_id: must be a notebook id", "notebook_id");
	nb_conn_t *c;
	PGresult *rows = NULL;
	if ((rc = nb_req_db(req, &c)) < 0 || (rc = nb_store_generations_list(c, req->user_id, kind, nb, page.limit,
									     page.after_ts, page.after_id, &rows)) < 0)
		return nb_fail(req, rc);
	nb_resp_list_rows(req, rows, page.limit);
	return 0;
}
