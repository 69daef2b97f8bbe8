#!/usr/bin/env bash
# Compares aiproxy with a plain Caddy reverse_proxy to the same upstream, in
# one Caddy process and one run, with wrk as the client in another process.
# Rounds alternate between the two so the machine's noise hits both alike.
#
#   bench/compare.sh [rounds] [seconds per round] [connections]
#
# Prints requests/s of each round and the ratio aiproxy / reverse_proxy of
# the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
secs=${2:-5}
conns=${3:-32}

if ! command -v wrk >/dev/null 2>&1; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi
[ -x ./caddy ] || ./xcaddy.sh build

work=$(mktemp -d)
trap 'kill "$caddy_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
token=bench-$RANDOM$RANDOM
reply='{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}'

cat >"$work/Caddyfile" <<CADDY
{
	admin localhost:20190
	auto_https off
	storage file_system $work/data
}
http://:18090 {
	header Content-Type application/json
	respond \`$reply\` 200
}
http://:18091 {
	aiproxy {
		admin_token $token
		upstream http://127.0.0.1:18090 sk-upstream
		store file $work/aiproxy.db
	}
}
http://:18092 {
	reverse_proxy 127.0.0.1:18090 {
		header_up Authorization "Bearer sk-upstream"
	}
}
CADDY
./caddy run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
for _ in $(seq 1 50); do
	curl -fs -o /dev/null "http://127.0.0.1:18090/" && break
	sleep 0.2
done
key=$(curl -fs "http://127.0.0.1:18091/$token/register/bench")

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA

run() { # port -> requests/s
	wrk -t2 -c"$conns" -d"${secs}s" -s "$work/post.lua" "http://127.0.0.1:$1/v1/chat/completions" |
		awk '/Requests\/sec/ {print $2}'
}
run 18091 >/dev/null # warm up
run 18092 >/dev/null
a=() p=()
for i in $(seq 1 "$rounds"); do
	a+=("$(run 18091)")
	p+=("$(run 18092)")
	echo "round $i: aiproxy ${a[-1]} req/s, reverse_proxy ${p[-1]} req/s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
ma=$(median "${a[@]}")
mp=$(median "${p[@]}")
echo "median: aiproxy $ma req/s, reverse_proxy $mp req/s, ratio $(awk -v a="$ma" -v p="$mp" 'BEGIN {printf "%.3f", a/p}')"
