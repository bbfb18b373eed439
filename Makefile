# pgjet — build, test, demo, lint.
# Go may live outside PATH on a fresh machine (the official tarball's location).
export PATH := $(PATH):/usr/local/go/bin

GO ?= go
BIN := $(CURDIR)/bin
# The e2e tests run the binaries built here, not whatever is on PATH.
export PGJET_BIN_DIR := $(BIN)

MODULES := shared collector router e2e
PKGS := $(foreach m,$(MODULES),github.com/pgjet/pgjet/$(m)/...)

# FUZZ lists fuzz targets that `make test` runs briefly, as package:FuzzName, e.g.
#   make test FUZZ="github.com/pgjet/pgjet/shared/wire:FuzzDecode" FUZZTIME=30s
# (go test -fuzz accepts one package and one target per run.)
# CI runs each for a fixed number of inputs (a few seconds): Go before 1.27 can fail a
# duration-limited run with a spurious "context deadline exceeded" when its deadline
# races a busy worker (golang/go#75804); a count has no deadline. Run longer locally:
# make fuzz FUZZTIME=5m
FUZZ ?= github.com/pgjet/pgjet/shared/wire:FuzzUnmarshal \
	github.com/pgjet/pgjet/collector/internal/pgoutput:FuzzHandle \
	github.com/pgjet/pgjet/collector/internal/pgoutput:FuzzRowsMatchPglogrepl \
	github.com/pgjet/pgjet/router/internal/value:FuzzAppendJSON \
	github.com/pgjet/pgjet/router/internal/value:FuzzAppendString \
	github.com/pgjet/pgjet/router/internal/value:FuzzValidJSON \
	github.com/pgjet/pgjet/router/internal/envelope:FuzzNativeHostileContent \
	github.com/pgjet/pgjet/router/internal/envelope:FuzzCloudEventsHostileContent \
	github.com/pgjet/pgjet/router/internal/envelope:FuzzMsgpackTranscode \
	github.com/pgjet/pgjet/router/internal/envelope:FuzzDebeziumHostileContent
FUZZTIME ?= 20000x
# RACE lists the packages whose goroutines share state (the raw publisher and
# its acks, the checkpoint, the session loop, snapshot progress and the backfill
# engine, the router's relay): `make test`
# runs their tests again with the race detector.
RACE ?= github.com/pgjet/pgjet/collector/internal/rawstream \
	github.com/pgjet/pgjet/collector/internal/checkpoint \
	github.com/pgjet/pgjet/collector/internal/replication \
	github.com/pgjet/pgjet/collector/internal/session \
	github.com/pgjet/pgjet/collector/internal/snapshot \
	github.com/pgjet/pgjet/collector/internal/backfill \
	github.com/pgjet/pgjet/router/internal/relay

# Minimizing a new corpus entry may take a minute by default, stalling a short run.
FUZZMINIMIZE ?= 1000x

.PHONY: build test test-race fuzz demo lint clean bench bench-charts test-faults test-versions deploy-tools consumer-tools

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./collector/cmd/pgjet-collector ./collector/cmd/pgjet ./router/cmd/pgjet-router
	@# nats-server at exactly the version e2e/go.mod pins, so tests run against what we ship with.
	cd e2e && $(GO) build -o $(BIN)/nats-server github.com/nats-io/nats-server/v2

test:
	@$(MAKE) --no-print-directory lint
	scripts/ensure-postgres.sh
	@$(MAKE) --no-print-directory deploy-tools
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory consumer-tools
	$(GO) test -count=1 -timeout 20m $(PKGS)
	@$(MAKE) --no-print-directory test-race
	$(if $(strip $(FUZZ)),@$(MAKE) --no-print-directory fuzz)

test-race:
	$(GO) test -race -count=1 -timeout 10m $(RACE)

# Tools some tests check files with, as command:Debian package: systemd-analyze verifies
# deploy/systemd/*.service (offline: no running systemd needed), promtool (prometheus) checks
# and unit-tests deploy/monitoring/alerts.yaml, zsh checks the binaries' zsh completion. As
# root (CI) they are installed when missing; without root those tests skip and say so.
DEPLOY_TOOLS := systemd-analyze:systemd promtool:prometheus zsh:zsh
deploy-tools:
	@missing=""; for t in $(DEPLOY_TOOLS); do command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t##*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's$$missing (checks of deploy files and completion scripts)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
		else \
			echo "WARNING: missing$$missing: some checks of e2e/deploy and shared/help will be SKIPPED" >&2; \
			echo "  install them with: sudo apt-get install -y$$missing" >&2; \
		fi; \
	fi

# What e2e/consumers runs the examples of docs/consumers.md with: Node.js and the npm
# packages pinned in e2e/consumers/node/package-lock.json (npm ci, from npm's cache when it
# holds them), and the nats CLI at the version e2e/go.mod pins (bin/nats). As root, Debian's
# nodejs and npm are installed when node is missing.
NODE_EXAMPLES := e2e/consumers/node
consumer-tools:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's nodejs and npm (docs/consumers.md examples)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null || exit 1; \
		else \
			echo "node and npm are missing: install Node.js 18+ (e.g. sudo apt-get install -y nodejs npm)" >&2; exit 1; \
		fi; \
	fi
	@if [ ! -f $(NODE_EXAMPLES)/node_modules/.package-lock.json ] || [ $(NODE_EXAMPLES)/package-lock.json -nt $(NODE_EXAMPLES)/node_modules/.package-lock.json ]; then \
		echo "npm ci in $(NODE_EXAMPLES)"; \
		cd $(NODE_EXAMPLES) && npm ci --prefer-offline --no-audit --no-fund --loglevel=error; \
	fi
	@mkdir -p $(BIN)
	cd e2e && $(GO) build -o $(BIN)/nats github.com/nats-io/natscli/nats

# The full fault suite (e2e/faults): 20 kills each of collector and router, a 30 s NATS
# outage, 1,000,000-row transactions... `make test` runs the same scenarios, smaller.
# The failover tests need failover slots (PostgreSQL 17+): they run again on FAILOVER_PG.
FAILOVER_PG ?= 17

test-faults:
	scripts/ensure-postgres.sh
	@$(MAKE) --no-print-directory build
	PGJET_FAULTS=full $(GO) test -count=1 -timeout 60m -v github.com/pgjet/pgjet/e2e/faults
	@if [ ! -x /usr/lib/postgresql/$(FAILOVER_PG)/bin/initdb ]; then scripts/pg-rootfs.sh $(FAILOVER_PG) || exit 1; fi
	PGJET_PG_VERSION=$(FAILOVER_PG) PGJET_FAULTS=full $(GO) test -count=1 -timeout 30m -v -run '^TestFailover' github.com/pgjet/pgjet/e2e/faults

# The PostgreSQL majors `make test-versions` runs the e2e pipeline suite on: the host's own
# (Debian bookworm packages 15) and newer ones from Debian root filesystems that
# scripts/pg-rootfs.sh builds once (debootstrap, about 5 minutes each, cached outside the
# repo). One variable, PGJET_PG_VERSION, picks the version for any test run. With the e2e
# suite run pgtest and the collector's packages that talk to Postgres. The differences found
# are listed in docs/postgres.md (Versions).
PG_VERSIONS ?= 15 17 18
VERSION_PKGS := github.com/pgjet/pgjet/shared/pgtest/... \
	github.com/pgjet/pgjet/collector/internal/session/... \
	github.com/pgjet/pgjet/collector/internal/heartbeat/... \
	github.com/pgjet/pgjet/collector/internal/pubwatch/... \
	github.com/pgjet/pgjet/collector/internal/ddlcapture/... \
	github.com/pgjet/pgjet/e2e/pipeline/...
# Fault tests whose outcome depends on the version (PostgreSQL 18 warns and skips where 15-17
# fail: a dropped publication; invalidation reasons differ).
VERSION_FAULTS := '^(TestPublicationRecreated|TestSlotInvalidated|TestSlotInvalidatedAutoRecreate)$$'

test-versions:
	scripts/ensure-postgres.sh
	@$(MAKE) --no-print-directory build
	@for v in $(PG_VERSIONS); do \
		if [ ! -x /usr/lib/postgresql/$$v/bin/initdb ]; then scripts/pg-rootfs.sh $$v || exit 1; fi; \
		echo "== PostgreSQL $$v"; \
		PGJET_PG_VERSION=$$v $(GO) test -count=1 -timeout 40m $(VERSION_PKGS) || exit 1; \
		PGJET_PG_VERSION=$$v $(GO) test -count=1 -timeout 10m -run $(VERSION_FAULTS) github.com/pgjet/pgjet/e2e/faults || exit 1; \
	done

fuzz:
	@for f in $(FUZZ); do \
		pkg=$${f%%:*}; name=$${f##*:}; \
		echo "fuzz $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$pkg || exit 1; \
	done

demo:
	scripts/demo.sh

# Micro and system benchmarks; BENCH_QUICK=1 for a smoke run. See docs/benchmarks.md.
bench:
	scripts/bench.sh

# The charts of docs/benchmarks.md (SVG), drawn from a run's results:
#   make bench-charts BENCH_RESULTS=tmp/bench-<time>/results.json
# keeps that file as docs/benchmarks/results.json, from which a plain `make bench-charts` redraws.
BENCH_RESULTS ?= docs/benchmarks/results.json
bench-charts:
	@mkdir -p docs/benchmarks
	@if [ "$(abspath $(BENCH_RESULTS))" != "$(abspath docs/benchmarks/results.json)" ]; then cp "$(BENCH_RESULTS)" docs/benchmarks/results.json; fi
	cd e2e && $(GO) run ./cmd/pgjet-bench -charts ../docs/benchmarks/results.json -chart-dir ../docs/benchmarks

lint:
	@out=$$(gofmt -l $(MODULES)); \
	if [ -n "$$out" ]; then echo "gofmt -l lists files to format:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf $(BIN)
