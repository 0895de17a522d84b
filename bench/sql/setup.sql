-- The ids of bench/seed.py, for pgbench's scripts: kind 1 user, 2 notebook,
-- 3 source, 4 conversation, 5 message, 6 chunk.
CREATE OR REPLACE FUNCTION bench_id(kind int, n bigint) RETURNS uuid LANGUAGE sql IMMUTABLE AS
$$ SELECT (lpad(to_hex(kind), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(n), 12, '0'))::uuid $$;
VACUUM ANALYZE;
