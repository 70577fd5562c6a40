#!/usr/bin/env bash
# pagebench.sh — the page's figures, from the browser performance test
# (cmd/livedash TestBrowserPerf: headless Chromium without GPU, 8 charts, a
# 15-minute window over 16 minutes of history, ~30 live 1 Hz updates):
# first chart paint, main-thread drawing time per update, the page's CPU,
# and the gzipped size of its own JS+CSS (index.html not counted) and of
# uPlot. Needs the vendored assets (make assets) and Debian's chromium.
#
#   bash scripts/pagebench.sh          # make bench
#   RUNS=5 bash scripts/pagebench.sh   # several runs, one summary line each
#
# Prints the test's one-line summary per run ("pagebench: key=value …"),
# then the figures in words for the last run.
set -euo pipefail
RUNS=${RUNS:-1}
cd "$(dirname "$0")/.."
die() { echo "pagebench: $*" >&2; exit 1; }

line=
for run in $(seq "$RUNS"); do
	out=$(go test -count=1 -run '^TestBrowserPerf$' -v ./cmd/livedash/ 2>&1) || { echo "$out" | tail -40 >&2; die "run $run: TestBrowserPerf failed"; }
	line=$(sed -n 's/.*perf-summary: //p' <<<"$out")
	[[ -n $line ]] || { echo "$out" | tail -40 >&2; die "run $run: no perf-summary line"; }
	echo "pagebench: run $run: $line"
done

get() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$line"; }
printf 'pagebench: first chart paint %s ms after navigation (loopback, 15-minute window)\n' "$(get first_chart_paint_ms)"
printf 'pagebench: %s charts, %s s window: main-thread drawing per 1 Hz update median %s ms (p90 %s ms) over %s updates; main thread busy %s %% of one core, all of Chromium %s %%\n' \
	"$(get charts)" "$(get window_s)" "$(get draw_ms_per_update_p50)" "$(get draw_ms_per_update_p90)" "$(get updates)" \
	"$(get main_thread_busy_pct)" "$(get chromium_cpu_pct)"
printf "pagebench: the page's own JS+CSS %s B gzip (index.html not counted); uPlot %s B gzip\n" \
	"$(get own_js_css_gzip_bytes)" "$(get uplot_gzip_bytes)"
