#!/usr/bin/env bash
# Measures streaming chat completions at scale through aiproxy (file store),
# with the built ./caddy, a mock provider and a load program of our own
# (bench/streamload), which also drives the long run of short requests:
#
#   bench/streams.sh [--streams N] [--chunks N] [--interval D] [--cancel F]
#                    [--requests N | --full] [--every N] [--no-compare] [--profile]
#
#   --streams N    streams open at once (default 1000)
#   --chunks N     content chunks per stream (default 1000)
#   --interval D   time between a stream's chunks, a Go duration (default 50ms)
#   --cancel F     share of the streams the client leaves halfway (default 0)
#   --requests N   short JSON requests of the RSS run (default 100000; 0: none)
#   --full         the RSS run has 1,000,000 requests
#   --every N      RSS is sampled every N requests (default: a tenth of the run)
#   --no-compare   skip the same streams through plain reverse_proxy and
#                  straight to the provider (which show what the harness
#                  and Caddy's own proxying account for)
#   --profile      with every stream open, take Caddy's heap profile (after a
#                  forced collection, which lowers the peak RSS that follows),
#                  goroutine profile and a 5-second CPU profile, and print the
#                  heap then in use
#
# Each measurement gets a Caddy process of its own. For the streams it prints
# Caddy's RSS (VmRSS) idle, with every stream open and at its peak while they
# were, its goroutines (go_goroutines from the admin's /metrics) idle, open
# and after the streams ended and idle connections were closed, each
# chunk's time from the provider's write to the client's read (the provider
# stamps its clock in the chunk; one machine, one clock), and Caddy's CPU
# time per chunk. Then the RSS series of the request run, and pass or fail
# against each goal:
#   - the open streams add at most 64 MiB to Caddy's RSS;
#   - p99 of a chunk's provider-to-client time is at most 1 ms;
#   - no goroutine is left once the streams have ended;
#   - RSS is flat over the request run: the second half's largest sample is
#     at most 4 MiB above the first half's.
# With --profile, the profiles are kept in the directory printed at the end
# (go tool pprof -sample_index=inuse_space -top DIR/aiproxy/heap.pb.gz;
# go tool pprof -top DIR/aiproxy/cpu.pb.gz).
set -euo pipefail
cd "$(dirname "$0")/.."

streams=1000 chunks=1000 interval=50ms cancel=0 requests=100000 every="" compare=1 profile=0
while [ $# -gt 0 ]; do
	case $1 in
	--streams) streams=$2 && shift ;;
	--chunks) chunks=$2 && shift ;;
	--interval) interval=$2 && shift ;;
	--cancel) cancel=$2 && shift ;;
	--requests) requests=$2 && shift ;;
	--full) requests=1000000 ;;
	--every) every=$2 && shift ;;
	--no-compare) compare=0 ;;
	--profile) profile=1 ;;
	*)
		sed -n '2,/^set /p' "$0" | sed '$d' >&2
		exit 2
		;;
	esac
	shift
done
[ -n "$every" ] || every=$((requests / 10))
[ "$every" -gt 0 ] || every=$requests

[ -x ./caddy ] || ./xcaddy.sh build

work=$(mktemp -d)
profiles=""
if [ "$profile" = 1 ]; then
	profiles=$(mktemp -d)
	mkdir "$profiles/aiproxy" "$profiles/reverse_proxy"
fi
provider_pid="" caddy_pid=""
cleanup() {
	[ -z "$caddy_pid" ] || kill "$caddy_pid" 2>/dev/null || true
	[ -z "$provider_pid" ] || kill "$provider_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/streamload" ./bench/streamload

provider=http://127.0.0.1:18290
admin=http://localhost:20290
wait_for() { # url what: waits up to 20 s for url to answer
	for _ in $(seq 1 200); do
		curl -fs -o /dev/null "$1" && return
		sleep 0.1
	done
	echo "$2 did not start" >&2
	exit 1
}

"$work/streamload" provider -addr 127.0.0.1:18290 >"$work/provider.log" 2>&1 &
provider_pid=$!
wait_for "$provider/" "the mock provider"

token=bench-$(od -An -N12 -tx1 /dev/urandom | tr -d " \n")
cat >"$work/Caddyfile" <<CADDY
{
	admin localhost:20290
	auto_https off
	storage file_system $work/data
}
http://:18291 {
	aiproxy {
		admin_token $token
		upstream $provider sk-upstream
		store file $work/aiproxy.db
	}
}
http://:18292 {
	reverse_proxy 127.0.0.1:18290 {
		header_up Authorization "Bearer sk-upstream"
	}
}
CADDY

start_caddy() { # a fresh Caddy process, so no measurement inherits another's heap
	stop_caddy
	./caddy run --config "$work/Caddyfile" --adapter caddyfile >>"$work/caddy.log" 2>&1 &
	caddy_pid=$!
	wait_for "$admin/config/" "Caddy"
	wait_for "http://127.0.0.1:18292/" "Caddy's sites"
}
stop_caddy() {
	if [ -n "$caddy_pid" ]; then
		kill "$caddy_pid" 2>/dev/null || true
		wait "$caddy_pid" 2>/dev/null || true
		caddy_pid=""
	fi
}

start_caddy
key=$(curl -fs "http://127.0.0.1:18291/$token/register/bench")

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "versions: $(go version | cut -d' ' -f3), caddy $(./caddy version | cut -d' ' -f1)"
echo "streams: $streams at once, $chunks chunks each, $interval apart, $cancel of them cancelled halfway"
echo

load() { # label url key [pid admin]: runs the streams, output kept in $work/label.out
	local label=$1 url=$2 key=$3 pid=${4:-0} adm=${5:-}
	echo "== $label"
	"$work/streamload" load -url "$url" -key "$key" -streams "$streams" -chunks "$chunks" \
		-interval "$interval" -cancel "$cancel" -pid "$pid" -admin "$adm" -provider "$provider" \
		${6:+-profiles "$6"} | tee "$work/$label.out"
	echo
}
load aiproxy http://127.0.0.1:18291/v1/chat/completions "$key" "$caddy_pid" "$admin" "${profiles:+$profiles/aiproxy}"
if [ "$compare" = 1 ]; then
	start_caddy
	load reverse_proxy http://127.0.0.1:18292/v1/chat/completions "" "$caddy_pid" "$admin" "${profiles:+$profiles/reverse_proxy}"
	load provider "$provider/v1/chat/completions" ""
fi

rss_series=""
if [ "$requests" -gt 0 ]; then
	start_caddy
	echo "== RSS over $requests short JSON requests through aiproxy (32 connections)"
	"$work/streamload" requests -url http://127.0.0.1:18291/v1/chat/completions -key "$key" \
		-n "$requests" -every "$every" -c 32 -pid "$caddy_pid" -admin "$admin" | tee "$work/rss.out"
	rss_series=$(awk 'NR > 2 {print $1, $2}' "$work/rss.out") # from the first sample under load
	echo
fi
stop_caddy

# The goals.
field() { # label key n: the nth word after key on key's line
	awk -v k="$2" -v n="$3" '$1 == k {print $(n + 1)}' "$work/$1.out"
}
verdict() { # condition text
	if awk "BEGIN {exit !($1)}"; then echo "PASS  $2"; else echo "FAIL  $2"; fi
}
idle_rss=$(field aiproxy idle 2) open_rss=$(field aiproxy open 2) peak_rss=$(field aiproxy rss_peak_kib 1)
added=$(((peak_rss - idle_rss) / 1024))
p99=$(awk '$1 == "latency_ms" {print $7}' "$work/aiproxy.out")
g_idle=$(field aiproxy idle 4) g_open=$(field aiproxy open 4) g_after=$(field aiproxy after 4)
echo "== goals (aiproxy, file store)"
verdict "$added <= 64" "$streams open streams add $added MiB RSS (idle $((idle_rss / 1024)), open $((open_rss / 1024)), peak $((peak_rss / 1024)) MiB); goal <= 64 MiB"
verdict "${p99:-1e9} <= 1" "chunk provider-to-client p99 ${p99:-?} ms over $chunks-chunk streams; goal <= 1 ms"
verdict "$g_after <= $g_idle" "goroutines after the streams $g_after (idle $g_idle, open $g_open); goal: none left"
if [ -n "$rss_series" ]; then
	flat=$(awk '{v[NR] = $2} END {h = int(NR / 2); for (i = 1; i <= NR; i++) if (i <= h) a = (v[i] > a ? v[i] : a); else b = (v[i] > b ? v[i] : b); print int((b - a) / 1024), NR}' <<<"$rss_series")
	read -r grew samples <<<"$flat"
	verdict "$samples >= 2 && $grew <= 4" "RSS over $requests requests: second half's peak $grew MiB above the first half's ($samples samples); goal flat (<= 4 MiB)"
fi
if [ "$compare" = 1 ]; then
	rp_added=$((($(field reverse_proxy rss_peak_kib 1) - $(field reverse_proxy idle 2)) / 1024))
	echo "for reference: plain reverse_proxy's streams add $rp_added MiB, p99 $(awk '$1 == "latency_ms" {print $7}' "$work/reverse_proxy.out") ms;" \
		"straight to the provider p99 $(awk '$1 == "latency_ms" {print $7}' "$work/provider.out") ms;" \
		"Caddy's CPU per chunk $(field aiproxy cpu_us_per_chunk 1) µs through aiproxy, $(field reverse_proxy cpu_us_per_chunk 1) µs through reverse_proxy"
fi
[ -z "$profiles" ] || echo "profiles with every stream open: $profiles"
