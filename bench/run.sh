#!/bin/sh
# make bench: every benchmark, each against its own throwaway PostgreSQL.
# Figures are printed as ratios measured in the same run (these machines are
# shared and noisy); see bench/README.md.
set -eu
cd "$(dirname "$0")/.."
for b in bench/bench_*.sh; do
	case "$b" in *"${BENCH:-}"*) ;; *) continue ;; esac
	echo "=== $b"
	sh "$b"
done
