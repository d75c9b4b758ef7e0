#!/usr/bin/env bash
# tests/integration/test_least_privilege.sh - the RabbitMQ users of
# `ledgerctl users apply` (schemas/users.json) hold only what their role
# needs, proved against the test stack's broker:
#   1. users apply creates the eight users with mode-0600 password files,
#      and a second run keeps the passwords (idempotent);
#   2. the producer user may publish payment.requested and
#      refund.requested (and withdrawal.requested) to ledgerline.commands,
#      but not deposit.received: only the rail user may say money arrived
#      (it may publish deposits and returns, and no payment); the producer
#      is refused (ACCESS_REFUSED) when it
#      publishes to ledgerline.events: a producer cannot forge an approval;
#   3. each worker user may publish its own events only: the risk user may
#      publish payment.approved, the payment, settlement and refund users
#      may not, and no worker user may publish payment.requested or
#      refund.requested;
#   4. every worker kind runs under its own user: it connects, declares the
#      topology, consumes its queue and publishes its outcomes (the risk and
#      payment workers decide the requests and approvals published above,
#      the refund-worker the refund request: refund.failed, no payment)
#      with nothing refused;
#   5. the monitoring user can read `ledgerctl status` and publish nothing;
#   6. a risk or payment worker started without approval keys logs an error
#      that approvals are unsigned, naming the fix, unless
#      signing.allow_unsigned says it is on purpose.
# (A forged, unsigned approval that does reach the payments queue is
# refused by the payment-worker: test_signing.c, and the forged approvals
# of every chaos run, ops/chaos.)
set -uo pipefail

ROOT="${LL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
BIN="${LL_BIN_DIR:-$ROOT/build-test/bin}"
CTL="$BIN/ledgerctl"
FAILS=0
DIR="$(mktemp -d)"
chmod 700 "$DIR"
DB="lp_$$"
cleanup() {
  PGPASSWORD="$(cat "$LEDGERLINE_POSTGRES_PASSWORD_FILE")" psql -qAtX -h "$LEDGERLINE_POSTGRES_HOST" \
    -p "$LEDGERLINE_POSTGRES_PORT" -U "$LEDGERLINE_POSTGRES_USER" -d postgres \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$DIR"
}
trap cleanup EXIT

ok() { printf 'ok - %s\n' "$1"; }
not_ok() {
  printf 'not ok - %s\n' "$1"
  FAILS=$((FAILS + 1))
}

: "${LEDGERLINE_AMQP_PASSWORD_FILE:?run through ops/test (it needs the environment of the test stack)}"
as() { # USER COMMAND...: run as one of the users of `users apply`
  local u="$1"
  shift
  LEDGERLINE_AMQP_USER="$u" LEDGERLINE_AMQP_PASSWORD_FILE="$DIR/$u.password" "$@"
}
publish() { # USER TYPE ID: ledgerctl publish one payment as USER
  as "$1" "$CTL" publish --type "$2" --payment-id "$3" --payer lp-a --payee lp-b --amount 100 \
    --currency EUR
}

# ---- 1. the users ---------------------------------------------------------------------
USERS=(ledgerline-producer ledgerline-rail ledgerline-risk ledgerline-payment ledgerline-settlement ledgerline-refund ledgerline-funds ledgerline-monitor)
if "$CTL" users apply --secrets-dir "$DIR" >"$DIR/apply.out" 2>&1; then ok "users apply exits 0"; else not_ok "users apply: $(cat "$DIR/apply.out")"; fi
for u in "${USERS[@]}"; do
  if [[ -s "$DIR/$u.password" && "$(stat -c %a "$DIR/$u.password")" == 600 ]]; then
    ok "$u has a password file of mode 0600"
  else
    not_ok "$u: no password file of mode 0600"
  fi
done
before="$(cat "$DIR"/*.password | sha256sum)"
"$CTL" users apply --secrets-dir "$DIR" >/dev/null 2>&1
if [[ "$(cat "$DIR"/*.password | sha256sum)" == "$before" ]]; then ok "a second users apply keeps the passwords"; else not_ok "a second users apply changed the passwords"; fi
if "$CTL" users apply --secrets-dir "$DIR/missing" >/dev/null 2>"$DIR/err" || ! grep -q "mkdir" "$DIR/err"; then
  not_ok "users apply with a missing directory must fail naming the fix: $(cat "$DIR/err")"
else
  ok "users apply with a missing directory fails and says how to fix it"
fi

# ---- 2 and 3. who may publish what -------------------------------------------------------
PGPASSWORD="$(cat "$LEDGERLINE_POSTGRES_PASSWORD_FILE")" psql -qAtX -h "$LEDGERLINE_POSTGRES_HOST" \
  -p "$LEDGERLINE_POSTGRES_PORT" -U "$LEDGERLINE_POSTGRES_USER" -d postgres -c "CREATE DATABASE $DB" >/dev/null
export LEDGERLINE_POSTGRES_DBNAME="$DB"
"$CTL" migrate >/dev/null && "$CTL" topology apply >/dev/null

expect_publish() { # WANT(ok|refused) USER TYPE
  local want="$1" u="$2" type="$3" id="lp-$$-$RANDOM"
  if publish "$u" "$type" "$id" >"$DIR/pub.out" 2>&1; then
    if [[ $want == ok ]]; then ok "$u may publish $type"; else not_ok "$u published $type"; fi
  elif [[ $want == refused ]] && grep -q "ACCESS_REFUSED" "$DIR/pub.out" && grep -q "users-and-permissions" "$DIR/pub.out"; then
    ok "$u may not publish $type (ACCESS_REFUSED)"
  else
    not_ok "$u publishing $type: want $want, got: $(cat "$DIR/pub.out")"
  fi
}
expect_publish ok ledgerline-producer payment.requested
expect_publish refused ledgerline-producer payment.approved
expect_publish ok ledgerline-risk payment.approved
expect_publish refused ledgerline-payment payment.approved
expect_publish refused ledgerline-settlement payment.approved
expect_publish refused ledgerline-risk payment.requested
expect_publish refused ledgerline-monitor payment.requested
expect_publish refused ledgerline-monitor payment.approved
expect_publish refused ledgerline-refund payment.approved

expect_refund() { # WANT(ok|refused) USER: ledgerctl refund request as USER
  local want="$1" u="$2"
  if as "$u" "$CTL" refund request "lp-$$-pay" --amount 1 --refund-id "lp-$$-$u" >"$DIR/ref.out" 2>&1; then
    if [[ $want == ok ]]; then ok "$u may publish refund.requested"; else not_ok "$u published refund.requested"; fi
  elif [[ $want == refused ]] && grep -q "ACCESS_REFUSED" "$DIR/ref.out" && grep -q "users-and-permissions" "$DIR/ref.out"; then
    ok "$u may not publish refund.requested (ACCESS_REFUSED)"
  else
    not_ok "$u publishing refund.requested: want $want, got: $(cat "$DIR/ref.out")"
  fi
}
expect_refund ok ledgerline-producer
expect_refund refused ledgerline-refund
expect_refund refused ledgerline-risk

expect_send() { # WANT(ok|refused) USER TYPE BODY: ledgerctl send as USER
  local want="$1" u="$2" type="$3"
  if as "$u" "$CTL" send "$type" "$4" >"$DIR/send.out" 2>&1; then
    if [[ $want == ok ]]; then ok "$u may send $type"; else not_ok "$u sent $type"; fi
  elif [[ $want == refused ]] && grep -q "ACCESS_REFUSED" "$DIR/send.out" && grep -q "users-and-permissions" "$DIR/send.out"; then
    ok "$u may not send $type (ACCESS_REFUSED)"
  else
    not_ok "$u sending $type: want $want, got: $(cat "$DIR/send.out")"
  fi
}
DEP="{\"deposit_id\":\"lp-$$-d\",\"account\":\"lp-a\",\"amount\":1,\"currency\":\"EUR\",\"rail\":\"sepa\",\"rail_reference\":\"r\"}"
WDR="{\"withdrawal_id\":\"lp-$$-w\",\"account\":\"lp-a\",\"amount\":1,\"currency\":\"EUR\",\"rail\":\"sepa\"}"
expect_send refused ledgerline-producer deposit.received "$DEP"
expect_send ok ledgerline-rail deposit.received "$DEP"
expect_send ok ledgerline-producer withdrawal.requested "$WDR"
expect_send refused ledgerline-rail withdrawal.requested "$WDR"
expect_send refused ledgerline-funds deposit.received "$DEP"
expect_publish refused ledgerline-rail payment.requested
expect_publish refused ledgerline-funds payment.approved

# ---- 4. every worker kind under its own user -----------------------------------------------
# (timeout --foreground: without it timeout signals its whole process group
# too, the worker gets SIGTERM twice, and a second signal means "exit now")
for kind in risk payment settlement refund funds; do
  log="$DIR/$kind.log"
  as "ledgerline-$kind" env LEDGERLINE_HTTP_PORT=0 LEDGERLINE_SIGNING_ALLOW_UNSIGNED=true \
    timeout --foreground --preserve-status -s TERM 6 "$BIN/$kind-worker" >"$log" 2>&1
  rc=$?
  if [[ $rc -eq 0 ]] && grep -q 'topology declared' "$log" && grep -q '"consuming' "$log" &&
    ! grep -q ACCESS_REFUSED "$log" &&
    { [[ $kind == settlement ]] || grep -q 'stopped after [1-9]' "$log"; }; then
    ok "the $kind-worker runs as ledgerline-$kind: topology declared, consuming, nothing refused"
  else
    not_ok "the $kind-worker as ledgerline-$kind (exit $rc): $(grep -v '"debug"' "$log" | tail -3)"
  fi
done

# ---- 5. the monitoring user ---------------------------------------------------------------
if as ledgerline-monitor "$CTL" status --json >"$DIR/status.json" 2>"$DIR/status.err" ||
  jq -e '.queues | length > 0' "$DIR/status.json" >/dev/null 2>&1; then
  if jq -e '[.queues[] | .name] | index("risk") != null' "$DIR/status.json" >/dev/null 2>&1; then
    ok "the monitoring user reads ledgerctl status (queues included)"
  else
    not_ok "ledgerctl status as ledgerline-monitor shows no queues: $(head -c 300 "$DIR/status.json") $(cat "$DIR/status.err")"
  fi
else
  not_ok "ledgerctl status as ledgerline-monitor: $(cat "$DIR/status.err")"
fi

# ---- 6. unsigned approvals are loud unless on purpose ------------------------------------
for kind in risk payment; do
  as "ledgerline-$kind" env LEDGERLINE_HTTP_PORT=0 timeout --foreground --preserve-status -s TERM 2 \
    "$BIN/$kind-worker" >"$DIR/$kind-unsigned.log" 2>&1
  if grep '"level":"error"' "$DIR/$kind-unsigned.log" | grep -q 'APPROVALS ARE UNSIGNED.*ledgerctl keys generate'; then
    ok "a $kind-worker without approval keys logs an error naming the fix"
  else
    not_ok "a $kind-worker without approval keys did not say so: $(grep -v '"debug"' "$DIR/$kind-unsigned.log" | head -3)"
  fi
  if grep -q 'APPROVALS ARE UNSIGNED' "$DIR/$kind.log" || ! grep -q 'unsigned on purpose' "$DIR/$kind.log"; then
    not_ok "with signing.allow_unsigned the $kind-worker should only note it"
  else
    ok "with signing.allow_unsigned=true the $kind-worker notes unsigned approvals without an error"
  fi
done

# the messages this test published must not reach other tests' workers
ERL_EPMD_PORT="$LEDGERLINE_STACK_EPMD_PORT" rabbitmqctl -q -n "$LEDGERLINE_STACK_RABBITMQ_NODE" \
  purge_queue risk >/dev/null 2>&1
ERL_EPMD_PORT="$LEDGERLINE_STACK_EPMD_PORT" rabbitmqctl -q -n "$LEDGERLINE_STACK_RABBITMQ_NODE" \
  purge_queue payments >/dev/null 2>&1
ERL_EPMD_PORT="$LEDGERLINE_STACK_EPMD_PORT" rabbitmqctl -q -n "$LEDGERLINE_STACK_RABBITMQ_NODE" \
  purge_queue refunds >/dev/null 2>&1
ERL_EPMD_PORT="$LEDGERLINE_STACK_EPMD_PORT" rabbitmqctl -q -n "$LEDGERLINE_STACK_RABBITMQ_NODE" \
  purge_queue funds >/dev/null 2>&1

[[ $FAILS -eq 0 ]] || { echo "$FAILS check(s) failed"; exit 1; }
echo "all checks passed"
