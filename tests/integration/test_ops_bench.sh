#!/usr/bin/env bash
# tests/integration/test_ops_bench.sh - ops/bench runs end to end and
# writes what its README section promises, so the script cannot rot between
# the runs someone makes by hand:
#   1. `ops/bench --smoke` on the test stack (1000 payments a case, with the
#      binaries of this build) exits 0;
#   2. its JSON has both baselines and every case (stage alone with 1 and 2
#      workers, the pipeline with 1, 2 and 4, latency, relaxed), each with a
#      rate above 0, its ratio to pgbench, the workers' RSS and CPU per
#      payment, deadlocks and retries, and a green verify where one ran;
#   3. the pipeline cases counted every payment of their run through all
#      three stages (decided = published, settled = completed).
# Speed is printed, never asserted: the figures of a smoke run mean nothing.
set -uo pipefail

ROOT="${LL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
BIN="${LL_BIN_DIR:-$ROOT/build-test/bin}"
FAILS=0
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT

ok() { printf 'ok - %s\n' "$1"; }
not_ok() {
  printf 'not ok - %s\n' "$1"
  FAILS=$((FAILS + 1))
}

STACK="${LEDGERLINE_STACK_NAME:-test}"
if LEDGERLINE_BENCH_BUILD_DIR="$(dirname "$BIN")" "$ROOT/ops/bench" --smoke --stack "$STACK" --out "$OUT"; then
  ok "ops/bench --smoke exits 0"
else
  not_ok "ops/bench --smoke failed (see its output above)"
  exit 1
fi

check() { # check DESCRIPTION JQ_EXPRESSION (must print true)
  if [[ "$(jq -r "$2" "$OUT" 2>&1)" == "true" ]]; then ok "$1"; else not_ok "$1: $(jq -c "$2" "$OUT" 2>&1)"; fi
}
check "baselines measured" '.baselines.pgbench_tps > 0 and .baselines.broker_msgs_per_s > 0'
check "every case is there" \
  '[.cases[].case] | sort == (["risk-1","risk-2","payment-1","payment-2","settlement-1","settlement-2","pipeline-1","pipeline-2","pipeline-4","latency","relaxed-2"] | sort)'
check "every case has a rate and its ratio to pgbench" \
  '[.cases[] | .payments_per_s > 0 and .vs_pgbench > 0] | all'
check "every case reports each of its workers' RSS and CPU per payment" \
  '[.cases[] | (.workers | length) > 0 and ([.workers[] | .peak_rss_mib > 0 and .cpu_us_per_payment > 0] | all)] | all'
check "deadlocks and retries are counted for every case" \
  '[.cases[] | (.deadlocks | type) == "number" and (.retries | type) == "number"] | all'
check "verify held wherever it ran" '[.cases[] | .verify_ok != false] | all'
check "the pipeline cases took every payment through the three stages" \
  '[.cases[] | select(.case | startswith("pipeline") or . == "relaxed-2") |
    .outcomes.approved + .outcomes.declined == 1000 and .outcomes.settled == .outcomes.completed] | all'
check "the latency case has percentiles to payment.completed and to settlement" \
  '.cases[] | select(.case == "latency") | .latency_ms.completed.n > 0 and .latency_ms.settled.p99 >= .latency_ms.settled.p50'

if [[ $FAILS -gt 0 ]]; then
  echo "FAIL: $FAILS check(s) of ops/bench failed"
  exit 1
fi
echo "PASS: ops/bench runs and reports every case"
