-- 0003_sources_search: a language per notebook that decides how its chunks
-- are indexed and searched; sources whose default title may be replaced
-- once their page is fetched; the re-index job.

-- The text-search configuration of an ISO 639-1 code: the languages
-- PostgreSQL 15 ships a stemmer and stop words for; every other code
-- (and 'simple' itself) indexes words as they are, lower-cased.
CREATE FUNCTION nb_ts_config(lang text) RETURNS regconfig
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT (CASE lang
	WHEN 'ar' THEN 'arabic'     WHEN 'hy' THEN 'armenian'   WHEN 'eu' THEN 'basque'
	WHEN 'ca' THEN 'catalan'    WHEN 'da' THEN 'danish'     WHEN 'nl' THEN 'dutch'
	WHEN 'en' THEN 'english'    WHEN 'fi' THEN 'finnish'    WHEN 'fr' THEN 'french'
	WHEN 'de' THEN 'german'     WHEN 'el' THEN 'greek'      WHEN 'hi' THEN 'hindi'
	WHEN 'hu' THEN 'hungarian'  WHEN 'id' THEN 'indonesian' WHEN 'ga' THEN 'irish'
	WHEN 'it' THEN 'italian'    WHEN 'lt' THEN 'lithuanian' WHEN 'ne' THEN 'nepali'
	WHEN 'no' THEN 'norwegian'  WHEN 'nb' THEN 'norwegian'  WHEN 'nn' THEN 'norwegian'
	WHEN 'pt' THEN 'portuguese' WHEN 'ro' THEN 'romanian'   WHEN 'ru' THEN 'russian'
	WHEN 'sr' THEN 'serbian'    WHEN 'es' THEN 'spanish'    WHEN 'sv' THEN 'swedish'
	WHEN 'ta' THEN 'tamil'      WHEN 'tr' THEN 'turkish'    WHEN 'yi' THEN 'yiddish'
	ELSE 'simple' END)::regconfig
$$;

-- Which ISO 639-1 code is checked by the API (a list of 183 codes); the
-- database keeps the shape.
ALTER TABLE notebooks ADD COLUMN language text NOT NULL DEFAULT 'en'
	CHECK (language ~ '^[a-z][a-z]$');

-- A chunk's vector follows its notebook's language, which a generated
-- column cannot read: the store computes it when it inserts chunks, a
-- trigger fills it for any other writer (and when the text changes), and the
-- re-index job rewrites it when the language changes.
ALTER TABLE chunks ALTER COLUMN tsv DROP EXPRESSION;

CREATE FUNCTION nb_chunk_tsv() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	NEW.tsv := to_tsvector(nb_ts_config(coalesce(
		(SELECT language FROM notebooks WHERE id = NEW.notebook_id), 'en')), NEW.text);
	RETURN NEW;
END;
$$;
CREATE TRIGGER chunks_tsv_insert BEFORE INSERT ON chunks
	FOR EACH ROW WHEN (NEW.tsv IS NULL) EXECUTE FUNCTION nb_chunk_tsv();
CREATE TRIGGER chunks_tsv_update BEFORE UPDATE OF text ON chunks
	FOR EACH ROW EXECUTE FUNCTION nb_chunk_tsv();

-- true while a source's title is one the server chose (the URL, a first
-- line): fetching the page may replace it with the page's <title>.
ALTER TABLE sources ADD COLUMN title_derived boolean NOT NULL DEFAULT false;

ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('ingest_source', 'generate_quiz',
	'generate_study_guide', 'reindex_notebook', 'noop', 'fail'));

-- The search box's query (API.md, search): `head` in websearch syntax, all
-- words required (match_any false), or any of its words, stop words dropped
-- (match_any true); `last` (may be NULL) is the word being typed, matched as
-- a prefix (`mitochond` finds mitochondria and mitochondrial) and required
-- in both modes' sense (AND with the rest, or one more alternative).
-- Lexemes are quoted into tsquery syntax, so no input is an operator.
CREATE FUNCTION nb_search_query(cfg regconfig, head text, last text, match_any boolean) RETURNS tsquery
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
WITH rest AS (
	SELECT CASE WHEN match_any THEN
		coalesce((SELECT string_agg('''' || replace(replace(l, '\', '\\'), '''', '''''') || '''', ' | ')
		          FROM unnest(tsvector_to_array(to_tsvector(cfg, coalesce(head, '')))) l), '')::tsquery
		ELSE websearch_to_tsquery(cfg, coalesce(head, '')) END AS q),
pre AS (
	SELECT coalesce((SELECT string_agg('''' || replace(replace(l, '\', '\\'), '''', '''''') || ''':*', ' & ')
	                 FROM unnest(tsvector_to_array(to_tsvector(cfg, coalesce(last, '')))) l), '')::tsquery AS q)
SELECT CASE WHEN match_any THEN rest.q || pre.q ELSE rest.q && pre.q END FROM rest, pre
$$;
