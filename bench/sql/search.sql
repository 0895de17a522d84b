-- GET /v1/notebooks/{id}/search?q=cell energy: the notebook check, then the ranked hits with snippets
\set u random(:ufirst, :ulast)
\set k random(0, :snb - 1)
\set n :u * 100 + :k
SELECT 1 FROM notebooks WHERE id = bench_id(2, :n) AND owner_id = bench_id(1, :u) AND deleted_at IS NULL;
WITH q AS (SELECT nb_ts_config(n.language) AS cfg,
             nb_search_query(nb_ts_config(n.language), 'cell', 'energy', false) AS q FROM notebooks n
           WHERE n.id = bench_id(2, :n)),
 hits AS (SELECT c.id, c.source_id, c.chunk_index, c.page, c.text, ts_rank_cd(c.tsv, q.q, 1 | 32) AS score
   FROM chunks c, q WHERE c.notebook_id = bench_id(2, :n) AND c.deleted_at IS NULL AND c.tsv @@ q.q LIMIT 1000),
 top AS (SELECT h.*, s.title FROM hits h JOIN sources s ON s.id = h.source_id AND s.deleted_at IS NULL
   ORDER BY h.score DESC, h.id LIMIT 10)
SELECT t.id, t.source_id, t.title, t.chunk_index, t.page, round(t.score::numeric, 6)::text,
  ts_headline(q.cfg, t.text, q.q, 'StartSel=<<, StopSel=>>, MaxWords=35, MinWords=12, MaxFragments=2')
FROM top t, q ORDER BY t.score DESC, t.id;
