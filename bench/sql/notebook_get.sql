-- GET /v1/notebooks/{id}: one notebook with its sources, plain rows
\set u random(:ufirst, :ulast)
\set k random(0, :snb - 1)
\set n :u * 100 + :k
SELECT n.id, n.title, n.description, n.language, n.created_at, n.updated_at, n.deleted_at, n.source_count,
  s.id, s.notebook_id, s.document_id, s.kind, s.title, s.url, s.status, s.error, s.byte_size, s.chunk_count,
  s.page_count, s.summary::json, s.topics::json, s.created_at, s.updated_at
FROM (SELECT n.id, n.title, n.description, n.language, n.created_at, n.updated_at, n.deleted_at,
        (SELECT count(*) FROM sources s WHERE s.notebook_id = n.id AND s.deleted_at IS NULL) AS source_count
      FROM notebooks n WHERE n.id = bench_id(2, :n) AND n.owner_id = bench_id(1, :u) AND n.deleted_at IS NULL) n
LEFT JOIN LATERAL (SELECT * FROM sources s WHERE s.notebook_id = n.id AND s.deleted_at IS NULL
  ORDER BY s.created_at, s.id LIMIT 50) s ON true
ORDER BY s.created_at, s.id;
