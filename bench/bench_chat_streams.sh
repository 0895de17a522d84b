#!/bin/sh
# 1,000 concurrent streamed chats (issue 10, point 6) against the fake
# OpenAI-compatible server (tests/e2e/fake_llm.py, asyncio) streaming a
# 5-second answer in 20 deltas: how many complete, notebookd's resident
# memory before / at peak / after, and GET /v1/me's latency idle and during
# the streams. STREAMS=N changes the count.
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${STREAMS:-1000}
bench_start
python3 tests/e2e/fake_llm.py --port 0 --mode slow --seconds 5 --pieces 20 >"$tmp/fake.port" 2>"$tmp/fake.log" &
fake_pid=$!
trap 'kill $fake_pid 2>/dev/null || true; bench_stop' EXIT
for _ in $(seq 1 50); do [ -s "$tmp/fake.port" ] && break; sleep 0.1; done
fport=$(head -n 1 "$tmp/fake.port")
serve_start NOTEBOOKD_GENERATOR=openai NOTEBOOKD_LLM_URL="http://127.0.0.1:$fport/v1" NOTEBOOKD_LLM_MODEL=fake \
	NOTEBOOKD_MAX_CONNECTIONS_PER_CLIENT=100000 NOTEBOOKD_AUTH_RATE_PER_MIN=0 NOTEBOOKD_AUTH_IP_RATE_PER_MIN=0 \
	NOTEBOOKD_IO_THREADS="$cores"
echo "cores: $cores, streams: $N (each a 5 s answer in 20 deltas)"
python3 bench/chat_streams_load.py "$port" "$serve_pid" "$N"
