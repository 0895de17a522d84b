#!/bin/sh
# make test / make asan: every test against a throwaway PostgreSQL cluster.
#
#   scripts/test.sh [release|asan] [FILTER]
#
# 0. the layer rules (scripts/check_layers.sh, one test),
# 1. unit tests (tests/unit, no database),
# 2. integration tests (tests/integration, C, against the cluster),
# 3. end-to-end tests (tests/e2e, Python, start the real notebookd and speak HTTP).
# The cluster lives in a temp folder and is removed at the end, even on
# failure. Every suite prints TAP-like lines: "ok - name", "not ok - name",
# and "ok - name # SKIP reason" for a test that could not run here. Prints a
# final line "N passed, N failed, N skipped"; exits non-zero on any failure,
# and on any skip when NB_NO_SKIP=1 or CI=true (nothing may be skipped in CI).
set -u
mode=${1:-release}
filter=${2:-}
cd "$(dirname "$0")/.."
root=$(pwd)
bin="$root/build/$mode"

tmp=$(mktemp -d /tmp/notebookd-test.XXXXXX)
chmod 755 "$tmp"
port=$((20000 + $$ % 20000))
cleanup() {
	sh "$root/scripts/pg.sh" stop "$tmp/pg" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

passed=0
failed=0
skipped=0
failed_names=""
skipped_names=""

count() { # $1 = output file, $2 = suite name
	p=$(grep '^ok - ' "$1" | grep -vc ' # SKIP' || true)
	s=$(grep -c '^ok - .* # SKIP' "$1" || true)
	f=$(grep -c '^not ok - ' "$1" || true)
	passed=$((passed + p))
	skipped=$((skipped + s))
	failed=$((failed + f))
	for n in $(grep '^ok - .* # SKIP' "$1" | sed 's/^ok - //; s/ # SKIP.*//' | tr ' ' '_'); do
		skipped_names="$skipped_names $2:$n"
	done
	for n in $(grep '^not ok - ' "$1" | sed 's/^not ok - //' | tr ' ' '_'); do
		failed_names="$failed_names $2:$n"
	done
}

run_suite() { # $@ = command; its name is its last path part
	name=$(basename "$1")
	[ $# -gt 1 ] && name=e2e
	out="$tmp/out.$name"
	echo "== $name"
	"$@" >"$out" 2>"$out.err"
	rc=$?
	cat "$out"
	count "$out" "$name"
	if [ $rc -ne 0 ] && ! grep -q '^not ok' "$out"; then
		# crashed or exited non-zero without reporting a failure: count it
		echo "not ok - $name exited with status $rc"
		tail -n 30 "$out.err"
		failed=$((failed + 1))
		failed_names="$failed_names $name:exit$rc"
	elif grep -q '^not ok' "$out"; then
		tail -n 40 "$out.err"
	fi
}

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

summary() {
	[ -n "$failed_names" ] && echo "failed:$failed_names"
	[ -n "$skipped_names" ] && echo "skipped:$skipped_names"
	echo "$passed passed, $failed failed, $skipped skipped"
}

case "layers" in *"$filter"*) run_suite "$root/scripts/check_layers.sh" ;; esac

for t in "$bin"/tests/unit/test_*; do
	[ -x "$t" ] || continue
	case "$t" in *"$filter"*) ;; *) continue ;; esac
	run_suite "$t"
done

echo "== starting a throwaway PostgreSQL in $tmp/pg"
if ! url=$(sh scripts/pg.sh start "$tmp/pg" "$port" unix); then
	echo "could not start PostgreSQL"
	failed=$((failed + 1))
	failed_names="$failed_names postgresql:start"
	summary
	exit 1
fi
export NB_TEST_DATABASE_URL="$url"
export NB_TEST_ADMIN_URL=$(echo "$url" | sed 's|:///notebookd?|:///postgres?|')
export NB_TEST_TMP="$tmp"
export NB_TEST_PG_SOCKET="$tmp/pg/run"
export NB_TEST_PG_PORT="$port"
export NOTEBOOKD_BIN="$bin/notebookd"
export NB_MODE="$mode"
PGBIN_PSQL=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql
DATABASE_URL="$url" "$bin/notebookd" migrate >/dev/null || { echo "migrate failed"; failed=$((failed + 1)); }
# Servers with settings of their own get a fresh database copied from this template.
"$PGBIN_PSQL" "$NB_TEST_ADMIN_URL" -qc "CREATE DATABASE notebookd_template TEMPLATE notebookd" >/dev/null ||
	{ echo "could not create the template database"; failed=$((failed + 1)); }

for t in "$bin"/tests/integration/test_*; do
	[ -x "$t" ] || continue
	case "$t" in *"$filter"*) ;; *) continue ;; esac
	run_suite "$t"
done

if [ -d tests/e2e ]; then
	run_suite /usr/bin/python3 tests/e2e/run.py $filter
fi

case "browser" in *"$filter"*) run_suite "$root/tests/browser/test_browser" ;; esac

summary
no_skip=${NB_NO_SKIP:-0}
[ "${CI:-}" = true ] && no_skip=1
if [ "$no_skip" = 1 ] && [ "$skipped" -ne 0 ]; then
	echo "NB_NO_SKIP=1 (or CI=true): $skipped tests were skipped; nothing may be skipped here"
	exit 1
fi
[ "$failed" -eq 0 ]
