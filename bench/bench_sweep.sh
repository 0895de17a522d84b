#!/bin/sh
# Pool and pipeline settings by measurement (docs/architecture.md, "Pool and
# pipeline defaults"): the list benchmark of bench_list.sh
# (GET /v1/notebooks?limit=20, 2,000 users rotating over 10k users / 50k
# notebooks / 200k sources, wrk -t2 -c1000) for every combination of
#   POOLS      NOTEBOOKD_DB_POOL_SIZE          [default "4 8 16"]
#   PIPES      NOTEBOOKD_DB_PIPELINES          [default "2 4 6"]
#   LOOPS      NOTEBOOKD_IO_THREADS            [default "1 2"]
#   BINS       notebookd binaries              [default build/release/notebookd]
# ROUNDS [2] rounds, the combinations interleaved inside each round (so drift
# on a shared machine hits all of them alike); SECONDS_RUN [8] per run. Prints
# one line per run and a table of medians: req/s, p50, p99, p99 ÷ p50, non-200
# answers (503s when load is shed) and socket errors. THINK_MS=1000 makes each
# connection a user who waits 0.5-1.5 x THINK_MS between requests (not counted
# in the latency): the think-time shape of the load test instead of saturation.
#
#   sh bench/bench_sweep.sh
#   BINS="/tmp/before/notebookd build/release/notebookd" POOLS=8 PIPES=2 LOOPS=0 ROUNDS=3 sh bench/bench_sweep.sh
set -eu
. bench/lib.sh
POOLS=${POOLS:-"4 8 16"}
PIPES=${PIPES:-"2 4 6"}
LOOPS=${LOOPS:-"1 2"}
BINS=${BINS:-$BIN}
ROUNDS=${ROUNDS:-2}
SECONDS_RUN=${SECONDS_RUN:-8}
CONNS=${CONNS:-1000}
bench_start
SECRET="bench-secret-0123456789abcdef0123456789"
list_seed 10000
list_tokens 2000
# a wrk script that rotates the tokens and counts the answers that are not
# 200 across wrk's threads
python3 - "$tmp" "${THINK_MS:-0}" <<'PY'
import sys
tmp, think = sys.argv[1], int(sys.argv[2])
toks = open(tmp + "/tokens.txt").read().split()
with open(tmp + "/sweep.lua", "w") as f:
    f.write("local toks = {" + ",".join('"%s"' % t for t in toks) + "}\n")
    f.write("""local threads = {}
function setup(thread) table.insert(threads, thread) end
local i = 0
bad = 0 -- global: done() reads it from each thread
function init(args) i = math.random(1, %d) end
function request()
  i = i + 1
  return wrk.format('GET', '/v1/notebooks?limit=20', {['Authorization'] = 'Bearer ' .. toks[(i %% %d) + 1]})
end
function response(status, headers, body) if status ~= 200 then bad = bad + 1 end end
function done(summary, latency, requests)
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get('bad') end
  io.write(string.format('SWEEP %%.3f %%.3f %%d\\n', latency:percentile(50) / 1000, latency:percentile(99) / 1000, n))
end
""" % (len(toks), len(toks)))
    if think > 0:
        f.write("function delay() return math.random(%d, %d) end\n" % (think // 2, think * 3 // 2))
PY
res="$tmp/results.txt"
: > "$res"
round=1
while [ "$round" -le "$ROUNDS" ]; do
	for loops in $LOOPS; do for pool in $POOLS; do for pipes in $PIPES; do
		b=0
		for bin in $BINS; do
			b=$((b + 1))
			BIN=$bin serve_start NOTEBOOKD_WORKERS=0 NOTEBOOKD_IO_THREADS="$loops" \
				NOTEBOOKD_DB_POOL_SIZE="$pool" NOTEBOOKD_DB_PIPELINES="$pipes"
			wrk -t2 -c"$CONNS" -d2 -s "$tmp/sweep.lua" "http://127.0.0.1:$port" >/dev/null 2>&1 || true # warm-up
			out=$(wrk -t2 -c"$CONNS" -d"$SECONDS_RUN" -s "$tmp/sweep.lua" "http://127.0.0.1:$port" 2>&1 || true)
			if [ -n "${DIAG:-}" ]; then # CPU ticks of the server's busiest threads, and its pool and pipeline counters
				for t in /proc/$serve_pid/task/*; do awk '{print $14 + $15, $2}' "$t/stat"; done | sort -rn | head -n 4 | tr '\n' ' '
				echo
				curl -s "http://127.0.0.1:$port/metrics" | grep -E '^notebookd_(db_acquires|db_pipeline_statements|db_acquire_wait|http_shed)' || true
			fi
			serve_stop
			rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
			errs=$(echo "$out" | awk '/Socket errors/ {gsub(",", ""); n += $4+$6+$8+$10} END {print n+0}')
			set -- $(echo "$out" | awk '/^SWEEP/ {print $2, $3, $4}')
			line="bin$b loops=$loops pool=$pool pipes=$pipes rps=${rps:-0} p50=${1:-0} p99=${2:-0} non200=${3:-0} sockerr=$errs"
			echo "round $round: $line"
			echo "$line" >> "$res"
		done
	done; done; done
	round=$((round + 1))
done
echo
b=0
for bin in $BINS; do b=$((b + 1)); echo "bin$b = $bin"; done
echo "GET /v1/notebooks?limit=20, wrk -t2 -c$CONNS -d$SECONDS_RUN, medians of $ROUNDS rounds ($cores cores; io_threads 0 = one per core)"
python3 - "$res" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    kv = dict(w.split("=") for w in line.split()[1:])
    key = (line.split()[0], kv["loops"], kv["pool"], kv["pipes"])
    runs.setdefault(key, []).append(kv)
print("| binary | loops | pool | pipelines | req/s | p50 ms | p99 ms | p99 / p50 | non-200 | socket errors |")
print("|---|---|---|---|---|---|---|---|---|---|")
for key, rs in runs.items():
    med = lambda f: statistics.median(float(r[f]) for r in rs)
    p50, p99 = med("p50"), med("p99")
    print("| %s | %s | %s | %s | %.0f | %.1f | %.1f | %.1f | %d | %d |" % (
        key + (med("rps"), p50, p99, p99 / p50 if p50 else 0, med("non200"), med("sockerr"))))
PY
