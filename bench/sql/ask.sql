-- POST /v1/conversations/{id}/messages with the extractive generator: the statements an answer runs
-- (context, retrieval, then one transaction: lock, cited chunks read back, two messages, the generation
-- record, the conversation's activity time); the generator itself is C work pgbench does not do
\set u random(:ufirst, :ulast)
\set k random(0, :snb - 1)
\set n :u * 100 + :k
\set c :n * 10
\set chk :n * 100000
SELECT c.notebook_id, coalesce((SELECT json_agg(json_build_object('role', t.role, 'content', t.content)
    ORDER BY t.created_at, t.id) FROM (SELECT m.role, m.content, m.created_at, m.id FROM messages m
    WHERE m.conversation_id = c.id AND m.deleted_at IS NULL ORDER BY m.created_at DESC, m.id DESC LIMIT 6) t), '[]')::text
FROM conversations c JOIN notebooks n ON n.id = c.notebook_id AND n.owner_id = c.user_id AND n.deleted_at IS NULL
WHERE c.deleted_at IS NULL AND c.id = bench_id(4, :c) AND c.user_id = bench_id(1, :u);
WITH l AS (SELECT coalesce(NULL::regconfig, (SELECT nb_ts_config(n.language) FROM notebooks n WHERE n.id = bench_id(2, :n)),
                          'english'::regconfig) AS cfg),
 q AS (SELECT websearch_to_tsquery(l.cfg, 'cell or make or energy') AS q, websearch_to_tsquery(l.cfg, '') AS h,
              plainto_tsquery(l.cfg, 'How does the cell make energy') AS a FROM l),
 cand AS ((SELECT c.id FROM chunks c, q WHERE c.notebook_id = bench_id(2, :n) AND c.deleted_at IS NULL AND c.tsv @@ q.a
           LIMIT 2500)
   UNION (SELECT c.id FROM chunks c, q WHERE c.notebook_id = bench_id(2, :n) AND c.deleted_at IS NULL
          AND (c.tsv @@ q.q OR c.tsv @@ q.h) LIMIT 2500)),
 hits AS (SELECT c.id, c.source_id, c.text, ts_rank_cd(c.tsv, q.q, 1 | 32) + 0.5 * ts_rank_cd(c.tsv, q.h, 1 | 32) AS score
   FROM cand JOIN chunks c ON c.id = cand.id CROSS JOIN q
   JOIN sources s ON s.id = c.source_id AND s.deleted_at IS NULL AND s.status = 'ready')
SELECT coalesce(json_agg(json_build_object('chunk_id', x.id, 'source_id', x.source_id, 'text', x.text,
                         'score', x.score) ORDER BY x.score DESC, x.id), '[]')::text
FROM (SELECT * FROM hits ORDER BY score DESC, id LIMIT 16) x;
BEGIN;
SELECT c.notebook_id FROM conversations c JOIN notebooks n ON n.id = c.notebook_id AND n.owner_id = c.user_id
  AND n.deleted_at IS NULL WHERE c.deleted_at IS NULL AND c.id = bench_id(4, :c) AND c.user_id = bench_id(1, :u)
  FOR UPDATE OF c;
SELECT c.id, c.source_id, c.text FROM chunks c
  JOIN sources s ON s.id = c.source_id AND s.deleted_at IS NULL AND s.status = 'ready'
  WHERE c.id IN (bench_id(6, :chk)) AND c.notebook_id = bench_id(2, :n) AND c.deleted_at IS NULL;
INSERT INTO messages (id, conversation_id, role, content, citations, created_at)
  VALUES (gen_random_uuid(), bench_id(4, :c), 'user', 'How does the cell make energy?', '[]', clock_timestamp());
INSERT INTO messages (id, conversation_id, role, content, citations, created_at)
  VALUES (gen_random_uuid(), bench_id(4, :c), 'assistant', 'The cell makes energy [1].',
          jsonb_build_array(jsonb_build_object('chunk_id', bench_id(6, :chk), 'quote', 'cell energy')), clock_timestamp());
INSERT INTO generation_history (id, user_id, notebook_id, conversation_id, kind, provider, model, input_tokens,
  output_tokens, latency_ms, dropped_citations, status, error)
  VALUES (gen_random_uuid(), bench_id(1, :u), bench_id(2, :n), bench_id(4, :c), 'chat', 'extractive', '', 100, 20, 1, 0,
          'succeeded', NULL);
UPDATE conversations SET last_message_at = clock_timestamp() WHERE id = bench_id(4, :c);
COMMIT;
