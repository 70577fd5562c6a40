# The Makefile is livedash's interface: `make run` and `make test` work on a
# fresh machine; CI runs `.ci/run`, which is `make test`.
GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 20s
BENCHCOUNT ?= 5

.PHONY: run demo test test-deps assets bench fuzz lint tidy build

# Builds the page (pinned uPlot from npm) and starts livedash on its built-in
# defaults: listen 127.0.0.1:7070, store under ./data/ (or $XDG_STATE_HOME).
run: assets
	$(GO) run ./cmd/livedash serve

demo: assets
	$(GO) run ./cmd/livedash serve --demo

build: assets
	$(GO) build -o bin/livedash ./cmd/livedash
	$(GO) build -o bin/livedash-bench ./cmd/livedash-bench

assets:
	@if [ -f assets/build.sh ]; then bash assets/build.sh; fi

# What the tests need: the page's assets, Debian's Chromium for the
# browser tests, Debian's nginx for the reverse-proxy test and Debian's
# redis-server for the Redis store's tests (which start their own servers);
# each is installed only when missing.
test-deps: assets
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@test -x /usr/sbin/nginx || command -v nginx >/dev/null 2>&1 || { \
		echo "installing nginx for the reverse-proxy test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 || test -x /usr/bin/redis-server || { \
		echo "installing redis-server for the Redis store tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

test: test-deps
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) test -race -shuffle=on -timeout 12m $(PKGS)

# Benchmarks: every figure of the README's Performance table. Go benchmarks
# (BENCHCOUNT runs in bench.txt for benchstat, and their medians), the
# collectors' cost on the real binary, the JSON API under wrk, the page in
# headless Chromium, and a short load run of the SSE path beside the
# baseline (livedash-bench serve-baseline, built from this repository).
bench: test-deps
	@command -v wrk >/dev/null 2>&1 || { \
		echo "installing wrk for the HTTP benchmark"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) ./dashboard/... ./collectors/... | tee bench.txt
	bash scripts/benchmedian.sh bench.txt
	bash scripts/collectcost.sh 20
	bash scripts/httpbench.sh
	bash scripts/pagebench.sh
	bash scripts/loadbench.sh

fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

lint:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run $(PKGS)

tidy:
	$(GO) mod tidy
