-- GET /v1/conversations/{id}/messages: the conversation check, then the first page
\set u random(:ufirst, :ulast)
\set k random(0, :snb - 1)
\set n :u * 100 + :k
\set c :n * 10
SELECT c.notebook_id FROM conversations c JOIN notebooks n ON n.id = c.notebook_id AND n.owner_id = c.user_id
  AND n.deleted_at IS NULL WHERE c.deleted_at IS NULL AND c.id = bench_id(4, :c) AND c.user_id = bench_id(1, :u);
SELECT m.id, m.conversation_id, m.role, m.content, m.citations::json, m.created_at FROM messages m
WHERE m.conversation_id = bench_id(4, :c) AND m.deleted_at IS NULL ORDER BY m.created_at, m.id LIMIT 21;
