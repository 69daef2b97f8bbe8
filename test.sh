#!/usr/bin/env bash
# The project's one test command: installs what the tests need (redis-server,
# chromium, staticcheck), then checks formatting, vets, lints and runs every test with
# the race detector. Each phase is printed with the seconds since the start.
#
# Vet, staticcheck and the tests all build with -race, so the packages (Caddy
# and its ~950 dependencies) are compiled once, not once plain and once with
# the race detector; staticcheck compiles in the background meanwhile.
set -euo pipefail
cd "$(dirname "$0")"

STATICCHECK_VERSION=0.8.2

start=$SECONDS
phase() { printf '==> [%3ds] %s\n' $((SECONDS - start)) "$*"; }
trap 'phase "failed"' ERR

# quiet NAME CMD...: runs CMD, a long one that prints nothing while it works,
# saying every minute that NAME still runs.
quiet() {
	local name=$1 rc=0
	shift
	(while sleep 60; do phase "$name: still running"; done) &
	local beat=$!
	"$@" || rc=$?
	kill "$beat"
	wait "$beat" 2>/dev/null || true
	return "$rc"
}

# redis-server for the store tests, chromium for the web pages' tests.
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
if [ -n "$missing" ]; then
	phase "installing$missing (apt-get)"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	# shellcheck disable=SC2086 # one word per package
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

# go install puts staticcheck in GOBIN, else in the first GOPATH entry's bin.
gobin=$(go env GOBIN)
if [ -z "$gobin" ]; then
	gopath=$(go env GOPATH)
	gobin=${gopath%%:*}/bin
fi
staticcheck=$gobin/staticcheck
staticcheck_pid=""
staticcheck_log=$(mktemp)
if ! "$staticcheck" -version 2>/dev/null | grep -qF "($STATICCHECK_VERSION)"; then
	phase "building staticcheck $STATICCHECK_VERSION in the background"
	go install "honnef.co/go/tools/cmd/staticcheck@v$STATICCHECK_VERSION" >"$staticcheck_log" 2>&1 &
	staticcheck_pid=$!
fi

phase "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	false
fi

phase "go vet (downloads modules and compiles with -race: minutes on a fresh machine)"
quiet "go vet" go vet -race ./...

if [ -n "$staticcheck_pid" ]; then
	if ! wait "$staticcheck_pid"; then
		cat "$staticcheck_log" >&2
		false
	fi
fi
rm -f "$staticcheck_log"
phase "staticcheck"
# GOFLAGS=-race: staticcheck loads the packages go vet compiled.
GOFLAGS="${GOFLAGS:+$GOFLAGS }-race" quiet staticcheck "$staticcheck" ./...

# The CLI tests run a caddy binary built with the module, without the race
# detector: a second compile of Caddy, minutes on a fresh machine. Built
# here, it is in the build cache when the tests ask, and its time shows.
phase "go build: caddy with the module, for the CLI tests"
quiet "go build" go build -o /dev/null ./cli/internal/testcaddy

phase "go test -race"
# -vet=off: go vet above ran every check go test would.
go test -race -vet=off -count=1 "$@" ./...
phase "all passed"
