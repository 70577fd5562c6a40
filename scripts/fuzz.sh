#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module for a while each (default 20s).
# New crashers land in the package's testdata/fuzz/ and fail `make test`.
set -euo pipefail
t=${1:-20s}
for pkg in $(go list ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "== $pkg $target ($t)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$t" "$pkg"
	done
done
