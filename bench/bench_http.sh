#!/bin/sh
# HTTP core: wrk at 1000 connections on /healthz (no database) and /readyz
# (one prepared query), in both concurrency models, next to pgbench running
# the same prepared query at its best client count.
set -eu
. bench/lib.sh
bench_start
echo 'SELECT coalesce(max(version), 0) FROM schema_migrations;' > "$tmp/ready.sql"
serve_start NOTEBOOKD_DEBUG_ROUTES=1
h=$(wrk_run "http://127.0.0.1:$port/healthz")
r=$(wrk_run "http://127.0.0.1:$port/readyz")
t=$(wrk_run "http://127.0.0.1:$port/debug/readyz-thread")
rss=$(ps -o rss= -p "$serve_pid")
serve_stop
# the libmicrohttpd spike: thread pool + epoll, one blocking connection per thread
gcc -std=c11 -D_GNU_SOURCE -O2 -o "$tmp/mhd_readyz" bench/spikes/mhd_readyz.c \
	$(pkg-config --cflags --libs libmicrohttpd libpq) -lpthread
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$tmp/mhd_readyz" "$mport" "${MHD_THREADS:-16}" "$DATABASE_URL" &
mhd_pid=$!
sleep 1
m=$(wrk_run "http://127.0.0.1:$mport/readyz")
kill "$mhd_pid"; wait "$mhd_pid" 2>/dev/null || true
pg=$(pgbench_best "$tmp/ready.sql")
set -- $pg; pgtps=$1; pgc=$2
printf '%-44s %10s %9s %9s %7s\n' "wrk -t2 -c1000 -d10 ($cores cores)" "req/s" "p50" "p99" "errors"
set -- $h; printf '%-44s %10s %9s %9s %7s\n' "/healthz (event loop, no database)" "$1" "$2" "$3" "$4"
set -- $r; rr=$1; printf '%-44s %10s %9s %9s %7s\n' "/readyz (coroutine, async libpq)" "$1" "$2" "$3" "$4"
set -- $t; tr=$1; printf '%-44s %10s %9s %9s %7s\n' "/debug/readyz-thread (thread pool, blocking)" "$1" "$2" "$3" "$4"
set -- $m; mr=$1; printf '%-44s %10s %9s %9s %7s\n' "libmicrohttpd spike /readyz (${MHD_THREADS:-16} threads)" "$1" "$2" "$3" "$4"
printf '%-44s %10s (at %s clients)\n' "pgbench, same prepared query (ceiling)" "$pgtps" "$pgc"
echo "ratio /readyz / pgbench:               $(ratio "$rr" "$pgtps")"
echo "ratio /debug/readyz-thread / pgbench:  $(ratio "$tr" "$pgtps")"
echo "ratio libmicrohttpd spike / pgbench:   $(ratio "$mr" "$pgtps")"
echo "notebookd RSS after the runs: $((rss / 1024)) MiB"
