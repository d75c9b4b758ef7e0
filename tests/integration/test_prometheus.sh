#!/usr/bin/env bash
# tests/integration/test_prometheus.sh - the dashboard shows real data: on
# the test stack, with the stack's own Prometheus scraping,
#   1. one risk-, payment-, settlement-, refund- and funds-worker start on
#      free ports of their own (a fresh ledger; 2-second settlement windows
#      so batches close during the test), announced to Prometheus through a
#      file_sd target file in the stack's targets folder; each is scraped
#      (up == 1) and ready (ledgerline_ready == 1);
#   2. known traffic goes through: valid payments end to end with
#      `ledgerctl publish`, a duplicate (same payload), an idempotency
#      conflict (same id, another amount), two raw messages published
#      through the management API that no codec accepts (malformed JSON, a
#      string amount) and, once the payments are settled, a refund of one
#      of them (refund.requested through the management API) and a deposit
#      to the payer (deposit.received, as a rail adapter publishes it);
#   3. every target expr of every panel of ops/grafana/dashboards/
#      ledgerline.json (read from the JSON, so a new panel is tested without
#      touching this file; $stage is All, $instance is these workers) is
#      evaluated through Prometheus's HTTP API (/api/v1/query) and must
#      return data: a non-empty result with a value that is a number;
#   4. the traffic is what those panels see: every stage (refund and
#      funds too) acked, risk rejected malformed_json, schema_violation and
#      idempotency_conflict and parked them, duplicates were replayed, a
#      settlement batch closed;
#   5. `promtool check metrics` accepts each worker's /metrics.
# Bounded: tens of messages, under 3 minutes. Without the stack's
# environment it FAILS (it never skips).
set -uo pipefail

ROOT="${LL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
BIN="${LL_BIN_DIR:-$ROOT/build-test/bin}"
DASH="$ROOT/ops/grafana/dashboards/ledgerline.json"
FAILS=0
T0=$SECONDS
LIMIT=170 # seconds for the whole test (ctest allows more; the brief is < 3 min)

ok() { printf 'ok - %s\n' "$1"; }
not_ok() {
  printf 'not ok - %s\n' "$1"
  FAILS=$((FAILS + 1))
}
finish() {
  if [[ $FAILS -ne 0 ]]; then
    echo "FAIL: $FAILS check(s) failed ($((SECONDS - T0)) s)"
    exit 1
  fi
  echo "PASS ($((SECONDS - T0)) s)"
  exit 0
}
die() { # a step everything after depends on failed
  not_ok "$1"
  finish
}
left() { echo $((T0 + LIMIT - SECONDS)); }

NEEDED=(LEDGERLINE_STACK_NAME LEDGERLINE_STACK_PROMETHEUS_URL LEDGERLINE_STACK_PROMETHEUS_TARGETS_DIR
  LEDGERLINE_AMQP_MANAGEMENT_URL LEDGERLINE_AMQP_USER LEDGERLINE_AMQP_PASSWORD_FILE
  LEDGERLINE_POSTGRES_HOST LEDGERLINE_POSTGRES_PORT LEDGERLINE_POSTGRES_USER
  LEDGERLINE_POSTGRES_PASSWORD_FILE LEDGERLINE_POSTGRES_DBNAME)
missing=()
for v in "${NEEDED[@]}"; do
  [[ -n "${!v:-}" ]] || missing+=("$v")
done
if [[ ${#missing[@]} -ne 0 ]]; then
  echo "FAIL: the stack environment is missing (${missing[*]})."
  echo "      Run this test under ./ops/test (e.g. ./ops/test -R prometheus), which starts the"
  echo "      'test' stack and exports its environment; or by hand:"
  echo "      ops/stack --name test up && eval \"\$(ops/stack --name test env)\" && bash $0"
  exit 1
fi
for tool in jq:jq promtool:prometheus psql:postgresql-client ss:iproute2 base64:coreutils; do
  command -v "${tool%%:*}" >/dev/null 2>&1 ||
    die "'${tool%%:*}' is not installed (fix: apt-get install -y ${tool#*:}, or ./ops/test, which installs the project's packages)"
done
for b in ledgerctl risk-worker payment-worker settlement-worker refund-worker funds-worker; do
  [[ -x "$BIN/$b" ]] || die "$BIN/$b is not built (fix: cmake --build $(dirname "$BIN"), or set LL_BIN_DIR)"
done

# --- HTTP, in plain bash (no HTTP client is among the project's packages) -------
# http METHOD URL [BODY [USER:PASSWORD]]: the body of the answer on stdout;
# HTTP_CODE (a file, since callers run this in $(...)) gets the status.
TMP="$(mktemp -d)"
HTTP_CODE_FILE="$TMP/http_code"
http() {
  local method="$1" url="$2" body="${3:-}" auth="${4:-}" hostport path fd line code=""
  hostport="${url#http://}"
  path="/${hostport#*/}"
  [[ "$hostport" == */* ]] || path=/
  hostport="${hostport%%/*}"
  : >"$HTTP_CODE_FILE"
  { exec {fd}<>"/dev/tcp/${hostport%:*}/${hostport##*:}"; } 2>/dev/null || return 1
  {
    printf '%s %s HTTP/1.0\r\nHost: %s\r\n' "$method" "$path" "$hostport"
    [[ -n "$auth" ]] && printf 'Authorization: Basic %s\r\n' "$(printf '%s' "$auth" | base64 -w0)"
    [[ -n "$body" ]] && printf 'Content-Type: application/json\r\n'
    printf 'Content-Length: %d\r\n\r\n%s' "${#body}" "$body"
  } >&"$fd"
  IFS= read -r -t 15 -u "$fd" line || true
  [[ "$line" =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]] && code="${BASH_REMATCH[1]}"
  printf '%s' "$code" >"$HTTP_CODE_FILE"
  while IFS= read -r -t 15 -u "$fd" line && [[ -n "${line%$'\r'}" ]]; do :; done
  timeout 15 cat <&"$fd"
  exec {fd}>&-
  [[ "$code" == 2* ]]
}
http_code() { cat "$HTTP_CODE_FILE"; }

PROM="$LEDGERLINE_STACK_PROMETHEUS_URL"
# query EXPR: the JSON answer of /api/v1/query (instant, now)
query() { http GET "$PROM/api/v1/query?query=$(jq -rn --arg q "$1" '$q | @uri')"; }
# query_ok EXPR: 0 when the answer has a sample whose value is a number
query_ok() {
  query "$1" 2>/dev/null | jq -e '.status == "success" and
    ([.data.result[] | .value[1] | select(. != "NaN")] | length > 0)' >/dev/null 2>&1
}
# wait_query SECONDS EXPR: polls until query_ok
wait_query() {
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    query_ok "$2" && return 0
    sleep 1
  done
  return 1
}

MGMT_AUTH="$LEDGERLINE_AMQP_USER:$(cat "$LEDGERLINE_AMQP_PASSWORD_FILE")"
mgmt() { http "$1" "$LEDGERLINE_AMQP_MANAGEMENT_URL$2" "${3:-}" "$MGMT_AUTH"; }

psql_stack() {
  PGPASSWORD="$(cat "$LEDGERLINE_POSTGRES_PASSWORD_FILE")" PGCONNECT_TIMEOUT=10 psql -X -q -tA \
    -h "$LEDGERLINE_POSTGRES_HOST" -p "$LEDGERLINE_POSTGRES_PORT" -U "$LEDGERLINE_POSTGRES_USER" \
    -d "$LEDGERLINE_POSTGRES_DBNAME" -v ON_ERROR_STOP=1 "$@"
}

# --- setup: a fresh ledger, the work queues empty, five workers ------------------
DB="llt_prom_$$"
TAG="prom-$$-$(date +%s)" # payment and account ids: Redis is shared by every test
SD_FILE="$LEDGERLINE_STACK_PROMETHEUS_TARGETS_DIR/test_prometheus-$$.json"
declare -A WPID=() WPORT=()
KINDS=(risk payment settlement refund funds)

# shellcheck disable=SC2317 # reachable: the EXIT trap runs it
cleanup() {
  local k deadline
  rm -f "$SD_FILE"
  for k in "${!WPID[@]}"; do kill -TERM "${WPID[$k]}" 2>/dev/null || true; done
  deadline=$((SECONDS + 20))
  for k in "${!WPID[@]}"; do
    while kill -0 "${WPID[$k]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL "${WPID[$k]}" 2>/dev/null || true
    wait "${WPID[$k]}" 2>/dev/null || true
  done
  psql_stack -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT

ctl() { LEDGERLINE_POSTGRES_DBNAME="$DB" "$BIN/ledgerctl" "$@"; }
# dump_logs: the tail of each worker's log (on a failure)
dump_logs() {
  local k
  for k in "${KINDS[@]}"; do
    [[ -f "$TMP/$k.log" ]] || continue
    echo "--- last 20 lines of the $k-worker log ---"
    tail -n 20 "$TMP/$k.log"
  done
}

psql_stack -c "CREATE DATABASE $DB TEMPLATE template0" >/dev/null || die "could not create database $DB"
out="$(ctl migrate 2>&1)" || die "ledgerctl migrate on $DB failed: $out"
out="$(ctl topology apply 2>&1)" || die "ledgerctl topology apply failed: $out"
for q in risk payments settlement refunds funds; do
  mgmt DELETE "/api/queues/%2F/$q/contents" >/dev/null || die "could not purge queue $q (HTTP $(http_code))"
done
out="$( (ctl account create "$TAG-payer" --currency EUR &&
  ctl account fund "$TAG-payer" 10000000 --ref "$TAG-fund" &&
  ctl account create "$TAG-shop" --currency EUR --kind merchant --fee-bps 100 --fee-fixed 5) 2>&1)" ||
  die "could not create the accounts: $out"

# five free ports, outside the ports ops/workers uses (the stack's
# Prometheus scrapes those too, under another job)
free() { [[ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]; }
for _ in 1 2 3 4 5 6 7 8 9 10; do
  base=$((20000 + RANDOM % 12000)) # below the ephemeral range (32768..)
  free "$base" && free $((base + 1)) && free $((base + 2)) && free $((base + 3)) &&
    free $((base + 4)) && break
done
i=0
for k in "${KINDS[@]}"; do
  WPORT[$k]=$((base + i))
  i=$((i + 1))
done
OURS="127.0.0.1:(${WPORT[risk]}|${WPORT[payment]}|${WPORT[settlement]}|${WPORT[refund]}|${WPORT[funds]})" # $instance

for k in "${KINDS[@]}"; do
  LEDGERLINE_POSTGRES_DBNAME="$DB" LEDGERLINE_HTTP_PORT="${WPORT[$k]}" \
    LEDGERLINE_WORKER_INSTANCE="$TAG-$k" LEDGERLINE_SETTLEMENT_WINDOW_S=2 \
    LEDGERLINE_SETTLEMENT_GRACE_MS=500 LEDGERLINE_SETTLEMENT_CLOSE_INTERVAL_MS=200 \
    "$BIN/$k-worker" >"$TMP/$k.log" 2>&1 &
  WPID[$k]=$!
done
printf '[{"targets": ["127.0.0.1:%s"], "labels": {"worker": "risk-worker"}},
 {"targets": ["127.0.0.1:%s"], "labels": {"worker": "payment-worker"}},
 {"targets": ["127.0.0.1:%s"], "labels": {"worker": "settlement-worker"}},
 {"targets": ["127.0.0.1:%s"], "labels": {"worker": "refund-worker"}},
 {"targets": ["127.0.0.1:%s"], "labels": {"worker": "funds-worker"}}]\n' \
  "${WPORT[risk]}" "${WPORT[payment]}" "${WPORT[settlement]}" "${WPORT[refund]}" "${WPORT[funds]}" \
  >"$SD_FILE.tmp" &&
  mv -f "$SD_FILE.tmp" "$SD_FILE"

for k in "${KINDS[@]}"; do
  i="127.0.0.1:${WPORT[$k]}"
  if wait_query 40 "up{job=\"ledgerline\", instance=\"$i\"} == 1 and on (instance) ledgerline_ready{instance=\"$i\"} == 1"; then
    ok "$k-worker on $i is scraped by the stack's Prometheus (file_sd) and ready"
  else
    for w in "${KINDS[@]}"; do kill -0 "${WPID[$w]}" 2>/dev/null || echo "($w-worker exited)"; done
    dump_logs
    die "$k-worker on $i is not scraped and ready within 40 s (targets: $(http GET "$PROM/api/v1/targets" | jq -c '[.data.activeTargets[] | select(.labels.job == "ledgerline") | {i: .labels.instance, h: .health, e: .lastError}]'))"
  fi
done
sleep 3 # one more scrape: every counter has a sample from before the traffic

# --- traffic ---------------------------------------------------------------------
# Two waves a few scrapes apart: a histogram's series appears with its
# first observation, so rate() sees only what comes after the first scrape
# that found it; the second wave also lands in a later 2-second settlement
# window, so a second batch closes.
N=8
sent=0
pay() { # N: payment TAG-N of 1000 + N cents
  ctl publish --payer "$TAG-payer" --payee "$TAG-shop" --amount $((1000 + $1)) --currency EUR \
    --payment-id "$TAG-$1" >/dev/null 2>&1 && sent=$((sent + 1))
}
for ((n = 1; n <= N / 2; n++)); do pay "$n"; done
sleep 5
for ((n = N / 2 + 1; n <= N; n++)); do pay "$n"; done
dup_ok=0
ctl publish --payer "$TAG-payer" --payee "$TAG-shop" --amount 1001 --currency EUR \
  --payment-id "$TAG-1" >/dev/null 2>&1 && dup_ok=$((dup_ok + 1)) # same payload: a duplicate
ctl publish --payer "$TAG-payer" --payee "$TAG-shop" --amount 9999 --currency EUR \
  --payment-id "$TAG-2" >/dev/null 2>&1 && dup_ok=$((dup_ok + 1)) # another payload: a conflict
raw() { # BODY: published to ledgerline.commands as it is
  mgmt POST /api/exchanges/%2F/ledgerline.commands/publish "$(jq -cn --arg p "$1" \
    '{properties: {content_type: "application/json", delivery_mode: 2, type: "payment.requested"},
      routing_key: "payment.requested", payload: $p, payload_encoding: "string"}')" |
    jq -e '.routed == true' >/dev/null 2>&1
}
raw_ok=0
raw '{"payment_id": "'"$TAG"'-bad-1", "payer": ' && raw_ok=$((raw_ok + 1))
raw '{"payment_id":"'"$TAG"'-bad-2","payer":"'"$TAG"'-payer","payee":"'"$TAG"'-shop","amount":"100","currency":"EUR"}' &&
  raw_ok=$((raw_ok + 1))
if [[ $sent -eq $N && $dup_ok -eq 2 && $raw_ok -eq 2 ]]; then
  ok "published $N payments, a duplicate, a conflict and 2 raw bad messages"
else
  die "publishing failed: $sent/$N payments, $dup_ok/2 duplicates, $raw_ok/2 raw messages routed"
fi

# the pipeline is done when the settlement stage acked every payment and
# both batches closed (Prometheus is the witness: this is what the dashboard
# sees)
S="instance=~\"$OURS\""
if wait_query 60 "sum(ledgerline_messages_acked_total{stage=\"settlement\", $S}) >= $((N + 1))
    and on () sum(ledgerline_settlement_close_duration_seconds_count{$S}) >= 2"; then
  ok "Prometheus saw every payment acked by the settlement stage and two batches closed"
else
  dump_logs
  not_ok "the settlement stage did not ack $((N + 1)) deliveries and close 2 batches within 60 s (acked: $(query "sum(ledgerline_messages_acked_total{stage=\"settlement\", $S})" | jq -c '.data.result'), closes: $(query "sum(ledgerline_settlement_close_duration_seconds_count{$S})" | jq -c '.data.result'))"
fi

# a refund of a settled payment, as a producer publishes it (with the
# request time, so the refund stage has an end-to-end latency too); the
# refund-worker decides it (refund.completed, or refund.failed if the payee
# was paid out and cannot cover it): either is a new decision, acked
refund_body='{"refund_id":"'"$TAG"'-refund-1","payment_id":"'"$TAG"'-3","amount":100,"reason":"test"}'
if mgmt POST /api/exchanges/%2F/ledgerline.commands/publish "$(jq -cn --arg p "$refund_body" \
  --arg id "$TAG-refund-1" --argjson at "$(($(date +%s%N) / 1000000))" \
  '{properties: {content_type: "application/json", delivery_mode: 2, type: "refund.requested",
                 message_id: $id, headers: {"x-ledgerline-requested-at": $at}},
    routing_key: "refund.requested", payload: $p, payload_encoding: "string"}')" |
  jq -e '.routed == true' >/dev/null 2>&1; then
  ok "published a refund of $TAG-3 to ledgerline.commands (routed to refunds)"
else
  not_ok "the refund of $TAG-3 was not routed (HTTP $(http_code))"
fi

# a deposit to the payer, as a rail adapter publishes it (with the request
# time, so the funds stage has an end-to-end latency too); the funds-worker
# credits it from sys:funding:EUR (deposit.completed): a new decision, acked
deposit_body='{"deposit_id":"'"$TAG"'-dep-1","account":"'"$TAG"'-payer","amount":500,"currency":"EUR","rail":"test","rail_reference":"'"$TAG"'-rail-1"}'
if mgmt POST /api/exchanges/%2F/ledgerline.commands/publish "$(jq -cn --arg p "$deposit_body" \
  --arg id "$TAG-dep-1" --argjson at "$(($(date +%s%N) / 1000000))" \
  '{properties: {content_type: "application/json", delivery_mode: 2, type: "deposit.received",
                 message_id: $id, headers: {"x-ledgerline-requested-at": $at}},
    routing_key: "deposit.received", payload: $p, payload_encoding: "string"}')" |
  jq -e '.routed == true' >/dev/null 2>&1; then
  ok "published a deposit to $TAG-payer to ledgerline.commands (routed to funds)"
else
  not_ok "the deposit to $TAG-payer was not routed (HTTP $(http_code))"
fi

# --- every panel query returns data ------------------------------------------------
# Each target of the dashboard, with Grafana's variables filled in: $stage =
# All, $instance = these workers; interval variables get fixed ranges.
mapfile -t TARGETS < <(jq -c --arg inst "$OURS" '.. | objects | select(has("targets")) | .title as $t |
  .targets[] | {title: $t, ref: .refId, expr: (.expr
    | gsub("\\$\\{?stage\\}?"; ".*") | gsub("\\$\\{?instance\\}?"; $inst)
    | gsub("\\$__rate_interval"; "1m") | gsub("\\$__interval"; "10s") | gsub("\\$__range"; "5m"))}' "$DASH")
if [[ ${#TARGETS[@]} -eq 0 ]]; then
  not_ok "no panel target found in $DASH"
fi
# RabbitMQ's per-queue rates need two of its 5-second samples after the
# traffic: every query is polled until it has answered with data once, at
# most 60 s (less when the test's own limit is nearer), as a dashboard
# refreshing during those seconds would show it.
declare -A GOT=() LAST=()
wait_s=$(($(left) - 25))
((wait_s > 60)) && wait_s=60
deadline=$((SECONDS + wait_s))
while :; do
  still=0
  for i in "${!TARGETS[@]}"; do
    [[ -n "${GOT[$i]:-}" ]] && continue
    ans="$(query "$(jq -r .expr <<<"${TARGETS[$i]}")" 2>/dev/null)"
    n="$(jq '[.data.result[] | select(.value[1] != "NaN")] | length' <<<"$ans" 2>/dev/null || echo 0)"
    if [[ "${n:-0}" -gt 0 ]]; then
      GOT[$i]="$n series, $((SECONDS - T0)) s into the test"
    else
      LAST[$i]="$ans"
      still=$((still + 1))
    fi
  done
  [[ $still -eq 0 || $SECONDS -ge $deadline ]] && break
  sleep 2
done
for i in "${!TARGETS[@]}"; do
  t="${TARGETS[$i]}"
  label="panel '$(jq -r .title <<<"$t")' target $(jq -r .ref <<<"$t")"
  if [[ -n "${GOT[$i]:-}" ]]; then
    ok "$label returns data (${GOT[$i]})"
  else
    not_ok "$label returned no data within $wait_s s: $(jq -r .expr <<<"$t") -> $(jq -c '{status, error, result: .data.result}' <<<"${LAST[$i]:-}" 2>/dev/null | cut -c1-300)"
  fi
done

# --- the traffic is what the panels show ------------------------------------------
# expect LABEL EXPR: EXPR must return data within 30 s (RabbitMQ refreshes
# its queue statistics every 5 s and is scraped every 5 s)
expect() {
  if wait_query 30 "$2"; then ok "$1"; else not_ok "$1: no data for $2 within 30 s"; fi
}
expect "the refund stage acked the refund" "ledgerline_messages_acked_total{stage=\"refund\", $S} >= 1"
expect "the funds stage acked the deposit" "ledgerline_messages_acked_total{stage=\"funds\", $S} >= 1"
expect "every stage acked messages (5 min)" \
  "count(sum by (stage) (increase(ledgerline_messages_acked_total{$S}[5m])) > 0) == 5"
for reason in malformed_json schema_violation idempotency_conflict; do
  expect "risk rejected $reason" "ledgerline_messages_rejected_total{stage=\"risk\", reason=\"$reason\", $S} >= 1"
done
expect "risk parked the 3 rejects in risk.dead" "ledgerline_messages_parked_total{stage=\"risk\", $S} >= 3"
expect "risk.dead holds them (rabbitmq_prometheus)" "rabbitmq_detailed_queue_messages{queue=\"risk.dead\"} >= 3"
expect "the duplicate was replayed" "sum(ledgerline_duplicates_replayed_total{$S}) >= 1"
expect "end-to-end latency p99 of each stage over 5 min is a number" \
  "count(histogram_quantile(0.99, sum by (stage, le) (rate(ledgerline_end_to_end_latency_seconds_bucket{$S}[5m]))) >= 0) == 5"
expect "the work queues have their consumers" \
  "count(rabbitmq_detailed_queue_consumers{queue=~\"risk|payments|settlement|refunds|funds\"} >= 1) == 5"

# --- the exposition itself ------------------------------------------------------------
for k in "${KINDS[@]}"; do
  if http GET "http://127.0.0.1:${WPORT[$k]}/metrics" >"$TMP/$k.metrics" 2>/dev/null; then
    if out="$(promtool check metrics <"$TMP/$k.metrics" 2>&1)"; then
      ok "promtool check metrics accepts the $k-worker's /metrics ($(grep -vc '^#' "$TMP/$k.metrics") samples)"
    else
      not_ok "promtool check metrics rejects the $k-worker's /metrics: $out"
    fi
  else
    not_ok "GET /metrics of the $k-worker answered HTTP $(http_code)"
  fi
done

if [[ $FAILS -ne 0 ]]; then dump_logs; fi
[[ $SECONDS -le $((T0 + LIMIT)) ]] || not_ok "the test took $((SECONDS - T0)) s, more than its $LIMIT s"
finish
