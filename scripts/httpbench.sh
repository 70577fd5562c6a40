#!/usr/bin/env bash
# httpbench.sh — the JSON API's throughput with wrk: livedash (built from
# this tree) serving a store that holds 1 h of 1 s frames of four topics
# (cpu with 10 series, mem, net and disk with 5 each), collectors off so
# the data stays put, on loopback.
#
#   bash scripts/httpbench.sh            # make bench
#   DURATION=30s CONNS=50 bash scripts/httpbench.sh
#
# Prints one line per endpoint:
#   httpbench: GET /api/v1/latest, 50 keep-alive connections, 10s: N req/s (…)
#   httpbench: GET /api/v1/query 300 points over 1 h (1 series), …: N req/s (…)
#   httpbench: GET /api/v1/query 300 points over 1 h (10 series), …: N req/s (…)
# wrk and the server share the machine's cores (wrk -t2): on 2 cores the
# figure is what one box serves itself, not the server's ceiling.
set -euo pipefail

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}

root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "httpbench: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk not found (make bench installs Debian's wrk)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/httpbench.XXXXXX")
pid=
cleanup() {
	if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$root" && go build -o "$tmp/livedash" ./cmd/livedash)
# The store is written by the test that also checks it (cmd/livedash
# TestBenchStore): only cmd/livedash may open a store implementation.
(cd "$root" && go test -count=1 -run '^TestBenchStore$' ./cmd/livedash -args -benchstore="$tmp/bench.db" >/dev/null) ||
	die "writing the bench store failed"

cat >"$tmp/config.yaml" <<'EOF'
collectors:
  cpu: {enabled: false}
  memory: {enabled: false}
  load: {enabled: false}
  disk: {enabled: false}
  filesystem: {enabled: false}
  network: {enabled: false}
  system: {enabled: false}
  self: {enabled: false}
EOF
port=
for _ in $(seq 50); do
	p=$(( 17000 + RANDOM % 3000 ))
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[[ -n $port ]] || die "no free port"
base=http://127.0.0.1:$port
"$tmp/livedash" serve --listen "127.0.0.1:$port" --store "$tmp/bench.db" --config "$tmp/config.yaml" >"$tmp/log" 2>&1 &
pid=$!
query="/api/v1/query?series=cpu_usage_ratio&after=-3600&points=300"
# Ready once the index holds the hour (it loads oldest first): the query
# then reads up to the head, frame 14,400, and has the ten series.
for i in $(seq 600); do
	body=$(curl -fs --max-time 1 "$base$query" 2>/dev/null || true)
	if grep -q '"last":"[0-9a-f]*-14400"' <<<"$body" && (( $(grep -o '"name":"cpu_usage_ratio"' <<<"$body" | wc -l) == 10 )); then
		break
	fi
	(( i < 600 )) || { cat "$tmp/log" >&2; die "livedash did not serve the bench store within 60 s"; }
	sleep 0.1
done

# bench NAME PATH: a warm-up run, then the measured one.
bench() {
	local out rps lat bytes
	wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "$base$2" >/dev/null
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$base$2")
	rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
	lat=$(awk '$1 == "99%" {print $2}' <<<"$out")
	bytes=$(curl -fs "$base$2" | wc -c)
	grep -q 'Non-2xx' <<<"$out" && die "$1: non-2xx answers: $out"
	[[ -n $rps ]] || die "$1: no figure in wrk's output: $out"
	printf 'httpbench: %s, %d keep-alive connections, %s: %s req/s (p99 %s, %d B per answer)\n' "$1" "$CONNS" "$DURATION" "$rps" "$lat" "$bytes"
}

bench "GET /api/v1/latest" "/api/v1/latest"
bench "GET /api/v1/query 300 points over 1 h (1 series)" '/api/v1/query?series=cpu_usage_ratio%7Bcpu%3D%223%22%7D&after=-3600&points=300'
bench "GET /api/v1/query 300 points over 1 h (10 series)" "$query"
