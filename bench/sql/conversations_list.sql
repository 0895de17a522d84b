-- GET /v1/notebooks/{id}/conversations: the notebook check, then conversations with count and last message
\set u random(:ufirst, :ulast)
\set k random(0, :snb - 1)
\set n :u * 100 + :k
SELECT 1 FROM notebooks WHERE id = bench_id(2, :n) AND owner_id = bench_id(1, :u) AND deleted_at IS NULL;
SELECT c.id, c.notebook_id, c.title,
  (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id AND m.deleted_at IS NULL),
  lm.id, lm.conversation_id, lm.role, lm.content, lm.citations::json, lm.created_at,
  c.created_at, c.updated_at, coalesce(c.last_message_at, c.created_at)
FROM conversations c
LEFT JOIN LATERAL (SELECT m.id, m.conversation_id, m.role, m.content, m.citations, m.created_at FROM messages m
  WHERE m.conversation_id = c.id AND m.deleted_at IS NULL ORDER BY m.created_at DESC, m.id DESC LIMIT 1) lm ON true
WHERE c.user_id = bench_id(1, :u) AND c.notebook_id = bench_id(2, :n) AND c.deleted_at IS NULL
ORDER BY coalesce(c.last_message_at, c.created_at) DESC, c.id DESC LIMIT 21;
