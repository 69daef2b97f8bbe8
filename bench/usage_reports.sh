#!/usr/bin/env bash
# Measures usage reports on the Redis store with a year of usage, and what a
# user looping their year's report costs the proxy: in one Caddy process on
# a redis-server of its own, with wrk as the client in other processes.
#
#   bench/usage_reports.sh [caddy] [seeding caddy]
#
# caddy is the binary measured (default ./caddy); the users are created
# through the seeding caddy's admin API (default: the same binary), so that
# they are in whatever layout that build writes. The usage is then written
# in layout 1, one hash per day with fields "<user>|<model>|<counter>" as
# releases before layout 2 stored it, and the measured caddy starts on it:
# a build with layout 2 migrates it at start, and its log tells how long
# that took. Both builds can so be measured on the same data set.
#
# Settings (environment): USERS (200), DAYS (365, up to today), TRIES of
# each report (5), ROUNDS of the throughput comparison (3), SECS per round
# (10), CONNS of the proxy load (32), LOOP_CONNS of the report loop (2),
# REDIS_TIMEOUT, the store's timeout (default: the build's, 500ms).
#
# Prints the migration, the Redis memory of the usage, the time of each
# report (median, min-max, and the rows it returned), the proxy's
# requests/s without and with the report loop, alternating rounds so the
# machine's noise hits both alike, with the CPU caddy and redis used (in %
# of one core), what one report costs from the loop alone, and caddy's
# peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
caddy=$(realpath "${1:-./caddy}")
seeder=$(realpath "${2:-$caddy}")
users=${USERS:-200}
days=${DAYS:-365}
tries=${TRIES:-5}
rounds=${ROUNDS:-3}
secs=${SECS:-10}
conns=${CONNS:-32}
loop_conns=${LOOP_CONNS:-2}
store_opts=""
[ -z "${REDIS_TIMEOUT:-}" ] || store_opts=$(printf ' {\n\t\t\ttimeout %s\n\t\t}' "$REDIS_TIMEOUT")
models=(gpt-4o-mini gpt-4o o3-mini)
counters=(requests prompt_tokens completion_tokens total_tokens cached_tokens reasoning_tokens estimated_requests)

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
if [ ${#need[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -x "$caddy" ] || { echo "no caddy binary at $caddy: run ./xcaddy.sh build" >&2; exit 2; }

work=$(mktemp -d)
redis_pid="" caddy_pid="" loop_pid=""
stop() { # pid...: ends the processes this script started
	for p in "$@"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null || true
	done
	for p in "$@"; do
		[ -n "$p" ] && wait "$p" 2>/dev/null || true
	done
}
trap 'stop "$loop_pid" "$caddy_pid" "$redis_pid"; rm -rf "$work"' EXIT

free_port() { # a port nothing listens on
	local p
	while :; do
		p=$((20000 + RANDOM % 20000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}
redis_port=$(free_port)
mock_port=$(free_port)
proxy_port=$(free_port)
token=bench-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
rcli() { redis-cli -p "$redis_port" "$@"; }

mkdir "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
	--dir "$work/redis" >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 50); do
	rcli ping >/dev/null 2>&1 && break
	sleep 0.1
done

reply='{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}'
cat >"$work/Caddyfile" <<CADDY
{
	admin off
	auto_https off
	storage file_system $work/data
}
http://:$mock_port {
	header Content-Type application/json
	respond \`$reply\` 200
}
http://:$proxy_port {
	aiproxy {
		admin_token $token
		upstream http://127.0.0.1:$mock_port sk-upstream
		store redis 127.0.0.1:$redis_port$store_opts
	}
}
CADDY
base=http://127.0.0.1:$proxy_port
start_caddy() { # binary log: starts it and waits until it answers
	"$1" run --config "$work/Caddyfile" --adapter caddyfile >"$2" 2>&1 &
	caddy_pid=$!
	for _ in $(seq 1 1200); do
		curl -s -o /dev/null "$base/" && return
		kill -0 "$caddy_pid" 2>/dev/null || { cat "$2" >&2; exit 1; }
		sleep 0.1
	done
	echo "caddy did not start" >&2
	exit 1
}
stop_caddy() {
	stop "$caddy_pid"
	caddy_pid=""
}
used_memory() { rcli info memory | awk -F: '/^used_memory:/ {print $2+0}'; }
memory_usage() { # pattern -> keys and the sum of their MEMORY USAGE
	rcli --scan --pattern "$1" | awk '{print "MEMORY USAGE " $0 " SAMPLES 0"}' | rcli |
		awk '{n++; s+=$1} END {printf "%d keys %.1f MiB", n, s/1048576}'
}
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; } # CPU time used by a process
hz=$(getconf CLK_TCK)
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b/1048576}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
spread() { printf '%s\n' "$@" | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {print lo "-" hi}'; }

# Users, through the seeding build's admin API.
start_caddy "$seeder" "$work/seed.log"
create_user() { # name -> key
	curl -fs -H "Authorization: Bearer $token" "$base/admin/users" -d "{\"name\":\"$1\"}" |
		grep -o '"key":"[^"]*"' | cut -d'"' -f4
}
for i in $(seq 0 $((users - 1))); do
	k=$(create_user "$(printf 'user%03d' "$i")")
	[ "$i" -eq 0 ] && user_key=$k
done
bench_key=$(create_user bench)
[ -n "$user_key" ] && [ -n "$bench_key" ] || { echo "creating users failed" >&2; exit 1; }
stop_caddy

# A year of usage in layout 1: one HSET per day of every user, model and
# counter, all counters non-zero, piped to Redis as RESP.
today=$(date -u +%F)
from=$(date -u -d "$today - $days days" +%F)
first=$(date -u -d "$today - $((days - 1)) days" +%F)
mem0=$(used_memory)
seed_start=$(date +%s.%N)
for i in $(seq $((days - 1)) -1 0); do date -u -d "$today - $i days" +%F; done |
	awk -v users="$users" -v models="${models[*]}" -v counters="${counters[*]}" '
	function bulk(s) { printf "$%d\r\n%s\r\n", length(s), s }
	BEGIN { srand(1); nm = split(models, m, " "); nc = split(counters, c, " ") }
	{
		printf "*%d\r\n", 2 + 2 * users * nm * nc
		bulk("HSET"); bulk("{aiproxy}:usage:" $1)
		for (u = 0; u < users; u++) {
			name = sprintf("user%03d", u)
			for (j = 1; j <= nm; j++) {
				r = 1 + int(rand() * 40); p = r * (200 + int(rand() * 1800))
				o = r * (20 + int(rand() * 480))
				v["requests"] = r; v["prompt_tokens"] = p; v["completion_tokens"] = o
				v["total_tokens"] = p + o; v["cached_tokens"] = 1 + int(p * rand() / 2)
				v["reasoning_tokens"] = 1 + int(o * rand() / 2); v["estimated_requests"] = 1 + int(rand() * 2)
				for (k = 1; k <= nc; k++) { bulk(name "|" m[j] "|" c[k]); bulk(v[c[k]]) }
			}
		}
	}' | rcli --pipe >"$work/pipe.log"
seed_secs=$(awk -v a="$seed_start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b-a}')
mem1=$(used_memory)
fields=$(for i in $(seq $((days - 1)) -1 0); do echo "HLEN {aiproxy}:usage:$(date -u -d "$today - $i days" +%F)"; done |
	rcli | awk '{s+=$1} END {print s}')
echo "seeded $users users x ${#models[@]} models x $days days ($first..$today): $fields fields in ${seed_secs}s"
echo "redis, layout 1: used_memory $(mib "$mem1"), of which the usage $(mib $((mem1 - mem0))); usage days $(memory_usage '{aiproxy}:usage:*')"

# The measured build starts on it, migrating if it is a layout 2 build.
t0=$(date +%s.%N)
start_caddy "$caddy" "$work/caddy.log"
ready=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b-a}')
mem2=$(used_memory)
layout=$(rcli get '{aiproxy}:layout')
legacy=$(rcli --scan --pattern '{aiproxy}:usage*' | grep -vc ':usage:batch:' || true)
migrated=$(grep -o '"msg":"migrated the Redis data[^}]*' "$work/caddy.log" | grep -o '"took":[^,}]*' | cut -d: -f2 || true)
markers=$(rcli --scan --pattern 'aiproxy:{u:*}:migrated:*' | wc -l)
echo "start: ready in ${ready}s, layout ${layout:-1}, migration took ${migrated:--}, legacy usage keys left $legacy, migration markers $markers"
echo "redis after start: used_memory $(mib "$mem2"), of which the usage $(mib $((mem2 - mem0)))"
if [ "$layout" = 2 ]; then
	echo "  usage months $(memory_usage 'aiproxy:{u:*}:usage:*'), migration markers $(memory_usage 'aiproxy:{u:*}:migrated:*') (expiring in 7 days)"
fi
problems() { # the log's warnings and errors, but for the ones of this setup
	grep '"level":"\(warn\|error\)"' "$work/caddy.log" |
		grep -v '"msg":"admin endpoint disabled"\|skipped because it requires TLS' || true
}
if [ -n "$(problems)" ]; then
	echo "caddy warnings/errors at start:"
	problems | cut -c1-300
fi

# Report times.
report() { # label auth url expected_rows
	local times=() codes=() rows=""
	for _ in $(seq 1 "$tries"); do
		read -r code t < <(curl -s -o "$work/report.out" -w '%{http_code} %{time_total}\n' -H "Authorization: Bearer $2" "$3")
		times+=("$t")
		codes+=("$code")
		[ "$code" = 200 ] && rows=$(grep -o '"date":' "$work/report.out" | wc -l)
	done
	printf '%-28s %8ss %14s  statuses %-20s rows %s (seeded %s)\n' "$1" "$(median "${times[@]}")" \
		"($(spread "${times[@]}"))" "$(printf '%s\n' "${codes[@]}" | sort | uniq -c | awk '{printf "%s%sx%s", (NR>1?",":""), $1, $2}')" \
		"${rows:--}" "$4"
}
q="from=$from&to=$today"
echo
echo "report (year, $tries tries)       median   (min-max)"
report "me/usage (user000)" "$user_key" "$base/me/usage?$q" $((days * ${#models[@]}))
report "admin/usage user=user000" "$token" "$base/admin/usage?$q&user=user000" $((days * ${#models[@]}))
report "admin/usage all users" "$token" "$base/admin/usage?$q" $((users * days * ${#models[@]}))

# Throughput with and without one user looping the year's report.
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $bench_key"
LUA
cat >"$work/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $user_key"
LUA
run() { # out: the proxy load for secs, and the CPU that caddy and redis used meanwhile
	local c0 r0 c1 r1
	c0=$(ticks "$caddy_pid") r0=$(ticks "$redis_pid")
	wrk -t2 -c"$conns" -d"${secs}s" -s "$work/post.lua" "$base/v1/chat/completions" >"$1"
	c1=$(ticks "$caddy_pid") r1=$(ticks "$redis_pid")
	awk -v c=$((c1 - c0)) -v r=$((r1 - r0)) -v hz="$hz" -v s="$secs" \
		'BEGIN {printf "cpu caddy %.0f%% redis %.0f%%\n", 100*c/hz/s, 100*r/hz/s}' >>"$1"
}
cpu() { grep '^cpu caddy' "$1"; }
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
non2xx() { awk '/Non-2xx/ {n=$NF} END {print n+0}' "$1"; }
errs() { awk '/Socket errors/ {gsub(",", ""); print $4+$6+$8+$10; f=1} END {if (!f) print 0}' "$1"; }
run "$work/warm.out"
plain=() loaded=() reps=()
for i in $(seq 1 "$rounds"); do
	run "$work/plain.out"
	wrk -t1 -c"$loop_conns" -d"$((secs + 4))s" --timeout 30s -s "$work/get.lua" "$base/me/usage?$q" >"$work/loop.out" &
	loop_pid=$!
	sleep 1
	run "$work/loaded.out"
	# An admin report while the loop keeps the report slots busy.
	read -r acode at < <(curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H "Authorization: Bearer $token" "$base/admin/usage?$q&user=user001")
	wait "$loop_pid" || true
	loop_pid=""
	sleep 2 # let Redis finish what the loop left it
	plain+=("$(rps "$work/plain.out")")
	loaded+=("$(rps "$work/loaded.out")")
	reps+=("$(rps "$work/loop.out")")
	echo "round $i: proxy ${plain[-1]} req/s (non-2xx $(non2xx "$work/plain.out"), socket errors $(errs "$work/plain.out"), $(cpu "$work/plain.out"));" \
		"with the loop ${loaded[-1]} req/s (non-2xx $(non2xx "$work/loaded.out"), socket errors $(errs "$work/loaded.out"), $(cpu "$work/loaded.out"));" \
		"loop ${reps[-1]} reports/s (non-2xx $(non2xx "$work/loop.out"), socket errors $(errs "$work/loop.out"));" \
		"admin report during it: $acode in ${at}s"
done
mp=$(median "${plain[@]}")
ml=$(median "${loaded[@]}")
echo "median: proxy $mp req/s ($(spread "${plain[@]}")), with the report loop $ml req/s ($(spread "${loaded[@]}")), drop $(awk -v a="$mp" -v b="$ml" 'BEGIN {printf "%.1f%%", 100*(a-b)/a}'), loop $(median "${reps[@]}") reports/s"
# What one report costs, from the loop alone.
c0=$(ticks "$caddy_pid") r0=$(ticks "$redis_pid")
wrk -t1 -c"$loop_conns" -d"${secs}s" --timeout 30s -s "$work/get.lua" "$base/me/usage?$q" >"$work/loop.out"
c1=$(ticks "$caddy_pid") r1=$(ticks "$redis_pid")
awk -v n="$(rps "$work/loop.out")" -v c=$((c1 - c0)) -v r=$((r1 - r0)) -v hz="$hz" -v s="$secs" -v e="$(non2xx "$work/loop.out")" \
	'BEGIN {printf "report loop alone: %s reports/s (non-2xx %d), caddy %.0f%% and redis %.0f%% of a core: %.1f ms and %.1f ms CPU per report\n",
		n, e, 100*c/hz/s, 100*r/hz/s, (n > 0 ? 1000*c/hz/s/n : 0), (n > 0 ? 1000*r/hz/s/n : 0)}'
echo "caddy peak RSS: $(awk '/^VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$caddy_pid/status")"
if [ -z "$migrated" ] && grep -q '"msg":"migrated the Redis data' "$work/caddy.log"; then
	echo "the migration finished after the start: $(grep -o '"msg":"migrated the Redis data[^}]*' "$work/caddy.log")"
fi
if [ -n "$(problems)" ]; then
	echo "caddy warnings/errors: $(problems | wc -l), first:"
	problems | head -3 | cut -c1-300
fi
