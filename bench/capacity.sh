#!/usr/bin/env bash
# Measures what the Redis store costs and how it spreads, with a built
# ./caddy, redis-server and redis-cli of the machine, and wrk:
#
#   bench/capacity.sh [users] [seconds per run] [connections]
#
# 1. Redis commands per proxied request, by command, on a single node: for
#    a key without limits, for one with rpm, tpm and a budget, and for a
#    request whose model routes it to a configured host.
# 2. Keys per shard of a 3-master Redis Cluster holding [users] users
#    (default 10000), each with a day of usage.
# 3. Throughput, requests spread over 100 users: one node against the
#    3-master cluster, on this machine (every process on the same cores).
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-10000}
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
token=bench-$(od -An -N12 -tx1 /dev/urandom | tr -d " \n")
reply='{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}'

redis() { # port [args...]: a redis-server of our own, in the background
	local port=$1
	shift
	mkdir -p "$work/r$port"
	redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work/r$port" \
		--repl-diskless-sync-delay 0 "$@" >"$work/r$port.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 50); do
		redis-cli -p "$port" ping >/dev/null 2>&1 && return
		sleep 0.1
	done
	echo "redis-server on $port did not start" >&2
	exit 1
}

caddy_with() { # "store line" -> starts Caddy on :18091 with the mock upstream on :18090
	cat >"$work/Caddyfile" <<CADDY
{
	admin localhost:20191
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
		host routed.example {
			base_url http://127.0.0.1:18090
			key sk-routed
			models routed-*
		}
		$1
	}
}
CADDY
	./caddy run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
	caddy_pid=$!
	pids+=($caddy_pid)
	for _ in $(seq 1 100); do
		curl -fs -o /dev/null "http://127.0.0.1:18090/" && return
		sleep 0.1
	done
	echo "caddy did not start" >&2
	exit 1
}

stop_caddy() {
	kill "$caddy_pid" 2>/dev/null || true
	wait "$caddy_pid" 2>/dev/null || true
}

create() { # name [json fields] -> the new key
	curl -fs -H "Authorization: Bearer $token" http://127.0.0.1:18091/admin/users \
		-d "{\"name\":\"$1\"${2:+,$2}}" | sed 's/.*"key":"\([^"]*\)".*/\1/'
}

wrk_script() { # key... -> a wrk script sending chat completions of $model, the keys in turn
	{
		echo 'local keys = {'
		for k in "$@"; do echo "\"$k\","; done
		echo '}'
		cat <<'LUA'
local i = 0
wrk.method = "POST"
wrk.body = '{"model":"MODEL","messages":[{"role":"user","content":"hello there"}]}'
wrk.headers["Content-Type"] = "application/json"
request = function()
	i = i % #keys + 1
	wrk.headers["Authorization"] = "Bearer " .. keys[i]
	return wrk.format()
end
LUA
	} | sed "s/MODEL/${model:-gpt-4o-mini}/" >"$work/post.lua"
}

load() { # -> requests done, and requests/s
	wrk -t2 -c"$conns" -d"${secs}s" -s "$work/post.lua" http://127.0.0.1:18091/v1/chat/completions |
		awk '/requests in/ {n = $1} /Requests\/sec/ {rps = $2} END {print n, rps}'
}

calls() { # port -> "command calls" lines of INFO commandstats
	redis-cli -p "$1" info commandstats | tr -d '\r' |
		sed -n 's/^cmdstat_\([a-z|]*\):calls=\([0-9]*\),.*/\1 \2/p' | sort
}

per_request() { # before-file after-file requests -> commands per request, by command
	join -a2 -e0 -o 0,1.2,2.2 "$1" "$2" |
		awk -v n="$3" '{d = $3 - $2; if (d > 0) {printf "  %-12s %.3f\n", $1, d / n; t += d / n}} END {printf "  %-12s %.3f\n", "total", t}'
}

echo "== 1. Redis commands per request (single node)"
redis 18093
caddy_with "store redis 127.0.0.1:18093"
plain=$(create plain)
limited=$(create limited '"limits":{"rpm":1000000000,"tpm":1000000000000},"budget":{"tokens":1000000000000000}')
routed=$plain
for kind in plain limited routed; do
	model=gpt-4o-mini
	[ "$kind" = routed ] && model=routed-model
	wrk_script "${!kind}"
	load >/dev/null # warm: layout check, scripts loaded, owners registered
	calls 18093 >"$work/before"
	read -r n rps < <(load)
	sleep 1.5 # the usage flush of the run's last second
	calls 18093 >"$work/after"
	echo " key $kind: $n requests, $rps req/s"
	per_request "$work/before" "$work/after" "$n"
done
model=gpt-4o-mini
stop_caddy

echo "== 2. Keys per shard, $users users on a 3-master cluster"
for p in 18101 18102 18103; do
	redis "$p" --cluster-enabled yes --cluster-config-file "$work/nodes-$p.conf" --cluster-node-timeout 2000 \
		--cluster-require-full-coverage no
done
redis-cli --cluster create 127.0.0.1:18101 127.0.0.1:18102 127.0.0.1:18103 --cluster-replicas 0 --cluster-yes >/dev/null
for _ in $(seq 1 100); do
	ok=1
	for p in 18101 18102 18103; do
		redis-cli -p "$p" cluster info | grep -q cluster_state:ok || ok=0
	done
	[ "$ok" = 1 ] && break
	sleep 0.1
done
caddy_with "store redis 127.0.0.1:18101 127.0.0.1:18102 127.0.0.1:18103"
seq 1 "$users" | xargs -P 8 -I{} curl -fs -o /dev/null -H "Authorization: Bearer $token" \
	http://127.0.0.1:18091/admin/users -d '{"name":"user{}"}'
keys=()
for i in $(seq 1 100); do
	keys+=("$(curl -fs -X POST -H "Authorization: Bearer $token" "http://127.0.0.1:18091/admin/users/user$i/reset" |
		sed 's/.*"key":"\([^"]*\)".*/\1/')")
done
wrk_script "${keys[@]}"
load >/dev/null # warm, and a day of usage for those users
read -r n rps < <(load)
sleep 1.5
for p in 18101 18102 18103; do
	echo "  shard :$p  $(redis-cli -p "$p" dbsize) keys"
done

echo "== 3. Throughput, requests over 100 users"
echo "  3-master cluster: $rps req/s ($n requests)"
stop_caddy
redis 18094
caddy_with "store redis 127.0.0.1:18094"
keys=()
for i in $(seq 1 100); do
	keys+=("$(create "user$i")")
done
wrk_script "${keys[@]}"
load >/dev/null
read -r n rps < <(load)
echo "  single node:      $rps req/s ($n requests)"
