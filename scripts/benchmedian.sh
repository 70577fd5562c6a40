#!/usr/bin/env bash
# benchmedian.sh — the median of every figure of every Go benchmark in a
# `go test -bench` output run with -count N (what benchstat would show as
# the centre, without needing benchstat), one line per benchmark:
#
#   bash scripts/benchmedian.sh bench.txt
#   gobench: BenchmarkAppendTick1000-2 (5 runs): 3.04e+06 ns/op, 329000 frames/s, …
set -euo pipefail
[[ $# -eq 1 && -r $1 ]] || { echo "usage: benchmedian.sh bench.txt" >&2; exit 2; }
awk '
function median(s,   n, a, i, j, t) {
	n = split(s, a, " ")
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$1 ~ /^Benchmark/ && NF >= 4 {
	name = $1
	if (!(name in seen)) { seen[name] = 1; order[++names] = name }
	runs[name]++
	for (i = 3; i < NF; i += 2) {
		unit = $(i + 1)
		key = name SUBSEP unit
		if (!(key in vals)) units[name] = units[name] " " unit
		vals[key] = vals[key] " " $i
	}
}
END {
	for (k = 1; k <= names; k++) {
		name = order[k]
		line = sprintf("gobench: %s (%d runs):", name, runs[name])
		n = split(units[name], us, " ")
		for (u = 1; u <= n; u++) {
			m = median(vals[name SUBSEP us[u]])
			line = line sprintf("%s %.4g %s", (u > 1 ? "," : ""), m, us[u])
		}
		print line
	}
}' "$1"
