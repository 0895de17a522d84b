#!/bin/sh
# A private PostgreSQL cluster for development and tests.
#
#   scripts/pg.sh start [DIR] [PORT] [tcp|unix]   create on first use, start, create the database;
#                                                 prints the DATABASE_URL on stdout
#   scripts/pg.sh stop  [DIR]                     stop it (data survives)
#   scripts/pg.sh url   [DIR] [PORT] [tcp|unix]   print the DATABASE_URL
#
# DIR defaults to var/pg, PORT to $NOTEBOOKD_PG_PORT or 54320. By default the
# cluster listens on its own Unix socket only (DIR/run; listen_addresses is
# empty), so any number of checkouts and a system PostgreSQL live side by
# side whatever their ports. TCP on 127.0.0.1:PORT only when asked: mode tcp,
# or NOTEBOOKD_PG_PORT set. The mode is given to the server at every start,
# so it also applies to a cluster created by an older version of this
# script. Any failure is one line on stderr saying what to change. PostgreSQL
# refuses to run as root: as root the cluster belongs to the unprivileged
# `postgres` account (created by Debian's postgresql-common) and every
# PostgreSQL program runs through runuser. When DIR is not reachable by that
# account (a checkout under /root), the data lives under /var/tmp and DIR
# becomes a symbolic link to it.
set -eu

cmd=${1:-start}
dir=${2:-var/pg}
port=${3:-${NOTEBOOKD_PG_PORT:-54320}}
if [ -n "${NOTEBOOKD_PG_PORT:-}" ]; then
	mode=${4:-tcp}
else
	mode=${4:-unix}
fi
case "$mode" in tcp | unix) ;; *) echo "pg.sh: mode must be tcp or unix, got \"$mode\"" >&2; exit 2 ;; esac

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
	echo "pg.sh: PostgreSQL server binaries not found (run scripts/deps.sh)" >&2
	exit 1
fi

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

abs() { (cd "$1" && pwd -P); }

prepare_dir() {
	mkdir -p "$dir"
	if [ "$(id -u)" -eq 0 ]; then
		if ! runuser -u postgres -- test -x "$(abs "$dir")" 2>/dev/null; then
			real="/var/tmp/notebookd-pg-$(printf '%s' "$(abs "$dir")" | sha256sum | cut -c1-12)"
			mkdir -p "$real"
			rmdir "$dir" 2>/dev/null || true
			[ -L "$dir" ] || ln -s "$real" "$dir"
		fi
		chown postgres:postgres "$(abs "$dir")"
	fi
}

socket_dir() { echo "$(abs "$dir")/run"; }

# Is something listening on 127.0.0.1:$1? (bash-free: python3 is a dependency anyway)
port_taken() {
	python3 -c 'import socket,sys
s=socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}

url() {
	s=$(socket_dir)
	if [ "$mode" = tcp ]; then
		echo "postgresql://notebookd@127.0.0.1:$port/notebookd"
	else
		echo "postgresql:///notebookd?host=$s&port=$port&user=notebookd"
	fi
}

start() {
	prepare_dir
	d=$(abs "$dir")
	if [ ! -f "$d/data/PG_VERSION" ]; then
		as_pg mkdir -p "$d/run"
		as_pg "$PGBIN/initdb" -D "$d/data" -U notebookd --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
			>"$d/initdb.log" 2>&1 || { cat "$d/initdb.log" >&2; exit 1; }
		as_pg sh -c "cat >> '$d/data/postgresql.conf'" <<CONF
# notebookd private cluster (scripts/pg.sh passes port and listen_addresses at start)
unix_socket_directories = '$d/run'
max_connections = 300
shared_buffers = 256MB
logging_collector = off
CONF
		if [ "$mode" = unix ]; then
			# Throwaway test clusters trade durability for speed.
			as_pg sh -c "printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n' >> '$d/data/postgresql.conf'"
		fi
	fi
	as_pg mkdir -p "$d/run"
	sock="$d/run/.s.PGSQL.$port"
	if [ ${#sock} -gt 107 ]; then
		echo "pg.sh: the socket path $sock is ${#sock} bytes, over the 107 a Unix socket allows: use a shorter DIR (or checkout path), or set DATABASE_URL to another PostgreSQL" >&2
		exit 1
	fi
	if ! as_pg "$PGBIN/pg_ctl" -D "$d/data" status >/dev/null 2>&1; then
		listen=""
		if [ "$mode" = tcp ]; then
			listen="127.0.0.1"
			if port_taken "$port"; then
				echo "pg.sh: port $port on 127.0.0.1 is taken (another PostgreSQL or make run?): set NOTEBOOKD_PG_PORT to a free port, or unset it to use the Unix socket only" >&2
				exit 1
			fi
		fi
		if ! as_pg "$PGBIN/pg_ctl" -D "$d/data" -l "$d/postgres.log" -w -t 60 \
			-o "-p $port -c listen_addresses='$listen'" start >/dev/null 2>&1; then
			why=$(grep -E 'FATAL|ERROR|could not' "$d/postgres.log" 2>/dev/null | tail -n 1 | sed 's/^.*\(FATAL\|ERROR\|LOG\): *//')
			echo "pg.sh: PostgreSQL in $d did not start: ${why:-see $d/postgres.log}" >&2
			exit 1
		fi
	fi
	if ! as_pg "$PGBIN/psql" -h "$d/run" -p "$port" -U notebookd -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = 'notebookd'" | grep -q 1; then
		as_pg "$PGBIN/createdb" -h "$d/run" -p "$port" -U notebookd notebookd
	fi
	url
}

stop() {
	[ -d "$dir" ] || exit 0
	d=$(abs "$dir")
	if [ -f "$d/data/PG_VERSION" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$d/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
}

case "$cmd" in
start) start ;;
stop) stop ;;
url) url ;;
*) echo "usage: pg.sh start|stop|url [DIR] [PORT] [tcp|unix]" >&2; exit 2 ;;
esac
