#!/usr/bin/env bash
# Builds Caddy with aiproxy from this checkout, and runs it.
#
#   ./xcaddy.sh build   -> ./caddy
#   ./xcaddy.sh run     -> build, then serve example.Caddyfile
set -euo pipefail
cd "$(dirname "$0")"

CADDY_VERSION=v2.11.9
XCADDY_VERSION=v0.4.5
MODULE=github.com/aiproxy/aiproxy

ensure_xcaddy() {
	export PATH="$PATH:$(go env GOPATH)/bin"
	if ! command -v xcaddy >/dev/null 2>&1; then
		echo "installing xcaddy $XCADDY_VERSION" >&2
		go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION"
	fi
}

build() {
	ensure_xcaddy
	# The zero pseudo-version keeps Go from asking a module proxy for this
	# module, which works for private and unpublished checkouts alike.
	xcaddy build "$CADDY_VERSION" \
		--with "$MODULE@v0.0.0-00010101000000-000000000000=." \
		--output ./caddy
}

case "${1:-}" in
build)
	build
	;;
run)
	if [ -z "${AIPROXY_ADMIN_TOKEN:-}" ]; then
		echo "set AIPROXY_ADMIN_TOKEN (and OPENAI_API_KEY) first, e.g.:" >&2
		echo "  export AIPROXY_ADMIN_TOKEN=\$(openssl rand -hex 24)" >&2
		exit 2
	fi
	build
	exec ./caddy run --config example.Caddyfile --adapter caddyfile
	;;
*)
	echo "usage: $0 build|run" >&2
	exit 2
	;;
esac
