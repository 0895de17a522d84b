-- GET /v1/notebooks/{id}/sources: the notebook check, then the page
\set u random(:ufirst, :ulast)
\set k random(0, :snb - 1)
\set n :u * 100 + :k
SELECT 1 FROM notebooks WHERE id = bench_id(2, :n) AND owner_id = bench_id(1, :u) AND deleted_at IS NULL;
SELECT s.id, s.notebook_id, s.document_id, s.kind, s.title, s.url, s.status, s.error, s.byte_size, s.chunk_count,
  s.page_count, s.summary::json, s.topics::json, s.created_at, s.updated_at
FROM sources s WHERE s.notebook_id = bench_id(2, :n) AND s.deleted_at IS NULL ORDER BY s.created_at, s.id LIMIT 21;
