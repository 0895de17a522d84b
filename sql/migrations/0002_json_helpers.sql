-- 0002_json_helpers: how the store layer renders timestamps in JSON
-- (RFC 3339, UTC, milliseconds, a Z), so every query says it the same way.
CREATE FUNCTION nb_ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;
