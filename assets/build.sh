#!/usr/bin/env bash
# build.sh puts the pinned uPlot build, and its license, into web/vendor/,
# where assets.go embeds them (`go generate ./assets` runs it). Idempotent and
# cheap when nothing changed, so `make run` and `make test` call it every time:
#
#   - `npm ci` (exactly package-lock.json, never an upgrade) runs only when
#     node_modules is missing or holds a uPlot other than the locked one;
#   - the files are copied only when they differ.
#
# No CDN: the page works offline, and the Go binary carries everything.
set -euo pipefail
cd "$(dirname "$0")"

locked=$(node -p 'require("./package-lock.json").packages["node_modules/uplot"].version')
installed=$(node -p 'try { require("./node_modules/uplot/package.json").version } catch (e) { "" }')
if [[ "$installed" != "$locked" ]]; then
	npm ci --no-audit --no-fund --loglevel=error
fi

mkdir -p web/vendor
copy() { # copy src dst, atomically, when they differ
	if ! cmp -s "$1" "$2"; then
		cp "$1" "$2.tmp"
		mv "$2.tmp" "$2"
	fi
}
for f in uPlot.iife.min.js uPlot.min.css; do
	copy "node_modules/uplot/dist/$f" "web/vendor/$f"
done
copy node_modules/uplot/LICENSE web/vendor/uPlot.LICENSE
