# The Makefile is livedash's interface: `make run` and `make test` work on a
# fresh machine; CI runs `.ci/run`, which is `make test`.
GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 20s
BENCHCOUNT ?= 5

# What `make build` stamps into the binary (`livedash version`,
# /api/v1/status). The date is the commit's, in UTC, so that building the same
# commit twice gives the same binary.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
DATE      ?= $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
LDFLAGS   ?= -X main.buildVersion=$(VERSION) -X main.buildCommit=$(COMMIT) -X main.buildDate=$(DATE)
BINDIR    ?= bin
RUNFLAGS  ?=

.PHONY: run demo test test-deps assets bench fuzz lint tidy build server

# Builds the page (pinned uPlot from npm) and the binary, then starts it on
# the built-in defaults: listen 127.0.0.1:7070, store under ./data/ (or
# $XDG_STATE_HOME). exec replaces make's shell with livedash, so livedash is
# make's own child and the signal that stops make (Ctrl-C, `kill %1`) stops
# it too, cleanly: nothing is left holding the port or the store's lock.
# RUNFLAGS adds flags: make run RUNFLAGS='--config my.yaml'.
run: server
	exec $(BINDIR)/livedash serve $(RUNFLAGS)

demo: server
	exec $(BINDIR)/livedash serve --demo $(RUNFLAGS)

# Binaries in $(BINDIR): livedash, stamped, and the load tool livedash-bench.
build: server
	$(GO) build -o $(BINDIR)/livedash-bench ./cmd/livedash-bench

server: assets
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BINDIR)/livedash ./cmd/livedash

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
# pipefail: a failing benchmark fails make bench, tee or not.
bench: test-deps
	@command -v wrk >/dev/null 2>&1 || { \
		echo "installing wrk for the HTTP benchmark"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	bash -o pipefail -c '$(GO) test -run "^$$" -bench . -benchmem -count $(BENCHCOUNT) ./dashboard/... ./collectors/... | tee bench.txt'
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
