#!/usr/bin/env bash
# Measures a gzipped chat completion through aiproxy, for a client that
# accepts gzip: the bytes each answer takes to the client and Caddy's CPU
# per request, with wrk as the client in another process.
#
#   bench/gzip.sh [rounds] [seconds per round] [connections]
#
# Environment:
#   CADDY=path      the Caddy binary to measure; default ./caddy (built when missing)
#   BENCH_ACCEPT=x  the client's Accept-Encoding; default gzip ("" for none)
#
# The mock provider is a second, plain Go process (not Caddy) that answers
# every request with the same chat completion of about 3 KB, gzipped when
# the request accepts gzip, with its Content-Length, as OpenAI's is. Prints,
# per round, requests/s, Caddy's CPU milliseconds per request and the bytes
# of body each answer brought the client; then the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
secs=${2:-5}
conns=${3:-32}
accept=${BENCH_ACCEPT-gzip}
caddy=${CADDY:-./caddy}

if ! command -v wrk >/dev/null 2>&1; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi
[ -x "$caddy" ] || ./xcaddy.sh build

work=$(mktemp -d)
caddy_pid="" upstream_pid=""
trap 'kill $caddy_pid $upstream_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

# The provider: its answer compressed once, sent as it is to every request
# that accepts gzip.
mkdir "$work/upstream"
cat >"$work/upstream/main.go" <<'GO'
package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
)

func main() {
	// About 500 words drawn from a small vocabulary: it compresses as
	// English prose does, to about a third.
	words := strings.Fields("the a of to and in is it that for on with as was by this be are from " +
		"gateway answer provider client usage token stream model request compressed bytes " +
		"network latency memory meter through while which their would could each other time")
	rng := rand.New(rand.NewSource(1))
	var text strings.Builder
	for range 500 {
		text.WriteString(words[rng.Intn(len(words))])
		text.WriteByte(' ')
	}
	plain := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"` + text.String() +
		`"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":500,"total_tokens":509}}`)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(plain)
	zw.Close()
	zipped := buf.Bytes()
	http.ListenAndServe("127.0.0.1:18094", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		body := plain
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			body = zipped
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
}
GO
(cd "$work/upstream" && go mod init upstream >/dev/null 2>&1 && go build -o upstream .)
"$work/upstream/upstream" &
upstream_pid=$!

token=bench-$(od -An -N12 -tx1 /dev/urandom | tr -d " \n")
cat >"$work/Caddyfile" <<CADDY
{
	admin localhost:20190
	auto_https off
	storage file_system $work/data
}
http://:18091 {
	aiproxy {
		admin_token $token
		upstream http://127.0.0.1:18094 sk-upstream
		store file $work/aiproxy.db
	}
}
CADDY
"$caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
for _ in $(seq 1 50); do
	key=$(curl -fs "http://127.0.0.1:18091/$token/register/bench" 2>/dev/null) && break
	sleep 0.2
done

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
if [ -n "$accept" ]; then
	echo "wrk.headers[\"Accept-Encoding\"] = \"$accept\"" >>"$work/post.lua"
fi

# What one answer brings the client: its headers and the body's bytes.
curl -s -o "$work/body" -D "$work/head" -H "Authorization: Bearer $key" \
	${accept:+-H "Accept-Encoding: $accept"} -H "Content-Type: application/json" \
	-d '{"model":"gpt-4o-mini","messages":[]}' http://127.0.0.1:18091/v1/chat/completions
body_bytes=$(wc -c <"$work/body")
echo "one answer: $body_bytes body bytes;" \
	"$(grep -i -E '^(content-encoding|content-length|transfer-encoding):' "$work/head" | tr -d '\r' | paste -sd ' ')"

ticks() { awk '{print $14 + $15}' "/proc/$caddy_pid/stat"; }
hz=$(getconf CLK_TCK)
run() { # -> "requests/s CPU-ms-per-request"
	local before after out
	before=$(ticks)
	out=$(wrk -t2 -c"$conns" -d"${secs}s" -s "$work/post.lua" http://127.0.0.1:18091/v1/chat/completions)
	after=$(ticks)
	awk -v t=$((after - before)) -v hz="$hz" '
		/requests in/ {n = $1}
		/Requests\/sec/ {rps = $2}
		END {printf "%s %.4f\n", rps, t / hz * 1000 / n}' <<<"$out"
}
run >/dev/null # warm up
r=() c=()
for i in $(seq 1 "$rounds"); do
	read -r a b <<<"$(run)"
	r+=("$a") c+=("$b")
	echo "round $i: $a req/s, $b ms CPU/req"
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
echo "median: $(median "${r[@]}") req/s, $(median "${c[@]}") ms CPU/req (Caddy's), $body_bytes body bytes/answer"
