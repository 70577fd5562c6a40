#!/usr/bin/env bash
# loadbench.sh — the SSE load scenarios: livedash side by side with the
# baseline under the same load client (cmd/livedash-bench), alternating which
# server goes first. The baseline (livedash-bench serve-baseline) is a hub
# that only broadcasts bytes encoded once per tick: the machine's limit for
# fan-out, so the ratios livedash/baseline need nothing outside this
# repository. REFHUB_DIR=<directory of another hub's main package> runs that
# hub as the baseline instead, as a cross-check (it must take -addr, -mode
# tuned, -rate, -batch and -size, with -size the bytes of an event's data).
#
#   bash scripts/loadbench.sh                     # short version (make bench): a few minutes
#   CLIENTS=10000 SAT_CLIENTS=10000 STORM=5000 DURATION=15s RUNS=3 bash scripts/loadbench.sh   # full size
#
# Scenarios (SCENARIOS="A B S C R L" by default):
#   A  CLIENTS clients on every topic of the default collectors at 1 s; the
#      baseline at -rate 1 -batch B -size S, with B frames per tick and S
#      bytes per event measured from livedash's stream.
#   B  B_CLIENTS clients at 100 frames/s: livedash's synthetic collector at
#      10ms (default collectors off); the baseline at -rate 100 -batch 1 -size S.
#   S  saturation: SAT_CLIENTS clients at 100 frames/s, same servers as B; the
#      deliveries/s reached and frames per write (coalescing under overload).
#   C  reconnect storm (livedash only: the baseline does not replay): STORM
#      clients reconnect at once, BEHIND frames behind, CONTROL control clients.
#   L  long polls: LP_CLIENTS (5000) polls parked on /api/v1/frames, released by
#      one push; p99 from sending the push, over LP_ROUNDS rounds, RUNS runs
#      each on a fresh server.
#   P  10,000 pairs of a long poll (wait=1ns) and /healthz pipelined on one
#      keep-alive connection: server CPU per 1,000 pairs, last over first, and
#      a second client's /healthz p99, loaded over idle (not in the default set).
#   R  RSS per idle stream: a fresh livedash, CLIENTS streams on a topic that
#      never gets a frame; (RSS with them - RSS before) / CLIENTS.
#   W  WebSocket beside SSE (not in the default list): CLIENTS clients of one
#      livedash on the default collectors, over /api/v1/stream and over
#      /api/v1/ws in turn, RUNS alternating pairs; then R's idle RSS per
#      connection for each, on fresh servers. Ratios are WebSocket/SSE.
#   M  several instances on one Redis (not in the default set): a redis-server
#      started here (REDIS_CONF, default packaging/redis/livedash.conf), A with
#      the synthetic collector at 100ms, B with no collector; M_CLIENTS (1000)
#      clients on B, then on A, then on a bbolt instance alone (also at 100ms),
#      rotating the order each run: the latency p99 from each frame's ts (the
#      commit on A) to a client of B, beside A's own and bbolt's.
#   CR reconnect storm on Redis beside bbolt (not in the default set): C's storm
#      (STORM clients BEHIND frames behind, CONTROL control clients, synthetic
#      at 100ms) against an instance on the redis-server started here and
#      against one on bbolt, alternating which goes first.
#   T  the cost of TLS and of a login (not in the default set), each part RUNS
#      times with the variants alternating (the order rotates every run):
#      a) CLIENTS clients on the default collectors, as in A, against three
#         servers: plain HTTP, TLS, TLS + basic auth; p99 and server CPU per
#         client-second, and their ratios over plain.
#      b) GET /api/v1/latest with wrk (50 keep-alive connections, WRK_DURATION)
#         against the same three: requests/s and p99, ratios over plain.
#      c) RSS per idle stream as in R, IDLE_CLIENTS streams on a fresh server
#         each: HTTP/1.1 plain, HTTP/1.1 TLS (a connection per stream), HTTP/2
#         TLS (200 streams per connection), with the default write_timeout.
#      T_PARTS="a b c" picks the parts. Certificates and web-config files
#      come from `livedash-bench gencert` (ECDSA P-256, bcrypt cost 10).
#
# LOADBENCH_LIVEDASH=<path> measures that livedash binary instead of building this
# tree's (before/after comparisons under the same load tool).
#
# Every run prints one summary line; each scenario ends with the medians.
# Loopback only; every process started here is killed on exit.
set -euo pipefail

CLIENTS=${CLIENTS:-1000}
B_CLIENTS=${B_CLIENTS:-$(( CLIENTS < 1000 ? CLIENTS : 1000 ))}
SAT_CLIENTS=${SAT_CLIENTS:-$CLIENTS}
STORM=${STORM:-1000}
BEHIND=${BEHIND:-100}
CONTROL=${CONTROL:-100}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-2s}
RUNS=${RUNS:-1}
SCENARIOS=${SCENARIOS:-"A B S C R L"}
LP_CLIENTS=${LP_CLIENTS:-5000}
LP_ROUNDS=${LP_ROUNDS:-5}
M_CLIENTS=${M_CLIENTS:-1000}
T_PARTS=${T_PARTS:-"a b c"}
WRK_DURATION=${WRK_DURATION:-10s}
IDLE_CLIENTS=${IDLE_CLIENTS:-$CLIENTS}

root=$(cd "$(dirname "$0")/.." && pwd)
REFHUB_DIR=${REFHUB_DIR:-}
REDIS_CONF=${REDIS_CONF-$root/packaging/redis/livedash.conf}

die() { echo "loadbench: $*" >&2; exit 1; }
[[ $CLIENTS =~ ^[0-9]+$ && $CLIENTS -ge 1 && $CLIENTS -le 20000 ]] || die "CLIENTS=$CLIENTS: want 1…20000"
[[ $SAT_CLIENTS =~ ^[0-9]+$ && $SAT_CLIENTS -ge 1 && $SAT_CLIENTS -le 20000 ]] || die "SAT_CLIENTS: want 1…20000"
[[ $B_CLIENTS =~ ^[0-9]+$ && $B_CLIENTS -ge 1 && $B_CLIENTS -le 20000 ]] || die "B_CLIENTS: want 1…20000"
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 && $RUNS -le 10 ]] || die "RUNS=$RUNS: want 1…10"
[[ $M_CLIENTS =~ ^[0-9]+$ && $M_CLIENTS -ge 1 && $M_CLIENTS -le 20000 ]] || die "M_CLIENTS: want 1…20000"
[[ -z $REDIS_CONF || -f $REDIS_CONF ]] || die "REDIS_CONF=$REDIS_CONF: not a file"
(( STORM + CONTROL <= 20000 )) || die "STORM+CONTROL: at most 20000"
[[ $IDLE_CLIENTS =~ ^[0-9]+$ && $IDLE_CLIENTS -ge 1 && $IDLE_CLIENTS -le 20000 ]] || die "IDLE_CLIENTS: want 1…20000"
[[ $WRK_DURATION =~ ^[0-9]+s$ && ${WRK_DURATION%s} -ge 1 && ${WRK_DURATION%s} -le 120 ]] || die "WRK_DURATION=$WRK_DURATION: want 1s…120s"
[[ -z $REFHUB_DIR || -d $REFHUB_DIR ]] || die "REFHUB_DIR=$REFHUB_DIR: not a directory"
# The name the baseline's figures are printed under.
if [[ -n $REFHUB_DIR ]]; then bl_name=refhub; else bl_name=baseline; fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/loadbench.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "loadbench: building into $tmp"
(cd "$root" && go build -o "$tmp/bench" ./cmd/livedash-bench)
if [[ -n ${LOADBENCH_LIVEDASH:-} ]]; then
	cp "$LOADBENCH_LIVEDASH" "$tmp/livedash" # another build (an earlier commit) under the same load
else
	(cd "$root" && go build -o "$tmp/livedash" ./cmd/livedash)
fi
if [[ -n $REFHUB_DIR ]]; then
	echo "loadbench: cross-check: the baseline is the hub in $REFHUB_DIR"
	(cd "$REFHUB_DIR" && go build -o "$tmp/refhub" .)
fi

# free_port prints an unused loopback port below the ephemeral range.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$(( 17000 + RANDOM % 3000 ))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
	die "no free port"
}

wait_http() { # url [curl options…]
	local u=$1
	shift
	# -k: scenario T's servers have a self-signed certificate (loopback only).
	for _ in $(seq 100); do curl -fsk -o /dev/null --max-time 1 "$@" "$u" && return; sleep 0.1; done
	die "$u did not answer"
}

stop() { # pid
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# start_livedash NAME CONFIG-BODY [WEB-CONFIG [USER:PASSWORD]] → sets LD_PID,
# LD_URL (https with a web config; the login is what it asks for)
start_livedash() {
	local dir=$tmp/$1 port scheme=http
	local -a web=() login=()
	[[ -n ${3:-} ]] && web=(--web.config.file "$3") scheme=https
	[[ -n ${4:-} ]] && login=(-u "$4")
	mkdir -p "$dir"
	port=$(free_port)
	cat >"$dir/config.yaml" <<EOF
http:
  max_conns: 25000
  # The load client is a few addresses holding thousands of connections:
  # the per-client caps would count it as one abusive client.
  max_conns_per_client: 0
  max_polls_per_client: 0
  api_rate: 0
stream:
  max_streams: 20000
  max_streams_per_ip: 0
$2
EOF
	"$tmp/livedash" serve --listen "127.0.0.1:$port" --store "$dir/l.db" --config "$dir/config.yaml" "${web[@]}" >"$dir/log" 2>&1 &
	LD_PID=$!
	pids+=("$LD_PID")
	LD_URL=$scheme://127.0.0.1:$port/api/v1/stream
	wait_http "$scheme://127.0.0.1:$port/api/v1/frames" "${login[@]}"
}

# start_redis NAME → sets RD_PID and RD_URL: a redis-server on a free
# loopback port with REDIS_CONF (none: no persistence), data under $tmp/NAME.
start_redis() {
	local dir=$tmp/$1 port
	mkdir -p "$dir"
	port=$(free_port)
	command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
	local -a conf=()
	[[ -n $REDIS_CONF ]] && conf=("$REDIS_CONF") || conf=(--save "" --appendonly no)
	redis-server "${conf[@]}" --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize no \
		--logfile "$dir/log" --protected-mode no >/dev/null 2>&1 &
	RD_PID=$!
	pids+=("$RD_PID")
	RD_URL=redis://127.0.0.1:$port/0
	for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.1; done
	die "redis-server did not start"
}

# start_baseline RATE BATCH SIZE → sets BL_PID, BL_URL and BL_ARGS (an array):
# the baseline publishing BATCH events of about SIZE bytes each (the whole
# event) RATE times a second.
start_baseline() {
	local port
	port=$(free_port)
	if [[ -n $REFHUB_DIR ]]; then
		# Its -size is the data's: an event is "id: N\nevent: frame\ndata: " + data + "\n\n", about 29 bytes more.
		BL_ARGS=(-mode tuned -rate "$1" -batch "$2" -size $(( $3 > 60 ? $3 - 29 : 32 )))
		"$tmp/refhub" -addr "127.0.0.1:$port" "${BL_ARGS[@]}" >"$tmp/$bl_name.$port.log" 2>&1 &
	else
		BL_ARGS=(-rate "$1" -batch "$2" -size "$3")
		"$tmp/bench" serve-baseline -addr "127.0.0.1:$port" "${BL_ARGS[@]}" >"$tmp/$bl_name.$port.log" 2>&1 &
	fi
	BL_PID=$!
	pids+=("$BL_PID")
	BL_URL=http://127.0.0.1:$port/
	for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.1; done
	die "the $bl_name did not start"
}

# probe URL SECONDS: frames per tick (frames / distinct ts) and the mean
# event size in bytes, from one stream.
probe() {
	curl -sN --max-time "$2" "$1" 2>/dev/null | awk '
		/^event: frame/ { inframe = 1; bytes += length($0) + 1; next }
		/^id: / { idlen = length($0) + 1; next }
		/^data: / && inframe {
			bytes += idlen + length($0) + 1 + 1; n++
			if (match($0, /"ts":[0-9]+/)) ts[substr($0, RSTART + 5, RLENGTH - 5)] = 1
			inframe = 0; next
		}
		END { t = 0; for (k in ts) t++; if (n == 0 || t == 0) { print "0 0"; exit }
		      printf "%d %d\n", (n / t) + 0.5, bytes / n }' || true
}

# bench OUTFILE ARGS…: runs the load tool, keeping its report.
bench() {
	local out=$1
	shift
	"$tmp/bench" "$@" >"$out" 2>&1 || { cat "$out" >&2; die "livedash-bench failed"; }
}

# field FILE REGEX: the first capture of REGEX (sed -E) in FILE, as a number
# in ms for durations (µs → ms, s → ms).
field() {
	local v
	v=$(sed -nE "s#.*$2.*#\1#p" "$1" | head -1)
	[[ -z $v ]] && { echo NA; return; }
	case $v in
	*ms) echo "${v%ms}" ;;
	*µs) awk -v x="${v%µs}" 'BEGIN { print x / 1000 }' ;;
	*s) awk -v x="${v%s}" 'BEGIN { print x * 1000 }' ;;
	*) echo "$v" ;;
	esac
}

# proc_cpu PID: the process's CPU time so far (user + system), in seconds.
proc_cpu() { awk '{ sub(/^.*\) /, ""); print ($12 + $13) / 100 }' "/proc/$1/stat"; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "NA" || b == "NA" || b == 0) print "NA"; else printf "%.2f", a / b }'; }

median() { printf '%s\n' "$@" | grep -v NA | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "NA"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# side_by_side NAME CLIENTS: RUNS alternating pairs against LD_* and BL_*.
side_by_side() {
	local name=$1 n=$2 run order who url pid out
	local -a r_p99 r_cpu l_p99 l_cpu l_dps h_dps q_p99 q_cpu
	for run in $(seq "$RUNS"); do
		if (( run % 2 )); then order="ld ref"; else order="ref ld"; fi
		for who in $order; do
			if [[ $who == ld ]]; then url=$LD_URL pid=$LD_PID; else url=$BL_URL pid=$BL_PID; fi
			out=$tmp/$name.$run.$who.txt
			bench "$out" -url "$url" -pid "$pid" -clients "$n" -duration "$DURATION" -warmup "$WARMUP"
		done
		local lo=$tmp/$name.$run.ld.txt ro=$tmp/$name.$run.ref.txt
		local lp lc lg lf ld rp rc rd
		lp=$(field "$lo" 'p99 ([0-9.]+(ms|µs|s))') rp=$(field "$ro" 'p99 ([0-9.]+(ms|µs|s))')
		lc=$(field "$lo" 'per client-second ([0-9.]+)µs') rc=$(field "$ro" 'per client-second ([0-9.]+)µs')
		ld=$(field "$lo" 'deliveries/s ([0-9]+)') rd=$(field "$ro" 'deliveries/s ([0-9]+)')
		lg=$(field "$lo" 'gaps ([0-9]+)')
		lf=$(field "$lo" ', ([0-9.]+) frames per write')
		printf '%s run %d (%s first): livedash p99 %sms cpu %sµs/client-s deliveries/s %s gaps %s dups %s frames/write %s | %s p99 %sms cpu %sµs/client-s deliveries/s %s | ratio p99 %s cpu %s deliveries %s\n' \
			"$name" "$run" "${order%% *}" "$lp" "$lc" "$ld" "$lg" "$(field "$lo" 'dups ([0-9]+)')" "$lf" "$bl_name" "$rp" "$rc" "$rd" \
			"$(ratio "$lp" "$rp")" "$(ratio "$lc" "$rc")" "$(ratio "$ld" "$rd")"
		l_p99+=("$lp") r_p99+=("$rp") l_cpu+=("$lc") r_cpu+=("$rc") l_dps+=("$ld") h_dps+=("$rd")
		q_p99+=("$(ratio "$lp" "$rp")") q_cpu+=("$(ratio "$lc" "$rc")")
	done
	printf '%s median of %d: livedash p99 %sms cpu %sµs/client-s deliveries/s %s | %s p99 %sms cpu %sµs/client-s deliveries/s %s | median ratio p99 %s cpu %s\n' \
		"$name" "$RUNS" "$(median "${l_p99[@]}")" "$(median "${l_cpu[@]}")" "$(median "${l_dps[@]}")" "$bl_name" \
		"$(median "${r_p99[@]}")" "$(median "${r_cpu[@]}")" "$(median "${h_dps[@]}")" \
		"$(median "${q_p99[@]}")" "$(median "${q_cpu[@]}")"
}

# t_order RUN NAME…: the names, rotated by RUN-1 places (scenario T
# alternates which variant goes first).
t_order() {
	local r=$(( ($1 - 1) % ($# - 1) ))
	shift
	echo "${@:r+1}" "${@:1:r}"
}

# cpu_ticks PID: the process's user+system time in 1/100 s.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# wrk_ms DURATION: wrk's 1.23ms / 456.00us / 1.02s / 2.00m in ms.
wrk_ms() {
	awk -v x="$1" 'BEGIN { n = x + 0; u = x; sub(/^[0-9.]+/, "", u)
		if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000; else if (u != "ms") { print "NA"; exit }
		printf "%.2f\n", n }'
}

synthetic_only='collectors:
  cpu: {enabled: false}
  memory: {enabled: false}
  load: {enabled: false}
  disk: {enabled: false}
  filesystem: {enabled: false}
  network: {enabled: false}
  system: {enabled: false}
  self: {enabled: false}
  synthetic: {enabled: true, interval: 10ms}'

for sc in $SCENARIOS; do
	case $sc in
	A)
		start_livedash a ""
		read -r batch size < <(probe "$LD_URL" 3.5)
		(( batch > 0 )) || die "A: no frames from the default collectors"
		start_baseline 1 "$batch" "$size"
		echo "A: $CLIENTS clients, default collectors at 1s: $batch frames per tick, mean event $size B; $bl_name ${BL_ARGS[*]}"
		side_by_side A "$CLIENTS"
		stop "$LD_PID"; stop "$BL_PID"
		;;
	B | S)
		start_livedash "b$sc" "$synthetic_only"
		read -r batch size < <(probe "$LD_URL" 1.5)
		(( batch > 0 )) || die "$sc: no frames from the synthetic collector"
		start_baseline 100 1 "$size"
		n=$B_CLIENTS
		[[ $sc == S ]] && n=$SAT_CLIENTS
		echo "$sc: $n clients at 100 frames/s (synthetic at 10ms, default collectors off; mean event $size B); $bl_name ${BL_ARGS[*]}"
		side_by_side "$sc" "$n"
		stop "$LD_PID"; stop "$BL_PID"
		;;
	C)
		# 10 frames/s, so that BEHIND frames pass in BEHIND/10 s.
		start_livedash c "${synthetic_only/interval: 10ms/interval: 100ms}"
		echo "C: storm $STORM clients $BEHIND frames behind (replayed from bbolt), $CONTROL control clients; synthetic at 100ms"
		c_p99=() c_ctl=() c_base=() c_during=() c_probe=()
		for run in $(seq "$RUNS"); do
			out=$tmp/C.$run.txt
			bench "$out" -scenario storm -storm "$STORM" -behind "$BEHIND" -control "$CONTROL" -url "$LD_URL" -pid "$LD_PID" -duration "$DURATION" -warmup "$WARMUP"
			printf 'C run %d: caught up %s/%s catch-up p99 %sms max %sms | control p99 baseline %sms during %sms (ratio %s) | storm gaps %s dups %s resets %s\n' "$run" \
				"$(field "$out" 'caught up ([0-9]+)/')" "$STORM" \
				"$(field "$out" 'catch-up p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')" "$(field "$out" 'catch-up p50 .* max ([0-9.]+(ms|µs|s))')" \
				"$(field "$out" 'control baseline [^:]*: p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')" \
				"$(field "$out" 'during storm [^:]*: p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')" \
				"$(ratio "$(field "$out" 'during storm [^:]*: p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')" "$(field "$out" 'control baseline [^:]*: p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')")" \
				"$(field "$out" 'storm clients: frames [0-9]+  gaps ([0-9]+)')" "$(field "$out" 'storm clients: .*dups ([0-9]+)')" "$(field "$out" 'storm clients: .*resets ([0-9]+)')"
			c_p99+=("$(field "$out" 'catch-up p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')")
			c_base+=("$(field "$out" 'control baseline [^:]*: p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')")
			c_during+=("$(field "$out" 'during storm [^:]*: p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')")
			c_ctl+=("$(ratio "${c_during[-1]}" "${c_base[-1]}")")
			# The same measurement from a process of its own (livedash-bench -probe):
			# no queueing behind the storm clients in the load tool's runtime.
			pb=$(field "$out" 'probe [^|]*baseline [^:]*: p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')
			pd=$(field "$out" 'probe .*during storm [^:]*: p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')
			c_probe+=("$(ratio "$pd" "$pb")")
			printf 'C run %d: probe (own process) p99 baseline %sms during %sms (ratio %s)\n' "$run" "$pb" "$pd" "${c_probe[-1]}"
		done
		printf 'C median of %d: catch-up p99 %sms | control p99 baseline %sms during %sms | median ratio %s\n' "$RUNS" \
			"$(median "${c_p99[@]}")" "$(median "${c_base[@]}")" "$(median "${c_during[@]}")" "$(median "${c_ctl[@]}")"
		printf 'C median of %d: probe (own process) control p99 ratio %s\n' "$RUNS" "$(median "${c_probe[@]}")"
		stop "$LD_PID"
		;;
	R)
		for run in $(seq "$RUNS"); do
			start_livedash "r$run" ""
			out=$tmp/R.$run.txt
			bench "$out" -url "$LD_URL?topics=loadbench_idle" -pid "$LD_PID" -clients "$CLIENTS" -duration 2s -warmup 3s
			printf 'R run %d: %s idle streams: %s\n' "$run" "$CLIENTS" "$(grep -o 'server rss.*' "$out")"
			stop "$LD_PID"
		done
		;;
	L)
		l_p99=()
		for run in $(seq "$RUNS"); do
			start_livedash "l$run" "push:
  token: loadbench-push-token-0123"
			out=$tmp/L.$run.txt
			bench "$out" -scenario longpoll -clients "$LP_CLIENTS" -rounds "$LP_ROUNDS" -token loadbench-push-token-0123 -url "${LD_URL%/api/v1/stream}/" -duration "$DURATION"
			grep '^longpoll' "$out" | sed "s/^/L run $run: /"
			l_p99+=("$(field "$out" 'median p99 over [0-9]+ rounds: ([0-9.]+(ms|µs|s))')")
			stop "$LD_PID"
		done
		printf 'L median of %d runs: wake-up p99 %sms (each run: the median p99 of its rounds)\n' "$RUNS" "$(median "${l_p99[@]}")"
		;;
	P)
		p_cpu=() p_lat=()
		for run in $(seq "$RUNS"); do
			start_livedash "p$run" ""
			out=$tmp/P.$run.txt
			bench "$out" -scenario pipeline -clients 10000 -url "${LD_URL%/api/v1/stream}/" -pid "$LD_PID" -duration "$DURATION"
			sed "s/^/P run $run: /" "$out"
			p_cpu+=("$(field "$out" 'server cpu per .* \(ratio ([0-9.]+)\)')")
			p_lat+=("$(field "$out" 'loaded .* ratio ([0-9.]+)')")
			stop "$LD_PID"
		done
		printf 'P median of %d runs: server cpu per 1,000 pairs last/first %s; /healthz p99 loaded/idle %s\n' "$RUNS" "$(median "${p_cpu[@]}")" "$(median "${p_lat[@]}")"
		;;
	W)
		start_livedash w ""
		ws_url=${LD_URL%/stream}/ws
		echo "W: $CLIENTS clients, default collectors at 1s, SSE ($LD_URL) and WebSocket ($ws_url) on one server, alternating"
		w_sp=() w_sc=() w_wp=() w_wc=() w_rp=() w_rc=()
		for run in $(seq "$RUNS"); do
			if (( run % 2 )); then order="sse ws"; else order="ws sse"; fi
			for tr in $order; do
				url=$LD_URL
				[[ $tr == ws ]] && url=$ws_url
				bench "$tmp/W.$run.$tr.txt" -transport "$tr" -url "$url" -pid "$LD_PID" -clients "$CLIENTS" -duration "$DURATION" -warmup "$WARMUP"
			done
			so=$tmp/W.$run.sse.txt wo=$tmp/W.$run.ws.txt
			sp=$(field "$so" 'p99 ([0-9.]+(ms|µs|s))') wp=$(field "$wo" 'p99 ([0-9.]+(ms|µs|s))')
			sc=$(field "$so" 'per client-second ([0-9.]+)µs') wc=$(field "$wo" 'per client-second ([0-9.]+)µs')
			printf 'W run %d (%s first): sse p99 %sms cpu %sµs/client-s deliveries/s %s gaps %s | ws p99 %sms cpu %sµs/client-s deliveries/s %s gaps %s dups %s | ratio ws/sse p99 %s cpu %s\n' \
				"$run" "${order%% *}" "$sp" "$sc" "$(field "$so" 'deliveries/s ([0-9]+)')" "$(field "$so" 'gaps ([0-9]+)')" \
				"$wp" "$wc" "$(field "$wo" 'deliveries/s ([0-9]+)')" "$(field "$wo" 'gaps ([0-9]+)')" "$(field "$wo" 'dups ([0-9]+)')" \
				"$(ratio "$wp" "$sp")" "$(ratio "$wc" "$sc")"
			w_sp+=("$sp") w_sc+=("$sc") w_wp+=("$wp") w_wc+=("$wc") w_rp+=("$(ratio "$wp" "$sp")") w_rc+=("$(ratio "$wc" "$sc")")
		done
		printf 'W median of %d: sse p99 %sms cpu %sµs/client-s | ws p99 %sms cpu %sµs/client-s | median ratio ws/sse p99 %s cpu %s\n' "$RUNS" \
			"$(median "${w_sp[@]}")" "$(median "${w_sc[@]}")" "$(median "${w_wp[@]}")" "$(median "${w_wc[@]}")" \
			"$(median "${w_rp[@]}")" "$(median "${w_rc[@]}")"
		stop "$LD_PID"
		for run in $(seq "$RUNS"); do
			for tr in sse ws; do
				start_livedash "wr$run$tr" ""
				url=$LD_URL
				[[ $tr == ws ]] && url=${LD_URL%/stream}/ws
				out=$tmp/WR.$run.$tr.txt
				bench "$out" -transport "$tr" -url "$url?topics=loadbench_idle" -pid "$LD_PID" -clients "$CLIENTS" -duration 2s -warmup 3s
				printf 'W idle run %d %s: %s idle connections: %s\n' "$run" "$tr" "$CLIENTS" "$(grep -o 'server rss.*' "$out")"
				stop "$LD_PID"
			done
		done
		;;
	M)
		start_redis m
		on_redis="store:
  redis:
    url: $RD_URL
    key_prefix: loadbench-m"
		at100=${synthetic_only/interval: 10ms/interval: 100ms}
		start_livedash ma "node: node-a
$on_redis
$at100"
		a_url=$LD_URL a_pid=$LD_PID
		start_livedash mb "node: node-b
$on_redis
${synthetic_only%synthetic:*}synthetic: {enabled: false}"
		b_url=$LD_URL b_pid=$LD_PID
		start_livedash ms "$at100"
		s_url=$LD_URL s_pid=$LD_PID
		echo "M: $M_CLIENTS clients at 10 frames/s (synthetic at 100ms on A); Redis ${REDIS_CONF:-without persistence}: clients on B (another instance), on A (the collector's), and on bbolt alone"
		m_b=() m_a=() m_s=() m_ba=() m_bs=()
		for run in $(seq "$RUNS"); do
			case $(( run % 3 )) in
			1) order="b a s" ;; 2) order="a s b" ;; 0) order="s b a" ;;
			esac
			for who in $order; do
				case $who in
				b) bench "$tmp/M.$run.b.txt" -url "$b_url" -pid "$b_pid" -clients "$M_CLIENTS" -duration "$DURATION" -warmup "$WARMUP" ;;
				a) bench "$tmp/M.$run.a.txt" -url "$a_url" -pid "$a_pid" -clients "$M_CLIENTS" -duration "$DURATION" -warmup "$WARMUP" ;;
				s) bench "$tmp/M.$run.s.txt" -url "$s_url" -pid "$s_pid" -clients "$M_CLIENTS" -duration "$DURATION" -warmup "$WARMUP" ;;
				esac
			done
			pb=$(field "$tmp/M.$run.b.txt" 'p99 ([0-9.]+(ms|µs|s))')
			pa=$(field "$tmp/M.$run.a.txt" 'p99 ([0-9.]+(ms|µs|s))')
			ps=$(field "$tmp/M.$run.s.txt" 'p99 ([0-9.]+(ms|µs|s))')
			printf 'M run %d (%s): p99 B %sms (p50 %sms, deliveries/s %s, gaps %s dups %s resets %s, cpu %sµs/client-s) | A %sms (p50 %sms, cpu %sµs/client-s) | bbolt %sms (p50 %sms, cpu %sµs/client-s) | B/A %s B/bbolt %s\n' \
				"$run" "$order" "$pb" "$(field "$tmp/M.$run.b.txt" 'p50 ([0-9.]+(ms|µs|s))')" "$(field "$tmp/M.$run.b.txt" 'deliveries/s ([0-9]+)')" \
				"$(field "$tmp/M.$run.b.txt" 'gaps ([0-9]+)')" "$(field "$tmp/M.$run.b.txt" 'dups ([0-9]+)')" "$(field "$tmp/M.$run.b.txt" 'resets ([0-9]+)')" \
				"$(field "$tmp/M.$run.b.txt" 'per client-second ([0-9.]+)µs')" \
				"$pa" "$(field "$tmp/M.$run.a.txt" 'p50 ([0-9.]+(ms|µs|s))')" "$(field "$tmp/M.$run.a.txt" 'per client-second ([0-9.]+)µs')" \
				"$ps" "$(field "$tmp/M.$run.s.txt" 'p50 ([0-9.]+(ms|µs|s))')" "$(field "$tmp/M.$run.s.txt" 'per client-second ([0-9.]+)µs')" \
				"$(ratio "$pb" "$pa")" "$(ratio "$pb" "$ps")"
			m_b+=("$pb") m_a+=("$pa") m_s+=("$ps") m_ba+=("$(ratio "$pb" "$pa")") m_bs+=("$(ratio "$pb" "$ps")")
		done
		printf 'M median of %d: p99 B %sms | A %sms | bbolt %sms | median ratio B/A %s B/bbolt %s\n' "$RUNS" \
			"$(median "${m_b[@]}")" "$(median "${m_a[@]}")" "$(median "${m_s[@]}")" "$(median "${m_ba[@]}")" "$(median "${m_bs[@]}")"
		stop "$a_pid"; stop "$b_pid"; stop "$s_pid"; stop "$RD_PID"
		;;
	CR)
		start_redis cr
		at100=${synthetic_only/interval: 10ms/interval: 100ms}
		start_livedash crr "store:
  redis:
    url: $RD_URL
    key_prefix: loadbench-cr
$at100"
		r_url=$LD_URL r_pid=$LD_PID
		start_livedash crb "$at100"
		b_url=$LD_URL b_pid=$LD_PID
		echo "CR: storm $STORM clients $BEHIND frames behind, $CONTROL control clients; synthetic at 100ms; Redis (${REDIS_CONF:-without persistence}) beside bbolt"
		declare -A cr=()
		for run in $(seq "$RUNS"); do
			if (( run % 2 )); then order="redis bbolt"; else order="bbolt redis"; fi
			for who in $order; do
				out=$tmp/CR.$run.$who.txt
				if [[ $who == redis ]]; then url=$r_url pid=$r_pid; else url=$b_url pid=$b_pid; fi
				rc0=$(proc_cpu "$RD_PID")
				bench "$out" -scenario storm -storm "$STORM" -behind "$BEHIND" -control "$CONTROL" -url "$url" -pid "$pid" -duration "$DURATION" -warmup "$WARMUP"
				cp=$(field "$out" 'catch-up p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')
				cb=$(field "$out" 'control baseline [^:]*: p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')
				cdur=$(field "$out" 'during storm [^:]*: p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')
				pb=$(field "$out" 'probe [^|]*baseline [^:]*: p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')
				pd=$(field "$out" 'probe .*during storm [^:]*: p50 [^ ]+  p99 ([0-9.]+(ms|µs|s))')
				rcpu=$(awk -v a="$rc0" -v b="$(proc_cpu "$RD_PID")" 'BEGIN { printf "%.2f", b - a }')
				[[ $who == redis ]] || rcpu=NA # the storm is not on Redis
				printf 'CR run %d %s (%s first): caught up %s/%s catch-up p99 %sms max %sms | control p99 baseline %sms during %sms | probe p99 baseline %sms during %sms (ratio %s) | storm gaps %s dups %s resets %s | server cpu during storm %ss, redis-server cpu over the run %ss\n' \
					"$run" "$who" "${order%% *}" "$(field "$out" 'caught up ([0-9]+)/')" "$STORM" "$cp" \
					"$(field "$out" 'catch-up p50 .* max ([0-9.]+(ms|µs|s))')" "$cb" "$cdur" "$pb" "$pd" "$(ratio "$pd" "$pb")" \
					"$(field "$out" 'storm clients: frames [0-9]+  gaps ([0-9]+)')" "$(field "$out" 'storm clients: .*dups ([0-9]+)')" \
					"$(field "$out" 'storm clients: .*resets ([0-9]+)')" "$(field "$out" 'server cpu during storm ([0-9.]+)s')" "$rcpu"
				cr[$who.p99]+=" $cp" cr[$who.ctl]+=" $cdur" cr[$who.probe]+=" $(ratio "$pd" "$pb")"
			done
		done
		for who in redis bbolt; do
			# shellcheck disable=SC2086
			printf 'CR median of %d %s: catch-up p99 %sms | control p99 during storm %sms | probe p99 ratio during/baseline %s\n' "$RUNS" "$who" \
				"$(median ${cr[$who.p99]})" "$(median ${cr[$who.ctl]})" "$(median ${cr[$who.probe]})"
		done
		stop "$r_pid"; stop "$b_pid"; stop "$RD_PID"
		;;
	T)
		t_login=bench:loadbench-login-0123
		t_auth="Authorization: Basic $(printf %s "$t_login" | base64 -w0)"
		"$tmp/bench" gencert -dir "$tmp/tls" >/dev/null
		"$tmp/bench" gencert -dir "$tmp/tlsauth" -basic "$t_login" >/dev/null
		declare -A t_url=() t_pid=() t_name=([plain]=plain [tls]=tls [auth]=tls+auth [h1]="h1 plain" [h1tls]="h1 tls" [h2tls]="h2 tls")
		if [[ $T_PARTS == *a* || $T_PARTS == *b* ]]; then
			start_livedash tplain ""
			t_url[plain]=$LD_URL t_pid[plain]=$LD_PID
			start_livedash ttls "" "$tmp/tls/web.yml"
			t_url[tls]=$LD_URL t_pid[tls]=$LD_PID
			start_livedash tauth "" "$tmp/tlsauth/web.yml" "$t_login"
			t_url[auth]=$LD_URL t_pid[auth]=$LD_PID
		fi
		if [[ $T_PARTS == *a* ]]; then
			read -r batch size < <(probe "${t_url[plain]}" 3.5)
			echo "T a: $CLIENTS clients, default collectors at 1s ($batch frames per tick, mean event $size B): plain HTTP, TLS, TLS + basic auth"
			declare -A ta_p99=() ta_cpu=() ta_rp=() ta_rc=() ta_cc=()
			for run in $(seq "$RUNS"); do
				order=$(t_order "$run" plain tls auth)
				declare -A p=() c=() d=() g=() lt=() ct=() cc=()
				for v in $order; do
					out=$tmp/Ta.$run.$v.txt
					args=()
					[[ $v == auth ]] && args=(-basic "$t_login")
					bench "$out" -url "${t_url[$v]}" -pid "${t_pid[$v]}" -clients "$CLIENTS" -duration "$DURATION" -warmup "$WARMUP" "${args[@]}"
					p[$v]=$(field "$out" 'p99 ([0-9.]+(ms|µs|s))')
					c[$v]=$(field "$out" 'per client-second ([0-9.]+)µs')
					d[$v]=$(field "$out" 'deliveries/s ([0-9]+)')
					g[$v]=$(field "$out" 'gaps ([0-9]+)')/$(field "$out" 'dups ([0-9]+)')/$(field "$out" 'conn_ends ([0-9]+)')
					lt[$v]=$(field "$out" 'load tool cpu [0-9.]+s \(([0-9]+)% of one core')
					ct[$v]=$(field "$out" 'connected [0-9]+ clients in ([0-9.]+(ms|µs|s))')
					cc[$v]=$(field "$out" 'while connecting [0-9.]+s \(([0-9]+)µs per client')
					ta_p99[$v]+=" ${p[$v]}" ta_cpu[$v]+=" ${c[$v]}" ta_cc[$v]+=" ${cc[$v]}"
				done
				for v in tls auth; do
					ta_rp[$v]+=" $(ratio "${p[$v]}" "${p[plain]}")" ta_rc[$v]+=" $(ratio "${c[$v]}" "${c[plain]}")"
				done
				printf 'T a run %d (%s): p99 plain %sms tls %sms tls+auth %sms | cpu µs/client-s plain %s tls %s tls+auth %s | deliveries/s %s %s %s | gaps/dups/ends %s %s %s | load tool %% of a core %s %s %s | connecting ms %s %s %s, server cpu µs/client %s %s %s | tls/plain p99 %s cpu %s | tls+auth/plain p99 %s cpu %s\n' \
					"$run" "$order" "${p[plain]}" "${p[tls]}" "${p[auth]}" "${c[plain]}" "${c[tls]}" "${c[auth]}" \
					"${d[plain]}" "${d[tls]}" "${d[auth]}" "${g[plain]}" "${g[tls]}" "${g[auth]}" "${lt[plain]}" "${lt[tls]}" "${lt[auth]}" \
					"${ct[plain]}" "${ct[tls]}" "${ct[auth]}" "${cc[plain]}" "${cc[tls]}" "${cc[auth]}" \
					"$(ratio "${p[tls]}" "${p[plain]}")" "$(ratio "${c[tls]}" "${c[plain]}")" "$(ratio "${p[auth]}" "${p[plain]}")" "$(ratio "${c[auth]}" "${c[plain]}")"
			done
			# shellcheck disable=SC2086 # the lists are space-separated numbers
			printf 'T a median of %d: p99 plain %sms tls %sms tls+auth %sms | cpu µs/client-s plain %s tls %s tls+auth %s | server cpu µs/client while connecting plain %s tls %s tls+auth %s | median ratio tls/plain p99 %s cpu %s | tls+auth/plain p99 %s cpu %s\n' "$RUNS" \
				"$(median ${ta_p99[plain]})" "$(median ${ta_p99[tls]})" "$(median ${ta_p99[auth]})" \
				"$(median ${ta_cpu[plain]})" "$(median ${ta_cpu[tls]})" "$(median ${ta_cpu[auth]})" \
				"$(median ${ta_cc[plain]})" "$(median ${ta_cc[tls]})" "$(median ${ta_cc[auth]})" \
				"$(median ${ta_rp[tls]})" "$(median ${ta_rc[tls]})" "$(median ${ta_rp[auth]})" "$(median ${ta_rc[auth]})"
		fi
		if [[ $T_PARTS == *b* ]]; then
			echo "T b: GET /api/v1/latest, wrk -t2 -c50 -d$WRK_DURATION: plain HTTP, TLS, TLS + basic auth"
			declare -A tb_rps=() tb_p99=() tb_cpu=() tb_rr=() tb_rc=()
			for run in $(seq "$RUNS"); do
				order=$(t_order "$run" plain tls auth)
				declare -A r=() l=() c=()
				for v in $order; do
					out=$tmp/Tb.$run.$v.txt
					hdr=()
					[[ $v == auth ]] && hdr=(-H "$t_auth")
					c0=$(cpu_ticks "${t_pid[$v]}")
					timeout $(( ${WRK_DURATION%s} + 30 )) wrk -t2 -c50 -d"$WRK_DURATION" --timeout 5s --latency "${hdr[@]}" "${t_url[$v]%/api/v1/stream}/api/v1/latest" >"$out" 2>&1 ||
						{ cat "$out" >&2; die "wrk failed"; }
					c1=$(cpu_ticks "${t_pid[$v]}")
					! grep -q 'Non-2xx' "$out" || { cat "$out" >&2; die "T b: $v: answers other than 2xx"; }
					r[$v]=$(sed -nE 's/^Requests\/sec: *([0-9.]+).*/\1/p' "$out")
					l[$v]=$(wrk_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
					# server CPU (1/100 s ticks) per request, in µs
					c[$v]=$(awk -v t=$(( c1 - c0 )) -v n="$(sed -nE 's/^ *([0-9]+) requests in .*/\1/p' "$out")" 'BEGIN { printf "%.1f", t * 10000 / n }')
					tb_rps[$v]+=" ${r[$v]}" tb_p99[$v]+=" ${l[$v]}" tb_cpu[$v]+=" ${c[$v]}"
				done
				for v in tls auth; do
					tb_rr[$v]+=" $(ratio "${r[$v]}" "${r[plain]}")" tb_rc[$v]+=" $(ratio "${c[$v]}" "${c[plain]}")"
				done
				printf 'T b run %d (%s): req/s plain %s tls %s tls+auth %s | p99 plain %sms tls %sms tls+auth %sms | server cpu µs/req plain %s tls %s tls+auth %s | tls/plain req/s %s cpu %s | tls+auth/plain req/s %s cpu %s\n' \
					"$run" "$order" "${r[plain]}" "${r[tls]}" "${r[auth]}" "${l[plain]}" "${l[tls]}" "${l[auth]}" "${c[plain]}" "${c[tls]}" "${c[auth]}" \
					"$(ratio "${r[tls]}" "${r[plain]}")" "$(ratio "${c[tls]}" "${c[plain]}")" "$(ratio "${r[auth]}" "${r[plain]}")" "$(ratio "${c[auth]}" "${c[plain]}")"
			done
			# shellcheck disable=SC2086
			printf 'T b median of %d: req/s plain %s tls %s tls+auth %s | p99 plain %sms tls %sms tls+auth %sms | server cpu µs/req plain %s tls %s tls+auth %s | median ratio tls/plain req/s %s cpu %s | tls+auth/plain req/s %s cpu %s\n' "$RUNS" \
				"$(median ${tb_rps[plain]})" "$(median ${tb_rps[tls]})" "$(median ${tb_rps[auth]})" \
				"$(median ${tb_p99[plain]})" "$(median ${tb_p99[tls]})" "$(median ${tb_p99[auth]})" \
				"$(median ${tb_cpu[plain]})" "$(median ${tb_cpu[tls]})" "$(median ${tb_cpu[auth]})" \
				"$(median ${tb_rr[tls]})" "$(median ${tb_rc[tls]})" "$(median ${tb_rr[auth]})" "$(median ${tb_rc[auth]})"
		fi
		if [[ $T_PARTS == *a* || $T_PARTS == *b* ]]; then
			stop "${t_pid[plain]}"; stop "${t_pid[tls]}"; stop "${t_pid[auth]}"
		fi
		if [[ $T_PARTS == *c* ]]; then
			echo "T c: RSS per idle stream, $IDLE_CLIENTS streams on a fresh server each: HTTP/1.1 plain, HTTP/1.1 TLS, HTTP/2 TLS"
			declare -A tc_kib=()
			# The streams are held 12 s, past the default write_timeout (10 s):
			# an idle stream outlives it on every protocol (none ends early).
			tc_conf=''
			for run in $(seq "$RUNS"); do
				order=$(t_order "$run" h1 h1tls h2tls)
				line=""
				for v in $order; do
					if [[ $v == h1 ]]; then start_livedash "tc$run$v" "$tc_conf"; else start_livedash "tc$run$v" "$tc_conf" "$tmp/tls/web.yml"; fi
					out=$tmp/Tc.$run.$v.txt
					args=()
					[[ $v == h2tls ]] && args=(-h2)
					bench "$out" -scenario idle -url "$LD_URL?topics=loadbench_idle" -pid "$LD_PID" -clients "$IDLE_CLIENTS" -duration 12s -warmup 3s "${args[@]}"
					stop "$LD_PID"
					tc_kib[$v]+=" $(field "$out" '\+([0-9.]+) KiB per stream')"
					line+=" | ${t_name[$v]}: $(grep -o 'connections [0-9]*  server rss.*' "$out")"
					! grep -q '^first stream that ended early' "$out" || line+=" ($(grep '^first stream that ended early' "$out"))"
				done
				printf 'T c run %d (%s)%s\n' "$run" "$order" "$line"
			done
			# shellcheck disable=SC2086
			printf 'T c median of %d: KiB RSS per idle stream: HTTP/1.1 plain %s, HTTP/1.1 TLS %s, HTTP/2 TLS %s\n' "$RUNS" \
				"$(median ${tc_kib[h1]})" "$(median ${tc_kib[h1tls]})" "$(median ${tc_kib[h2tls]})"
		fi
		;;
	*) die "unknown scenario $sc" ;;
	esac
done
