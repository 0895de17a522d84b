#!/bin/sh
# ops/backup.sh — a logical backup of notebookd's database, and its restore.
#
#   ops/backup.sh dump FILE      pg_dump of $DATABASE_URL in custom format (-Fc):
#                                one consistent snapshot, taken without
#                                stopping the servers (it blocks only DDL)
#   ops/backup.sh restore FILE   restores FILE into $DATABASE_URL, which must be
#                                an empty database, in ONE transaction (a failed
#                                restore leaves nothing), then runs
#                                `notebookd verify`; exits non-zero on any error
#
# NOTEBOOKD_BIN names the binary (default: notebookd on PATH, else
# build/release/notebookd). For point-in-time recovery (WAL archiving) see
# docs/operations.md, "Backups and restore".
set -eu
cmd=${1:-}
file=${2:-}
[ -n "$cmd" ] && [ -n "$file" ] || { echo "usage: ops/backup.sh dump|restore FILE" >&2; exit 2; }
: "${DATABASE_URL:?DATABASE_URL is not set}"
bin=${NOTEBOOKD_BIN:-$(command -v notebookd || echo build/release/notebookd)}
case "$cmd" in
dump)
	# --no-owner/--no-privileges: restorable by any role that owns the target database
	pg_dump --format=custom --no-owner --no-privileges --file="$file" "$DATABASE_URL"
	pg_restore --list "$file" >/dev/null # the archive reads back
	echo "backup: $(wc -c <"$file" | tr -d ' ') bytes in $file"
	;;
restore)
	n=$(psql -X -tA -v ON_ERROR_STOP=1 "$DATABASE_URL" -c \
		"SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")
	[ "$n" = 0 ] || { echo "restore: the target database is not empty ($n tables); create an empty one" >&2; exit 1; }
	pg_restore --no-owner --no-privileges --single-transaction --exit-on-error --dbname="$DATABASE_URL" "$file"
	psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "ANALYZE"
	"$bin" verify
	;;
*)
	echo "usage: ops/backup.sh dump|restore FILE" >&2
	exit 2
	;;
esac
