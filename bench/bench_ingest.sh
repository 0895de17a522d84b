#!/bin/sh
# Ingestion throughput: MB/s of text turned into indexed chunks through the
# API and the job workers, next to the ceiling — the same chunk rows (with
# their generated tsvector and indexes) loaded with COPY.
set -eu
. bench/lib.sh
bench_start
serve_start NOTEBOOKD_WORKERS="${WORKERS:-2}" NOTEBOOKD_AUTH_RATE_PER_MIN=0
python3 - "$port" "$tmp" <<'PY'
import json, sys, time, urllib.request, random
port, tmp = sys.argv[1], sys.argv[2]
B = "http://127.0.0.1:%s" % port
def req(m, p, body=None, tok=None):
    h = {"Content-Type": "application/json"}
    if tok: h["Authorization"] = "Bearer " + tok
    r = urllib.request.Request(B + p, method=m, data=json.dumps(body).encode() if body is not None else None, headers=h)
    with urllib.request.urlopen(r, timeout=120) as f:
        return json.loads(f.read() or b"null")
tok = req("POST", "/v1/auth/register", {"email": "bench@example.com", "password": "long enough pw"})["access_token"]
nb = req("POST", "/v1/notebooks", {"title": "bench"}, tok)["id"]
random.seed(7)
words = ("cell membrane protein enzyme substrate energy mitochondria nucleus ribosome transcription translation "
         "genome allele mutation evolution selection population ecosystem photosynthesis respiration").split()
def doc(n):
    paras = []
    size = 0
    while size < n:
        p = " ".join(" ".join(random.choice(words) for _ in range(random.randint(8, 20))).capitalize() + "."
                     for _ in range(random.randint(3, 7)))
        paras.append(p)
        size += len(p) + 2
    return "\n\n".join(paras)
sources, per = 24, 400_000
docs = [doc(per) for _ in range(sources)]
total = sum(len(d.encode()) for d in docs)
t0 = time.time()
ids = [req("POST", "/v1/notebooks/%s/sources" % nb, {"kind": "text", "content": d, "title": "s%d" % i}, tok)["source"]["id"]
       for i, d in enumerate(docs)]
pending = set(ids)
while pending:
    for sid in list(pending):
        s = req("GET", "/v1/sources/" + sid, None, tok)
        if s["status"] in ("ready", "failed"):
            assert s["status"] == "ready", s
            pending.discard(sid)
    time.sleep(0.05)
dt = time.time() - t0
open(tmp + "/api.txt", "w").write("%d %.3f %s\n" % (total, dt, nb))
PY
set -- $(cat "$tmp/api.txt"); bytes=$1; secs=$2; nb=$3
serve_stop
chunks=$("$PGBIN/psql" "$DATABASE_URL" -tAc "SELECT count(*) FROM chunks WHERE notebook_id = '$nb'")
# the ceiling: the same rows COPYed into a fresh source
"$PGBIN/psql" "$DATABASE_URL" -qc "\\copy (SELECT chunk_index, text, char_start, char_end, page, token_count FROM chunks WHERE notebook_id = '$nb') TO '$tmp/chunks.tsv'"
"$PGBIN/psql" "$DATABASE_URL" -qAtc "INSERT INTO sources (id, notebook_id, title, kind) VALUES ('00000000-0000-7000-8000-000000000001', '$nb', 'copy', 'text')"
t0=$(date +%s.%N)
"$PGBIN/psql" "$DATABASE_URL" -qc "CREATE TEMP TABLE c (chunk_index int, text text, char_start int, char_end int, page int, token_count int)" \
	-c "\\copy c FROM '$tmp/chunks.tsv'" \
	-c "INSERT INTO chunks (id, source_id, notebook_id, chunk_index, text, char_start, char_end, page, token_count) SELECT gen_random_uuid(), '00000000-0000-7000-8000-000000000001', '$nb', row_number() OVER () - 1, text, char_start, char_end, page, token_count FROM c"
t1=$(date +%s.%N)
copy_secs=$(python3 -c "print('%.3f' % ($t1 - $t0))")
mb=$(python3 -c "print('%.2f' % ($bytes / 1e6))")
api_rate=$(python3 -c "print('%.2f' % ($bytes / 1e6 / $secs))")
copy_rate=$(python3 -c "print('%.2f' % ($bytes / 1e6 / $copy_secs))")
echo "ingestion ($cores cores): $mb MB of text in 24 sources -> $chunks chunks"
echo "through the API and ${WORKERS:-2} in-process workers:  $secs s  = $api_rate MB/s"
echo "the same rows with COPY (ceiling):             $copy_secs s  = $copy_rate MB/s"
echo "ratio API / COPY: $(ratio "$api_rate" "$copy_rate")"
