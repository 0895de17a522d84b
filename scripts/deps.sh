#!/bin/sh
# Install the Debian packages notebookd needs, only when something is missing.
# Quiet and fast when everything is there; runs `apt-get update` only when an
# install is needed. Works as root or as a user with sudo.
set -eu

PKGS="gcc make pkg-config libc6-dev
libpq-dev libuv1-dev libhttp-parser-dev libjansson-dev libsodium-dev
libcurl4-openssl-dev libpoppler-glib-dev libglib2.0-dev libxml2-dev libcmark-dev
postgresql-15 postgresql-client-15 python3 python3-jsonschema python3-yaml ca-certificates
libicu-dev clang chromium nodejs"

# the browser tests (tests/browser) need npm; a nodejs from NodeSource ships
# its own, Debian's comes as the separate package npm
if ! command -v npm >/dev/null 2>&1; then
	PKGS="$PKGS npm"
fi

if [ "${1:-}" = "--bench" ]; then
	PKGS="$PKGS wrk libmicrohttpd-dev"
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "deps: missing packages:$missing (run as root or install sudo)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
