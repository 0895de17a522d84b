#!/bin/sh
# The layer rules of docs/architecture.md ("Layers"), checked over the
# #include lines of src/. Each layer is a folder under src/ and may include
# only the layers listed for it below (and itself); system headers (<...>)
# are free, except that core/ and http/ may not include libpq (they know
# nothing of the database). Prints one TAP line ("ok - layers" or
# "not ok - layers") and one "# file:line: ..." line per violation; exits 1
# on any violation. scripts/test.sh runs it as one counted test.
#
#   scripts/check_layers.sh [SRC_DIR]
set -u
src=${1:-src}

# layer: the layers it may include besides itself. Keep this table and the
# one in docs/architecture.md in step.
allowed() {
	case "$1" in
	core) echo "" ;;
	http) echo "core" ;;
	db) echo "core" ;;
	store) echo "db core" ;;
	jobs) echo "store db core" ;;
	auth) echo "jobs store db core" ;;
	rag) echo "jobs store db core" ;;
	api) echo "auth rag jobs store db http core" ;;
	main) echo "api auth rag jobs store db http core" ;;
	*) echo "?" ;;
	esac
}

violations=0
report() {
	echo "# $1"
	violations=$((violations + 1))
}

for f in $(find "$src" -name '*.[ch]' | sort); do
	rel=${f#"$src"/}
	case "$rel" in
	*/*) layer=${rel%%/*} ;;
	*) layer=main ;; # src/main.c
	esac
	ok=$(allowed "$layer")
	if [ "$ok" = "?" ]; then
		report "$f: folder src/$layer is not a layer of docs/architecture.md (add it to scripts/check_layers.sh)"
		continue
	fi
	# "N:layer" for every quoted include of the form "layer/file.h"
	for hit in $(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*/' "$f" |
		sed 's/^\([0-9]*\):[^"]*"\([^/"]*\)\/.*/\1:\2/'); do
		line=${hit%%:*}
		inc=${hit#*:}
		[ "$inc" = "$layer" ] && continue
		case " $ok " in
		*" $inc "*) ;;
		*) report "$f:$line: $layer/ includes $inc/ (allowed: ${ok:-nothing below it})" ;;
		esac
	done
	case "$layer" in
	core | http)
		for line in $(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*<libpq' "$f" | cut -d: -f1); do
			report "$f:$line: $layer/ includes libpq ($layer/ knows nothing of the database)"
		done
		;;
	esac
done

if [ "$violations" -eq 0 ]; then
	echo "ok - layers"
	exit 0
fi
echo "# $violations violations of the layer rules of docs/architecture.md"
echo "not ok - layers"
exit 1
