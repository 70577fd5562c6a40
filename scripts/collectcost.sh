#!/usr/bin/env bash
# collectcost.sh measures what the collectors cost with no client connected:
# CPU share (utime+stime from /proc/<pid>/stat over the run) and RSS of the
# real binary, for the default set at 1 s and for the synthetic collector at
# 1,000 series × 10 Hz (which must not fall behind: frames committed ≈ ticks,
# no dropped batches).
#
#   scripts/collectcost.sh [seconds]     (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/livedash" ./cmd/livedash
hz=$(getconf CLK_TCK)

measure() { # name, extra args...
	local name=$1; shift
	local port=$((7300 + RANDOM % 500))
	"$tmp/livedash" serve --listen 127.0.0.1:$port --store "$tmp/$name.db" "$@" 2>"$tmp/$name.log" &
	local pid=$!
	sleep 5 # start-up and first ticks
	local h0 t0 h1 t1
	h0=$(curl -s 127.0.0.1:$port/api/v1/status | sed 's/.*"head":"[0-9a-f]*-\([0-9]*\)".*/\1/')
	t0=$(awk '{print $14+$15}' /proc/$pid/stat)
	sleep "$secs"
	t1=$(awk '{print $14+$15}' /proc/$pid/stat)
	h1=$(curl -s 127.0.0.1:$port/api/v1/status | sed 's/.*"head":"[0-9a-f]*-\([0-9]*\)".*/\1/')
	local rss dropped
	rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
	dropped=$(curl -s 127.0.0.1:$port/metrics | awk '/^livedash_collector_batches_dropped_total/{s+=$2} END{print s+0}')
	kill -TERM $pid; wait $pid || true
	awk -v n="$name" -v c=$((t1 - t0)) -v hz="$hz" -v s="$secs" -v f=$((h1 - h0)) -v r="$rss" -v d="$dropped" 'BEGIN{
		printf "%-28s cpu %6.2f%% of one core   frames/s %7.1f   rss %6.1f MiB   dropped batches %d\n", n, 100*c/hz/s, f/s, r/1024, d }'
}

measure "default set, 1 s"
cat >"$tmp/synth.yaml" <<'YAML'
collectors:
  synthetic:
    enabled: true
    interval: 100ms
    series: 1000
YAML
measure "synthetic 1000 x 10 Hz" --config "$tmp/synth.yaml"
