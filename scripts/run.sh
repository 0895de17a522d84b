#!/bin/sh
# make run: a private PostgreSQL under var/ unless DATABASE_URL is set,
# migrations, then `notebookd serve` in the foreground.
set -eu
cd "$(dirname "$0")/.."
mkdir -p var
if [ -z "${DATABASE_URL:-}" ]; then
	DATABASE_URL=$(sh scripts/pg.sh start var/pg)
	export DATABASE_URL
	echo "run: private PostgreSQL under var/pg ($DATABASE_URL); 'make stop' stops it" >&2
fi
export NOTEBOOKD_VAR_DIR="${NOTEBOOKD_VAR_DIR:-var}"
./build/notebookd migrate
listen=${NOTEBOOKD_LISTEN:-127.0.0.1:8080}
echo "run: serving on http://$listen (Ctrl-C stops)" >&2
exec ./build/notebookd serve
