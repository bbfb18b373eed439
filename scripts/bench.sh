#!/usr/bin/env bash
# bench.sh — pgjet's benchmarks (`make bench`); method and figures in docs/benchmarks.md.
#   1. go test micro benchmarks with -benchmem: pgoutput decode, raw record encode/decode,
#      Assemble, the collector's decode+assemble+marshal path, value conversion, the native
#      envelope, the relay, 1 vs 3 routes in one router; then CPU profiles (pprof -top) of the
#      collector path, the envelope and a router of 3 routes.
#   2. the system benchmark (e2e/cmd/pgjet-bench): throwaway Postgres and nats-server
#      (sync_interval: always), workloads OLTP, bulk, wide rows, TOAST updates; ceiling
#      (pg_recvlogical) vs collector vs router, the router in every envelope and with
#      group: transaction (-envelopes) and the server's publish ceiling; end-to-end latency at a
#      fixed commit rate, per envelope.
# Usage: scripts/bench.sh
#   BENCH_QUICK=1   small sizes, a smoke test of everything (a few minutes)
#   BENCH_OUT=DIR   where results go (default tmp/bench-<time>, gitignored)
#   BENCH_ARGS=...  extra flags for pgjet-bench, e.g. "-workloads oltp,bulk -e2e=false"
#   BENCH_MICRO=0   skip the micro benchmarks;  BENCH_SYSTEM=0  skip the system benchmark
# Everything it starts listens on 127.0.0.1 only, on free ports, and is removed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$PATH:/usr/local/go/bin"
QUICK=${BENCH_QUICK:-0}
OUT=${BENCH_OUT:-$ROOT/tmp/bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
say() { echo "bench: $*" >&2; }

scripts/ensure-postgres.sh
make -s build

if [ "${BENCH_MICRO:-1}" != 0 ]; then
	# Quick mode only checks that every benchmark runs.
	BT=1s RELAY_BT=3x ROUTES_BT=5x
	[ "$QUICK" = 1 ] && BT=100ms RELAY_BT=1x ROUTES_BT=1x
	say "micro benchmarks (-benchtime $BT) -> $OUT/micro.txt"
	{
		go test -run '^$' -bench . -benchmem -benchtime "$BT" \
			./collector/internal/pgoutput ./collector/internal/rawstream ./shared/wire \
			./router/internal/value ./router/internal/envelope ./router/internal/render
		# Each relay iteration starts a server and fills streams: a few suffice.
		go test -run '^$' -bench . -benchmem -benchtime "$RELAY_BT" ./router/internal/relay
		# Routes: one iteration is a round of 1, 3 and 3 disjoint routes, alternating.
		go test -run '^$' -bench 'RoutesAlternating' -benchtime "$ROUTES_BT" ./router/internal/plan
	} 2>&1 | tee "$OUT/micro.txt"

	# pprof needs the test binary next to the profile to name functions.
	say "profiles -> $OUT/*.top.txt"
	go test -run '^$' -bench 'CollectorPathOLTP500' -benchtime "$BT" -cpuprofile "$OUT/collector-path.prof" \
		-o "$OUT/rawstream.test" ./collector/internal/rawstream >/dev/null
	go tool pprof -top -nodecount 30 "$OUT/rawstream.test" "$OUT/collector-path.prof" >"$OUT/collector-path.top.txt" 2>/dev/null
	go tool pprof -top -cum -nodecount 30 "$OUT/rawstream.test" "$OUT/collector-path.prof" >"$OUT/collector-path.cum.txt" 2>/dev/null
	go test -run '^$' -bench 'NativeInsert' -benchtime "$BT" -cpuprofile "$OUT/envelope.prof" \
		-o "$OUT/envelope.test" ./router/internal/envelope >/dev/null
	go tool pprof -top -nodecount 30 "$OUT/envelope.test" "$OUT/envelope.prof" >"$OUT/envelope.top.txt" 2>/dev/null
	# The router's goroutines carry the label side=router; the rest is the in-process server.
	go test -run '^$' -bench '^BenchmarkRoutes$/^routes=3$' -benchtime "$RELAY_BT" -cpuprofile "$OUT/routes3.prof" \
		-o "$OUT/plan.test" ./router/internal/plan >/dev/null
	go tool pprof -top -cum -nodecount 40 "$OUT/plan.test" "$OUT/routes3.prof" >"$OUT/routes3.cum.txt" 2>/dev/null
	go tool pprof -top -cum -tagfocus side=router -nodecount 40 "$OUT/plan.test" "$OUT/routes3.prof" >"$OUT/routes3.router.cum.txt" 2>/dev/null
	head -20 "$OUT/collector-path.top.txt"
fi

if [ "${BENCH_SYSTEM:-1}" != 0 ]; then
	# -envelopes: routers of every envelope and of grouping, alternating in
	# each round (replaces the native / cloudevents rounds), and the
	# publish ceiling of each round; the end-to-end latency of every
	# envelope, outputs with async persistence (with the server's fsync per
	# event a router cannot keep up with 2,000 events/s: docs/benchmarks.md).
	ARGS=(-envelopes -e2e-persist async -e2e-envelopes native,cloudevents,cloudevents-change,debezium)
	[ "$QUICK" = 1 ] && ARGS+=(-quick)
	# perf profiles of the real binaries (separate, untimed runs) when perf works here.
	if [ "$QUICK" != 1 ] && command -v perf >/dev/null && perf record -e cpu-clock -o /dev/null -- true >/dev/null 2>&1; then
		ARGS+=(-profile)
	fi
	# shellcheck disable=SC2206 # BENCH_ARGS is a list of flags
	ARGS+=(${BENCH_ARGS:-})
	say "system benchmark: pgjet-bench ${ARGS[*]} -> $OUT/results.md"
	go run ./e2e/cmd/pgjet-bench -bin "$ROOT/bin" -out "$OUT" "${ARGS[@]}"
fi
say "results in $OUT"
