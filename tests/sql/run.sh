#!/usr/bin/env bash
# tests/sql/run.sh LEDGERCTL FILE.sql - one SQL-level suite (pgTAP) against
# a freshly migrated database of its own: creates it, `ledgerctl migrate`,
# CREATE EXTENSION pgtap, runs FILE with psql (stop at the first SQL error)
# in one session after the shared helpers of tests/sql/lib/*.sql,
# drops it. Passes when the TAP output has its plan, as many "ok" lines as
# planned and no "not ok"; otherwise prints every failed test (its
# description names the rule it checks) and the diagnostics.
# Needs the stack's environment (LEDGERLINE_POSTGRES_*), as every stack
# suite: ./ops/test exports it.
set -euo pipefail
ctl=$1
file=$2
: "${LEDGERLINE_POSTGRES_HOST:?run under ./ops/test, or export the stack: eval \"\$(./ops/stack env)\"}"
PGPASSWORD="$(cat "$LEDGERLINE_POSTGRES_PASSWORD_FILE")"
export PGPASSWORD
psql_() {
  psql -X -q -v ON_ERROR_STOP=1 -h "$LEDGERLINE_POSTGRES_HOST" -p "$LEDGERLINE_POSTGRES_PORT" \
    -U "$LEDGERLINE_POSTGRES_USER" "$@"
}
db="llsql_$$_$(basename "$file" .sql)"
cleanup() { psql_ -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; }
trap cleanup EXIT
psql_ -d postgres -c "CREATE DATABASE $db" >/dev/null
LEDGERLINE_POSTGRES_DBNAME=$db "$ctl" migrate >/dev/null
psql_ -d "$db" -c "CREATE EXTENSION pgtap" >/dev/null 2>&1 || {
  echo "pgTAP is not installed: apt-get install postgresql-15-pgtap (ops/lib/common.sh installs it)"
  exit 1
}
lib=()
for f in "$(dirname "$0")"/lib/*.sql; do lib+=(-f "$f"); done
out=$(psql_ -d "$db" -A -t "${lib[@]}" -f "$file" 2>&1) || {
  printf '%s\n' "$out"
  echo "FAIL $file: an SQL error stopped it (above)"
  exit 1
}
plan=$(printf '%s\n' "$out" | sed -n 's/^1\.\.\([0-9][0-9]*\)$/\1/p' | head -1)
oks=$(printf '%s\n' "$out" | grep -c '^ok ' || true)
bad=$(printf '%s\n' "$out" | grep -A8 '^not ok ' || true)
if [[ -z "$plan" || -n "$bad" || "$oks" -ne "$plan" ]]; then
  printf '%s\n' "$out"
  echo "FAIL $file: plan ${plan:-missing}, $oks ok${bad:+, failed tests above}"
  exit 1
fi
echo "ok $file: $oks tests"
