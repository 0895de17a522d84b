#!/bin/sh
# make run: a private PostgreSQL under var/ unless DATABASE_URL is set,
# migrations, then `notebookd serve` in the foreground. The private cluster
# listens on its Unix socket under var/pg/run only (no TCP port to collide
# with another checkout or a system PostgreSQL); NOTEBOOKD_PG_PORT=N makes it
# listen on 127.0.0.1:N as well. It prints the DATABASE_URL to use with
# `notebookd verify`, `psql` and friends.
set -eu
cd "$(dirname "$0")/.."
mkdir -p var
listen=${NOTEBOOKD_LISTEN:-127.0.0.1:8080}
if python3 -c 'import socket, sys
host, _, port = sys.argv[1].rpartition(":")
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex((host if host not in ("", "0.0.0.0") else "127.0.0.1", int(port))) == 0 else 1)' "$listen" 2>/dev/null; then
	echo "run: $listen is taken (another make run or server?): set NOTEBOOKD_LISTEN to another host:port, e.g. NOTEBOOKD_LISTEN=127.0.0.1:8081 make run" >&2
	exit 1
fi
if [ -z "${DATABASE_URL:-}" ]; then
	DATABASE_URL=$(sh scripts/pg.sh start var/pg) || exit 1
	export DATABASE_URL
	echo "run: private PostgreSQL under var/pg; 'make stop' stops it. To use it from another shell:" >&2
	echo "run:   export DATABASE_URL='$DATABASE_URL'" >&2
	echo "run:   ./build/notebookd verify" >&2
fi
export NOTEBOOKD_VAR_DIR="${NOTEBOOKD_VAR_DIR:-var}"
./build/notebookd migrate
echo "run: serving on http://$listen (Ctrl-C stops)" >&2
exec ./build/notebookd serve
