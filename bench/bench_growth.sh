#!/bin/sh
# Growth (issue 14, point 5): list notebooks, list messages and search for the
# same users with the same data of their own, once with SMALL (10k) rows in
# the notebooks, messages and chunks tables and once with LARGE (1M) — other
# users fill the tables — measured back to back in one run: two databases in
# one cluster, a notebookd on each in turn (A B A B ..., ROUNDS rounds,
# medians). Per endpoint: req/s, p50/p99, notebookd and PostgreSQL CPU per
# request, and the ratio large ÷ small next to what O(log n) allows
# (log 1M ÷ log 10k = 1.5; O(n) would be 100). Also the buffers each
# statement touches (EXPLAIN (ANALYZE, BUFFERS), a count the machine's load
# does not blur) at both sizes.
#
#   knobs: SMALL [10000], LARGE [1000000], HOT [50] measured users (each 20
#          notebooks, one with 40 chunks and a conversation of 40 messages),
#          DURATION [10] s a run, CONNS [100], ROUNDS [2]
#   the data is seeded with COPY (bench/seed.py)
set -eu
. bench/lib.sh
SMALL=${SMALL:-10000}
LARGE=${LARGE:-1000000}
HOT=${HOT:-50}
DURATION=${DURATION:-10}
CONNS=${CONNS:-100}
ROUNDS=${ROUNDS:-2}
SECRET="bench-secret-0123456789abcdef0123456789"
HNB=20 HCH=40 HM=40 # a measured user: 20 notebooks; the first with 1 source of 40 chunks, 1 conversation of 40 messages
FNB=10 FCH=10 FM=10 # a filling user: 10 notebooks; the first with 1 source of 10 chunks, 1 conversation of 10 messages
bench_start
small_url=$DATABASE_URL
large_url=$(echo "$DATABASE_URL" | sed 's|///notebookd?|///nb_large?|')
"$PGBIN/psql" -X -q "$DATABASE_URL" -c "CREATE DATABASE nb_large"
DATABASE_URL=$large_url "$BIN" migrate >/dev/null
seed() { # URL TOTAL
	DATABASE_URL=$1
	fill=$((($2 - HOT * HNB) / FNB))
	echo "seeding with COPY: $HOT measured users + $fill others: ~$2 notebooks, messages and chunks ..."
	bench_seed 1 "$HOT" "$HNB" 1 1 "$HCH" 1 "$HM"
	bench_seed $((HOT + 1)) $((HOT + fill)) "$FNB" 1 1 "$FCH" 1 "$FM"
	bench_setup
	"$PGBIN/psql" -X -tA "$DATABASE_URL" -c "SELECT 'rows: notebooks ' || (SELECT count(*) FROM notebooks) ||
		', messages ' || (SELECT count(*) FROM messages) || ', chunks ' || (SELECT count(*) FROM chunks)"
}
seed "$small_url" "$SMALL"
seed "$large_url" "$LARGE"
DATABASE_URL=$small_url

# the measured users' tokens and paths (their first notebook and its conversation)
# shellcheck disable=SC2046
bench_tokens "$tmp/tokens.txt" $(seq 1 "$HOT")
for e in notebooks_list messages_list search; do
	python3 - "$tmp" "$e" "$HOT" "$HNB" <<'PY'
import sys
tmp, name, hot, nb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
uid = lambda k, n: "%08x-0000-4000-8000-%012x" % (k, n)
tpl = {"notebooks_list": "/v1/notebooks?limit=20", "messages_list": "/v1/conversations/{c}/messages",
       "search": "/v1/notebooks/{n}/search?q=cell%20energy"}[name]
toks = open(tmp + "/tokens.txt").read().split()
paths = [tpl.replace("{n}", uid(2, u * 100)).replace("{c}", uid(4, u * 1000)) for u in range(1, hot + 1)]
with open("%s/%s.lua" % (tmp, name), "w") as f:
    f.write("local toks = {%s}\n" % ",".join('"%s"' % t for t in toks))
    f.write("local paths = {%s}\n" % ",".join('"%s"' % p for p in paths))
    f.write("local i = 0\nrequest = function()\n  i = i + 1\n  local k = (i %% %d) + 1\n" % len(toks))
    f.write("  return wrk.format('GET', paths[k], {['Authorization'] = 'Bearer ' .. toks[k]})\nend\n")
PY
done

# buffers: the statements each endpoint runs, for measured user 1, at both sizes
explain() { # URL → "notebooks_list N messages_list N search N" (shared buffers hit + read)
	for e in notebooks_list messages_list search; do
		sed -e '/^\\set/d' -e 's/:u\b/1/g' -e "s/:n\b/100/g" -e "s/:c\b/1000/g" "bench/sql/$e.sql" |
			awk 'BEGIN {RS = ";"} /SELECT|WITH/ {gsub(/--[^\n]*\n/, ""); print "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " $0 ";"}' |
			"$PGBIN/psql" -X -tA "$1" 2>&1 |
			python3 -c "import json, sys
s, d, i, t = sys.stdin.read(), json.JSONDecoder(), 0, 0
while True:
    j = s.find('[', i)
    if j < 0: break
    try: doc, i = d.raw_decode(s, j)
    except ValueError: i = j + 1; continue
    p = doc[0]['Plan']
    t += p.get('Shared Hit Blocks', 0) + p.get('Shared Read Blocks', 0)
print('$e', t)"
	done | tr '\n' ' '
}
explain "$small_url" >/dev/null # warm both
explain "$large_url" >/dev/null
bufs_small=$(explain "$small_url")
bufs_large=$(explain "$large_url")

hz=$(getconf CLK_TCK)
results="$tmp/results.txt"
: >"$results"
ms_per() { python3 -c "print('%.4f' % (($2 - $1) * 1000.0 / $hz / max(1, $3)))"; }
run() { # LABEL URL
	serve_start DATABASE_URL="$2" NOTEBOOKD_JWT_SECRET="$SECRET" NOTEBOOKD_WORKERS=0 NOTEBOOKD_RATE_READ_PER_MIN=0
	for e in notebooks_list messages_list search; do
		wrk -t2 -c"$CONNS" -d2 -s "$tmp/$e.lua" "http://127.0.0.1:$port" >/dev/null 2>&1
		pg0=$(pg_ticks)
		sv0=$(cpu_ticks "$serve_pid")
		out=$(wrk -t2 -c"$CONNS" -d"$DURATION" --timeout 30s --latency -s "$tmp/$e.lua" "http://127.0.0.1:$port" 2>&1)
		pg1=$(pg_ticks)
		sv1=$(cpu_ticks "$serve_pid")
		reqs=$(echo "$out" | awk '/requests in/ {print $1}')
		rps=$(echo "$out" | awk '/Requests\/sec/ {print int($2)}')
		p50=$(echo "$out" | awk '$1 == "50%" {v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else v = v * 1000; print v}')
		p99=$(echo "$out" | awk '$1 == "99%" {v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else v = v * 1000; print v}')
		errs=$(echo "$out" | awk '/Socket errors/ {gsub(",", ""); n += $4+$6+$8+$10} /Non-2xx/ {n += $5} END {print n+0}')
		echo "$1 $e $rps $p50 $p99 $errs $(ms_per "$sv0" "$sv1" "$reqs") $(ms_per "$pg0" "$pg1" "$reqs")" | tee -a "$results"
	done
	serve_stop
}
echo "growth: $HOT users, wrk -t2 -c$CONNS, $DURATION s a run, $ROUNDS rounds, $cores cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq 1 "$ROUNDS"); do
	run small "$small_url"
	run large "$large_url"
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$results" "$SMALL" "$LARGE" "$bufs_small" "$bufs_large" <<'PY'
import math, statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
small, large = int(sys.argv[2]), int(sys.argv[3])
bs = sys.argv[4].split(); bl = sys.argv[5].split()
bufs = {"small": dict(zip(bs[0::2], bs[1::2])), "large": dict(zip(bl[0::2], bl[1::2]))}
def med(label, e, i): return statistics.median(float(r[i]) for r in rows if r[0] == label and r[1] == e)
expect = math.log(large) / math.log(small)
print("| endpoint | rows | req/s | p50 ms | p99 ms | errors | server CPU ms/req | PostgreSQL CPU ms/req | buffers/req |")
print("|---|---|---|---|---|---|---|---|---|")
for e in ("notebooks_list", "messages_list", "search"):
    for label, n in (("small", small), ("large", large)):
        errs = sum(int(r[5]) for r in rows if r[0] == label and r[1] == e)
        print("| %s | %s | %d | %.2f | %.2f | %d | %.3f | %.3f | %s |" % (e, format(n, ","), med(label, e, 2), med(label, e, 3),
              med(label, e, 4), errs, med(label, e, 6), med(label, e, 7), bufs[label].get(e, "?")))
print()
print("| endpoint | p50 ×  | PostgreSQL CPU × | server CPU × | buffers × | O(log n) allows | O(n) would be |")
print("|---|---|---|---|---|---|---|")
for e in ("notebooks_list", "messages_list", "search"):
    r = lambda i: med("large", e, i) / max(1e-9, med("small", e, i))
    b = float(bufs["large"].get(e, 0)) / max(1.0, float(bufs["small"].get(e, 1)))
    print("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %d |" % (e, r(3), r(7), r(6), b, expect, large // small))
PY
