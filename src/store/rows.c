/*
 * rows.c — resources written from binary rows (see rows.h).
 */
#include "store/rows.h"

#include <stdint.h>
#include <string.h>

#include "db/bin.h"

void nb_row_ts(nb_jsonw_t *w, const PGresult *r, int row, int col)
{
	int64_t v = nb_bin_int(r, row, col);
	if (nb_bin_null(r, row, col) || v == INT64_MAX || v == INT64_MIN)
		nb_jsonw_null(w);
	else
		nb_jsonw_ts(w, v + NB_PG_EPOCH_US);
}

void nb_row_text(nb_jsonw_t *w, const PGresult *r, int row, int col)
{
	if (nb_bin_null(r, row, col))
		nb_jsonw_null(w);
	else
		nb_jsonw_str(w, PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

void nb_row_uuid(nb_jsonw_t *w, const PGresult *r, int row, int col)
{
	const unsigned char *u = nb_bin_uuid(r, row, col);
	if (u)
		nb_jsonw_uuid(w, u);
	else
		nb_jsonw_null(w);
}

void nb_row_int(nb_jsonw_t *w, const PGresult *r, int row, int col)
{
	if (nb_bin_null(r, row, col))
		nb_jsonw_null(w);
	else
		nb_jsonw_int(w, nb_bin_int(r, row, col));
}

void nb_row_json(nb_jsonw_t *w, const PGresult *r, int row, int col)
{
	if (nb_bin_null(r, row, col))
		nb_jsonw_null(w);
	else
		nb_jsonw_raw(w, PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

void nb_store_source_row(nb_jsonw_t *w, const PGresult *r, int row, int c)
{
	nb_jsonw_obj(w);
	nb_jsonw_key(w, "id");
	nb_row_uuid(w, r, row, c);
	nb_jsonw_key(w, "notebook_id");
	nb_row_uuid(w, r, row, c + 1);
	nb_jsonw_key(w, "document_id");
	nb_row_uuid(w, r, row, c + 2);
	nb_jsonw_key(w, "kind");
	nb_row_text(w, r, row, c + 3);
	nb_jsonw_key(w, "title");
	nb_row_text(w, r, row, c + 4);
	nb_jsonw_key(w, "url");
	nb_row_text(w, r, row, c + 5);
	nb_jsonw_key(w, "status");
	nb_row_text(w, r, row, c + 6);
	nb_jsonw_key(w, "error");
	nb_row_text(w, r, row, c + 7);
	nb_jsonw_key(w, "byte_size");
	nb_row_int(w, r, row, c + 8);
	nb_jsonw_key(w, "chunk_count");
	nb_row_int(w, r, row, c + 9);
	nb_jsonw_key(w, "page_count");
	nb_row_int(w, r, row, c + 10);
	nb_jsonw_key(w, "summary");
	nb_row_json(w, r, row, c + 11);
	nb_jsonw_key(w, "topics");
	nb_row_json(w, r, row, c + 12);
	nb_jsonw_key(w, "created_at");
	nb_row_ts(w, r, row, c + 13);
	nb_jsonw_key(w, "updated_at");
	nb_row_ts(w, r, row, c + 14);
	nb_jsonw_obj_end(w);
}

void nb_row_ts_text(const PGresult *r, int row, int col, char out[40])
{
	nb_ts_pg_fmt(nb_bin_ts(r, row, col), out);
}

void nb_row_uuid_text(const PGresult *r, int row, int col, char out[37])
{
	const unsigned char *u = nb_bin_uuid(r, row, col);
	if (u)
		nb_uuid_fmt(u, out);
	else
		out[0] = '\0';
}
