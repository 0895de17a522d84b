#!/bin/sh
# Runs every libFuzzer driver (fuzz/fuzz_*.c, built by `make fuzz`) on its
# committed seed corpus fuzz/corpus/<name>/ for a bounded time, and fails on
# the first crash, leak, sanitizer report or timeout. New inputs the fuzzer
# finds go to a scratch copy of the corpus, so the checkout stays clean; a
# crashing input is kept under build/fuzz/crashes/<name>/ and its path printed.
#
#   scripts/fuzz.sh [SECONDS] [NAME...]   SECONDS per driver (default 60)
set -u
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
mkdir -p build/fuzz
if ! make --no-print-directory -j2 fuzz >build/fuzz/build.log 2>&1; then
	tail -n 30 build/fuzz/build.log
	echo "not ok - fuzz: the drivers did not build (build/fuzz/build.log)"
	exit 1
fi
names=$*
if [ -z "$names" ]; then
	for f in fuzz/fuzz_*.c; do
		n=$(basename "$f" .c)
		names="$names ${n#fuzz_}"
	done
fi
failed=0
for n in $names; do
	bin=build/fuzz/fuzz_$n
	if [ ! -x "$bin" ]; then
		echo "not ok - fuzz_$n: $bin was not built"
		failed=$((failed + 1))
		continue
	fi
	work=build/fuzz/work/$n
	crashes=build/fuzz/crashes/$n
	rm -rf "$work"
	mkdir -p "$work" "$crashes"
	if [ -d "fuzz/corpus/$n" ]; then
		cp fuzz/corpus/"$n"/* "$work"/ 2>/dev/null || true
	else
		echo "# fuzz_$n: no seed corpus under fuzz/corpus/$n (starting from nothing)"
	fi
	echo "== fuzz_$n for ${secs}s"
	if "$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=4096 -print_final_stats=1 \
		-artifact_prefix="$crashes/" "$work" >"build/fuzz/$n.log" 2>&1; then
		echo "ok - fuzz_$n ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "build/fuzz/$n.log" |
			grep -o '[0-9]*$') runs)"
	else
		echo "not ok - fuzz_$n"
		tail -n 40 "build/fuzz/$n.log"
		ls "$crashes"/* 2>/dev/null | sed 's/^/# input: /'
		failed=$((failed + 1))
	fi
done
[ "$failed" -eq 0 ]
