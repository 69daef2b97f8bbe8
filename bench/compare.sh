#!/usr/bin/env bash
# Compares aiproxy with a plain Caddy reverse_proxy to the same upstream, in
# one Caddy process and one run, with wrk as the client in another process.
# Rounds alternate between the two so the machine's noise hits both alike.
#
#   bench/compare.sh [rounds] [seconds per round] [connections]
#
# Environment:
#   BENCH_STORE=file|redis  aiproxy's store (redis: a redis-server of its own,
#                           on port 18093); default file
#   BENCH_LIMITS=1          the benchmark key has rpm, tpm and a token budget,
#                           set far above what the run uses, so every request
#                           goes through the spend ledger
#
# Prints requests/s and Caddy's CPU milliseconds per request of each round,
# and the ratios aiproxy / reverse_proxy of the medians.
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
store=${BENCH_STORE:-file}
if [ "$store" = redis ] && ! command -v redis-server >/dev/null 2>&1; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

work=$(mktemp -d)
redis_pid=""
trap 'kill "$caddy_pid" $redis_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
store_line="store file $work/aiproxy.db"
if [ "$store" = redis ]; then
	redis-server --port 18093 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
	redis_pid=$!
	store_line="store redis 127.0.0.1:18093"
	for _ in $(seq 1 50); do
		redis-cli -p 18093 ping >/dev/null 2>&1 && break
		sleep 0.1
	done
fi
token=bench-$(od -An -N12 -tx1 /dev/urandom | tr -d " \n") # at least 16 characters
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
		$store_line
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
if [ "${BENCH_LIMITS:-}" = 1 ]; then
	key=$(curl -fs -H "Authorization: Bearer $token" http://127.0.0.1:18091/admin/users \
		-d '{"name":"bench","limits":{"rpm":1000000000,"tpm":1000000000000},"budget":{"tokens":1000000000000000,"period":"month"}}' |
		sed 's/.*"key":"\([^"]*\)".*/\1/')
else
	key=$(curl -fs "http://127.0.0.1:18091/$token/register/bench")
fi

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA

ticks() { # caddy's CPU time so far, in clock ticks (user + system)
	awk '{print $14 + $15}' "/proc/$caddy_pid/stat"
}
hz=$(getconf CLK_TCK)

run() { # port -> "requests/s CPU-ms-per-request"
	local before after out
	before=$(ticks)
	out=$(wrk -t2 -c"$conns" -d"${secs}s" -s "$work/post.lua" "http://127.0.0.1:$1/v1/chat/completions")
	after=$(ticks)
	awk -v t=$((after - before)) -v hz="$hz" '
		/requests in/ {n = $1}
		/Requests\/sec/ {rps = $2}
		END {printf "%s %.4f\n", rps, t / hz * 1000 / n}' <<<"$out"
}
run 18091 >/dev/null # warm up
run 18092 >/dev/null
a=() p=() ac=() pc=()
for i in $(seq 1 "$rounds"); do
	read -r r c <<<"$(run 18091)"
	a+=("$r") ac+=("$c")
	read -r r c <<<"$(run 18092)"
	p+=("$r") pc+=("$c")
	echo "round $i: aiproxy ${a[-1]} req/s ${ac[-1]} ms CPU/req, reverse_proxy ${p[-1]} req/s ${pc[-1]} ms CPU/req"
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
ma=$(median "${a[@]}") mp=$(median "${p[@]}")
mac=$(median "${ac[@]}") mpc=$(median "${pc[@]}")
echo "median: aiproxy $ma req/s $mac ms CPU/req, reverse_proxy $mp req/s $mpc ms CPU/req," \
	"ratio $(awk -v a="$ma" -v p="$mp" 'BEGIN {printf "%.3f", a/p}')," \
	"CPU ratio $(awk -v a="$mac" -v p="$mpc" 'BEGIN {printf "%.2f", a/p}')"
echo "(CPU is the Caddy process's, which also serves the mock upstream for both)"
