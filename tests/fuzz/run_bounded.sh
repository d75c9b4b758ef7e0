#!/usr/bin/env bash
# tests/fuzz/run_bounded.sh - a bounded libFuzzer run of every harness, for
# CI: builds the instrumented tree (clang, LEDGERLINE_FUZZ: every object
# coverage-instrumented, ASan + UBSan) in build-fuzz/, then fuzzes each
# tests/fuzz/fuzz_*.c for LEDGERLINE_FUZZ_SECONDS (default 20) from a copy
# of its seed corpus. A crash, leak or sanitizer report fails the run and
# names the reproducer; make it a seed of tests/fuzz/corpus/<harness>/ (the
# fuzz.<harness> replay then keeps it fixed) and fix the code. Without
# clang it FAILS, naming the package.
set -uo pipefail

ROOT="${LL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
BUILD="${LEDGERLINE_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
SECONDS_EACH="${LEDGERLINE_FUZZ_SECONDS:-20}"
command -v clang >/dev/null || {
  echo "FAIL: clang is not installed (fix: apt-get install -y clang libclang-rt-14-dev; ops/test installs them)"
  exit 1
}
mkdir -p "$BUILD"
if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
  -DLEDGERLINE_FUZZ=ON >"$BUILD/configure.log" 2>&1 &&
  cmake --build "$BUILD" -j2 --target fuzz_msg fuzz_settings fuzz_keyring >"$BUILD/build.log" 2>&1; }; then
  echo "FAIL: the fuzz build failed: $(tail -5 "$BUILD/build.log" 2>/dev/null || tail -5 "$BUILD/configure.log")"
  exit 1
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
fails=0
for src in "$ROOT"/tests/fuzz/fuzz_*.c; do
  name="$(basename "$src" .c)"
  mkdir -p "$WORK/$name"
  cp "$ROOT/tests/fuzz/corpus/$name"/* "$WORK/$name/"
  if (cd "$WORK" && "$BUILD/bin/$name" -max_total_time="$SECONDS_EACH" -max_len=8192 \
    -print_final_stats=1 "$WORK/$name" >"$WORK/$name.log" 2>&1); then
    printf 'ok - %s: %s runs in %s s, no crash\n' "$name" \
      "$(awk '/stat::number_of_executed_units/ { print $2 }' "$WORK/$name.log")" "$SECONDS_EACH"
  else
    fails=$((fails + 1))
    cp "$WORK"/crash-* "$WORK"/leak-* "$WORK"/timeout-* "$ROOT/" 2>/dev/null
    printf 'not ok - %s found a crash (reproducer copied to %s/):\n' "$name" "$ROOT"
    grep -E "ERROR|SUMMARY|Test unit written" "$WORK/$name.log" | head -5
  fi
done
[[ $fails -eq 0 ]] || exit 1
echo "PASS"
