#!/usr/bin/env bash
# Compares aiproxy with a plain Caddy reverse_proxy to the same upstream, in
# one run, with the built ./caddy, a redis-server of its own and wrk:
#
#   bench/compare.sh [rounds] [seconds per round] [connections]
#
# Five configurations, each a Caddy process of its own (so each has its own
# CPU time and RSS), all in front of one more Caddy process that answers a
# short chat completion:
#   reverse_proxy         plain reverse_proxy, the upstream key set by a header op
#   aiproxy file          aiproxy, file store
#   aiproxy redis         aiproxy, Redis store (redis-server on port 18093)
#   aiproxy redis limits  the same, with a key that has rpm, tpm and a token
#                         budget far above what the run uses: every request
#                         is admitted and settled
#   aiproxy routed        aiproxy, file store, the request's model routing it
#                         to a configured host (host { models ... })
# Each round runs every configuration in turn, so the machine's noise hits
# them alike; the table has the medians over the rounds of requests/s, its
# ratio to reverse_proxy's, the proxy's CPU milliseconds per request (from
# /proc/<pid>/stat; Redis's own CPU besides, for the Redis rows), p50 and p99
# latency (wrk --latency) and the proxy's peak RSS (VmHWM). Last, p50 at one
# connection for reverse_proxy, aiproxy file and aiproxy redis.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
secs=${2:-5}
conns=${3:-32}

for tool in wrk redis-server; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		sudo=""
		[ "$(id -u)" -eq 0 ] || sudo="sudo"
		$sudo apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk redis-server >/dev/null
	fi
done
[ -x ./caddy ] || ./xcaddy.sh build

work=$(mktemp -d)
pids=()
cleanup() {
	kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
token=bench-$(od -An -N12 -tx1 /dev/urandom | tr -d " \n") # at least 16 characters
reply='{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}'

wait_for() { # command... : retried for up to 20 s
	for _ in $(seq 1 200); do
		"$@" >/dev/null 2>&1 && return
		sleep 0.1
	done
	echo "gave up waiting for: $*" >&2
	exit 1
}

redis-server --port 18093 --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
wait_for redis-cli -p 18093 ping

declare -A pid_of # configuration -> its Caddy process
caddy_site() {    # name port admin-port "site body": a Caddy process serving one site
	cat >"$work/$1.Caddyfile" <<CADDY
{
	admin localhost:$3
	auto_https off
	storage file_system $work/data-$1
}
http://:$2 {
$4
}
CADDY
	./caddy run --config "$work/$1.Caddyfile" --adapter caddyfile >"$work/$1.log" 2>&1 &
	pids+=($!)
	pid_of[$1]=$!
	wait_for curl -fs "http://localhost:$3/config/"
}
caddy_site upstream 18090 20190 "	header Content-Type application/json
	respond \`$reply\` 200"
caddy_site reverse_proxy 18092 20192 "	reverse_proxy 127.0.0.1:18090 {
		header_up Authorization \"Bearer sk-upstream\"
	}"
caddy_site file 18091 20191 "	aiproxy {
		admin_token $token
		upstream http://127.0.0.1:18090 sk-upstream
		store file $work/file.db
	}"
caddy_site redis 18094 20194 "	aiproxy {
		admin_token $token
		upstream http://127.0.0.1:18090 sk-upstream
		store redis 127.0.0.1:18093
	}"
caddy_site routed 18096 20196 "	aiproxy {
		admin_token $token
		upstream http://127.0.0.1:9 sk-unused # never dialed: the model routes every request
		host routed.test {
			base_url http://127.0.0.1:18090
			key sk-upstream
			models gpt-4o-* llama-* qwen-*
		}
		store file $work/routed.db
	}"
pid_of[redis_limits]=${pid_of[redis]}
for port in 18090 18091 18092 18094 18096; do
	wait_for curl -s -o /dev/null "http://127.0.0.1:$port/"
done

register() { # port -> a new user's key
	curl -fs "http://127.0.0.1:$1/$token/register/bench"
}
declare -A url key
url[reverse_proxy]=http://127.0.0.1:18092 key[reverse_proxy]=""
url[file]=http://127.0.0.1:18091 key[file]=$(register 18091)
url[redis]=http://127.0.0.1:18094 key[redis]=$(register 18094)
url[redis_limits]=http://127.0.0.1:18094
key[redis_limits]=$(curl -fs -H "Authorization: Bearer $token" http://127.0.0.1:18094/admin/users \
	-d '{"name":"limited","limits":{"rpm":1000000000,"tpm":1000000000000},"budget":{"tokens":1000000000000000,"period":"month"}}' |
	sed 's/.*"key":"\([^"]*\)".*/\1/')
url[routed]=http://127.0.0.1:18096 key[routed]=$(register 18096)
configs=(reverse_proxy file redis redis_limits routed)
declare -A label=([reverse_proxy]="reverse_proxy" [file]="aiproxy file" [redis]="aiproxy redis"
	[redis_limits]="aiproxy redis limits" [routed]="aiproxy routed")

for c in "${configs[@]}"; do
	cat >"$work/$c.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}'
wrk.headers["Content-Type"] = "application/json"
LUA
	if [ -n "${key[$c]}" ]; then
		echo "wrk.headers[\"Authorization\"] = \"Bearer ${key[$c]}\"" >>"$work/$c.lua"
	fi
done

ticks() { # a process's CPU time so far, in clock ticks (user + system)
	awk '{print $14 + $15}' "/proc/$1/stat"
}
hz=$(getconf CLK_TCK)
to_ms() { # a wrk duration (12.5us, 1.2ms, 1.01s) in milliseconds
	awk -v d="$1" 'BEGIN {
		v = d + 0; u = d; sub(/^[0-9.]+/, "", u)
		printf "%.3f", u == "us" ? v / 1000 : u == "s" ? v * 1000 : u == "m" ? v * 60000 : v }'
}

# run config connections seconds -> "req/s CPU-ms/req redis-CPU-ms/req p50-ms p99-ms", or "fail"
run() {
	local c=$1 pid=${pid_of[$1]} before rbefore after rafter out
	before=$(ticks "$pid") rbefore=$(ticks "$redis_pid")
	out=$(wrk -t"$(($2 < 2 ? 1 : 2))" -c"$2" -d"$3s" --latency -s "$work/$c.lua" "${url[$c]}/v1/chat/completions")
	after=$(ticks "$pid") rafter=$(ticks "$redis_pid")
	if grep -q "Non-2xx" <<<"$out"; then
		echo "$c: some answers were not 2xx:" >&2
		echo "$out" >&2
		echo fail
		return
	fi
	awk -v t=$((after - before)) -v rt=$((rafter - rbefore)) -v hz="$hz" \
		-v p50="$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")" \
		-v p99="$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")" '
		/requests in/ {n = $1}
		/Requests\/sec/ {rps = $2}
		END {printf "%s %.4f %.4f %s %s\n", rps, t / hz * 1000 / n, rt / hz * 1000 / n, p50, p99}' <<<"$out"
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
hwm() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: $(go version | cut -d' ' -f3), caddy $(./caddy version | cut -d' ' -f1)," \
	"redis-server $(redis-server --version | sed 's/.* v=\([^ ]*\).*/\1/'), wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}')"
echo "runs: $rounds rounds of $secs s at $conns connections, configurations interleaved; medians"
echo

for c in "${configs[@]}"; do run "$c" "$conns" 1 >/dev/null; done # warm up
declare -A rps cpu rcpu p50 p99
for i in $(seq 1 "$rounds"); do
	line="round $i:"
	for c in "${configs[@]}"; do
		read -r r u ru a b <<<"$(run "$c" "$conns" "$secs")"
		[ "$r" != fail ] || exit 1
		rps[$c]+=" $r" cpu[$c]+=" $u" rcpu[$c]+=" $ru" p50[$c]+=" $a" p99[$c]+=" $b"
		line+=" ${label[$c]} $r,"
	done
	echo "${line%,} req/s"
done
echo
plain=$(median ${rps[reverse_proxy]})
printf '%-22s %9s %6s %11s %9s %7s %7s %8s\n' "" "req/s" ratio "CPU ms/req" "+redis" "p50 ms" "p99 ms" "RSS MiB"
for c in "${configs[@]}"; do
	r=$(median ${rps[$c]})
	redis_cpu=-
	case $c in redis*) redis_cpu=$(median ${rcpu[$c]}) ;; esac
	printf '%-22s %9.0f %6.3f %11.4f %9s %7.3f %7.3f %8s\n' "${label[$c]}" "$r" \
		"$(awk -v a="$r" -v p="$plain" 'BEGIN {print a / p}')" "$(median ${cpu[$c]})" "$redis_cpu" \
		"$(median ${p50[$c]})" "$(median ${p99[$c]})" "$(hwm "${pid_of[$c]}")"
done
echo "(CPU: the proxy's own process; +redis: redis-server's CPU per request; the upstream is a Caddy"
echo " process of its own. RSS: the proxy process's peak; aiproxy redis and redis limits share one.)"
echo

# p50 at one connection: what a request costs when nothing waits.
declare -A one
for i in 1 2 3; do
	for c in reverse_proxy file redis; do
		read -r _ _ _ a _ <<<"$(run "$c" 1 2)"
		one[$c]+=" $a"
	done
done
echo "p50 at 1 connection (median of 3 runs of 2 s): reverse_proxy $(median ${one[reverse_proxy]}) ms," \
	"aiproxy file $(median ${one[file]}) ms, aiproxy redis $(median ${one[redis]}) ms"
