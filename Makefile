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
# Minimizing a new corpus entry may take a minute by default, stalling a short run.
FUZZMINIMIZE ?= 1000x

.PHONY: build test fuzz demo lint clean bench test-faults test-versions deploy-tools

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./collector/cmd/pgjet-collector ./router/cmd/pgjet-router
	@# nats-server at exactly the version e2e/go.mod pins, so tests run against what we ship with.
	cd e2e && $(GO) build -o $(BIN)/nats-server github.com/nats-io/nats-server/v2

test:
	scripts/ensure-postgres.sh
	@$(MAKE) --no-print-directory deploy-tools
	@$(MAKE) --no-print-directory build
	$(GO) test -count=1 -timeout 20m $(PKGS)
	$(if $(strip $(FUZZ)),@$(MAKE) --no-print-directory fuzz)

# systemd-analyze, with which e2e/deploy verifies deploy/systemd/*.service (offline: no
# running systemd needed). As root (CI) it is installed when missing; without root the test
# skips those checks and says so.
deploy-tools:
	@if ! command -v systemd-analyze >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's systemd package for systemd-analyze (deploy/systemd checks)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null || exit 1; \
		else \
			echo "WARNING: systemd-analyze is missing: e2e/deploy will NOT verify deploy/systemd/*.service" >&2; \
			echo "  install it with: sudo apt-get install -y systemd" >&2; \
		fi; \
	fi

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
# repo). One variable, PGJET_PG_VERSION, picks the version for any test run.
PG_VERSIONS ?= 15 17 18

test-versions:
	scripts/ensure-postgres.sh
	@$(MAKE) --no-print-directory build
	@for v in $(PG_VERSIONS); do \
		if [ ! -x /usr/lib/postgresql/$$v/bin/initdb ]; then scripts/pg-rootfs.sh $$v || exit 1; fi; \
		echo "== PostgreSQL $$v"; \
		PGJET_PG_VERSION=$$v $(GO) test -count=1 -timeout 40m github.com/pgjet/pgjet/shared/pgtest/... github.com/pgjet/pgjet/e2e/pipeline/... || exit 1; \
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

lint:
	@out=$$(gofmt -l $(MODULES)); \
	if [ -n "$$out" ]; then echo "gofmt -l lists files to format:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf $(BIN)
