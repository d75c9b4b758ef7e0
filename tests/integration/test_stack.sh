#!/usr/bin/env bash
# tests/integration/test_stack.sh - ops/stack against the already-running
# stack whose environment is exported (./ops/test does both):
#   status exits 0; a second `up` is idempotent (says "already up", no pid
#   changes); `env` prints every documented variable with the values in use;
#   every socket of the stack listens on loopback only (ss -ltnp);
#   PostgreSQL refuses a wrong password; stop-one redis makes status fail and
#   leaves the others alone; start-one redis and `up` bring it back with its
#   data (appendonly); the stack's Prometheus: its rendered configuration is
#   valid, it runs with the stack's port, data folder and short retention,
#   has loaded every rule of ops/prometheus/alerts.yml, scrapes the stack's
#   rabbitmq_prometheus port (both jobs up) and the ops/workers port slots,
#   picks up a file_sd target file written into its targets folder (and
#   drops it when the file goes), reloads a configuration that differs on
#   `up` without a restart, and after stop-one/up still has the samples
#   from before; `up` in a checkout under a 0700 folder refuses, naming
#   the folder and the fix, and starts nothing.
# Without the stack's environment it FAILS (it never skips).
set -uo pipefail

ROOT="${LL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
FAILS=0

ok() { printf 'ok - %s\n' "$1"; }
not_ok() {
  printf 'not ok - %s\n' "$1"
  FAILS=$((FAILS + 1))
}
check() { # LABEL CMD... (returns CMD's success, for a diagnosis after it)
  local label="$1"
  shift
  if "$@"; then
    ok "$label"
  else
    not_ok "$label"
    return 1
  fi
}
# shellcheck disable=SC2317 # reachable: check runs it ("check LABEL quiet CMD...")
quiet() { "$@" >/dev/null 2>&1; }
finish() {
  if [[ $FAILS -ne 0 ]]; then
    echo "FAIL: $FAILS check(s) failed"
    exit 1
  fi
  echo "PASS"
  exit 0
}

ENV_VARS=(LEDGERLINE_AMQP_HOST LEDGERLINE_AMQP_PORT LEDGERLINE_AMQP_USER
  LEDGERLINE_AMQP_PASSWORD_FILE LEDGERLINE_AMQP_VHOST LEDGERLINE_REDIS_HOST
  LEDGERLINE_REDIS_PORT LEDGERLINE_REDIS_PASSWORD_FILE LEDGERLINE_POSTGRES_HOST
  LEDGERLINE_POSTGRES_PORT LEDGERLINE_POSTGRES_DBNAME LEDGERLINE_POSTGRES_USER
  LEDGERLINE_POSTGRES_PASSWORD_FILE LEDGERLINE_STACK_NAME LEDGERLINE_STACK_DIR
  LEDGERLINE_STACK_MGMT_PORT LEDGERLINE_STACK_PROMETHEUS_PORT
  LEDGERLINE_STACK_RABBITMQ_NODE LEDGERLINE_STACK_EPMD_PORT
  LEDGERLINE_AMQP_MANAGEMENT_URL LEDGERLINE_STACK_PROMSERVER_PORT
  LEDGERLINE_STACK_PROMETHEUS_URL LEDGERLINE_STACK_PROMETHEUS_TARGETS_DIR)

missing=()
for v in "${ENV_VARS[@]}"; do
  [[ -n "${!v:-}" ]] || missing+=("$v")
done
if [[ ${#missing[@]} -ne 0 ]]; then
  echo "FAIL: the stack environment is missing (${missing[*]})."
  echo "      Run this test under ./ops/test (e.g. ./ops/test -R stack), which starts the"
  echo "      'test' stack and exports its environment; or by hand:"
  echo "      ops/stack --name test up && eval \"\$(ops/stack --name test env)\" && bash $0"
  exit 1
fi

STACK=("$ROOT/ops/stack" --name "$LEDGERLINE_STACK_NAME")
TIMEOUT=120

pids() { timeout "$TIMEOUT" "${STACK[@]}" pids 2>&1 | sort; }
pid_of() { pids | awk -v s="$1" '$1 == s { print $2 }'; }
redis_cli() {
  REDISCLI_AUTH="$(cat "$LEDGERLINE_REDIS_PASSWORD_FILE")" timeout 10 \
    redis-cli --no-auth-warning -h "$LEDGERLINE_REDIS_HOST" -p "$LEDGERLINE_REDIS_PORT" "$@"
}

# --- status -----------------------------------------------------------------
if out="$(timeout "$TIMEOUT" "${STACK[@]}" status 2>&1)"; then
  ok "status exits 0 with the stack up"
else
  not_ok "status exits non-zero before anything was stopped: $out"
  echo "$out"
  finish # nothing below makes sense on a broken stack
fi
for s in rabbitmq redis postgres prometheus; do
  check "status says $s is up" grep -Eq "^$s +up " <<<"$out"
done

# --- up is idempotent -------------------------------------------------------
before="$(pids)"
check "pids lists rabbitmq, epmd, redis, postgres and prometheus" \
  test "$(awk '{print $1}' <<<"$before" | tr '\n' ' ')" = "epmd postgres prometheus rabbitmq redis "
out="$(timeout "$TIMEOUT" "${STACK[@]}" up 2>&1)"
rc=$?
check "second up exits 0" test $rc -eq 0
check "second up says 'already up' for all four servers" \
  test "$(grep -c 'already up' <<<"$out")" -eq 4
after="$(pids)"
check "second up restarted nothing (pids unchanged)" test "$before" = "$after"

# --- env ----------------------------------------------------------------------
out="$(timeout "$TIMEOUT" "${STACK[@]}" env 2>/dev/null)"
for v in "${ENV_VARS[@]}"; do
  check "env exports $v" grep -Eq "^export $v=" <<<"$out"
done
# shellcheck disable=SC2016 # the inner bash expands these, after eval of the env output
got="$(env -i bash -c "$out"$'\n''printf "%s|%s|%s|%s" "$LEDGERLINE_AMQP_PORT" "$LEDGERLINE_REDIS_PORT" "$LEDGERLINE_POSTGRES_PORT" "$LEDGERLINE_AMQP_VHOST"')"
check "env output evaluates to the ports in use" \
  test "$got" = "$LEDGERLINE_AMQP_PORT|$LEDGERLINE_REDIS_PORT|$LEDGERLINE_POSTGRES_PORT|/"
check "env: the management URL is the stack's management port" \
  test "$LEDGERLINE_AMQP_MANAGEMENT_URL" = "http://127.0.0.1:$LEDGERLINE_STACK_MGMT_PORT"
check "env: the Prometheus URL is the stack's Prometheus port" \
  test "$LEDGERLINE_STACK_PROMETHEUS_URL" = "http://127.0.0.1:$LEDGERLINE_STACK_PROMSERVER_PORT"
check "env: the file_sd targets folder is the stack's" \
  test "$LEDGERLINE_STACK_PROMETHEUS_TARGETS_DIR" = "$LEDGERLINE_STACK_DIR/prometheus/targets"
for f in "$LEDGERLINE_AMQP_PASSWORD_FILE" "$LEDGERLINE_REDIS_PASSWORD_FILE" "$LEDGERLINE_POSTGRES_PASSWORD_FILE"; do
  check "secret $f exists with mode 600" test "$(stat -c %a "$f" 2>/dev/null)" = 600 -a -s "$f"
done

# --- loopback only ----------------------------------------------------------
# every listening socket of the stack's processes is on 127.0.0.1; epmd also
# adds the IPv6 loopback [::1] by itself, which is loopback too.
listeners="$(ss -Hltnp)"
pid_list="$(awk '{print $2}' <<<"$after")"
nsock=0
for pid in $pid_list; do
  name="$(awk -v p="$pid" '$2 == p { print $1 }' <<<"$after")"
  while read -r line; do
    [[ -n "$line" ]] || continue
    nsock=$((nsock + 1))
    addr="$(awk '{print $4}' <<<"$line")"
    case "$addr" in
      127.0.0.1:*) ok "$name (pid $pid) listens on $addr" ;;
      "[::1]:"*)
        if [[ "$name" == epmd ]]; then ok "$name (pid $pid) listens on $addr (loopback)"; else not_ok "$name (pid $pid) listens on $addr"; fi
        ;;
      *) not_ok "$name (pid $pid) listens on $addr (not loopback)" ;;
    esac
  done < <(grep -E "pid=$pid," <<<"$listeners")
done
check "found listening sockets of the stack's processes" test "$nsock" -ge 8
for p in "$LEDGERLINE_AMQP_PORT" "$LEDGERLINE_STACK_MGMT_PORT" "$LEDGERLINE_STACK_PROMETHEUS_PORT" \
  "$LEDGERLINE_STACK_EPMD_PORT" "$LEDGERLINE_REDIS_PORT" "$LEDGERLINE_POSTGRES_PORT" \
  "$LEDGERLINE_STACK_PROMSERVER_PORT"; do
  check "port $p listens on 127.0.0.1" grep -Eq "^LISTEN +[0-9]+ +[0-9]+ +127\.0\.0\.1:$p " <<<"$listeners"
done

# --- credentials ----------------------------------------------------------------
check "postgres accepts the generated password" test "$(PGPASSWORD="$(cat "$LEDGERLINE_POSTGRES_PASSWORD_FILE")" \
  PGCONNECT_TIMEOUT=5 psql -X -tA -h "$LEDGERLINE_POSTGRES_HOST" -p "$LEDGERLINE_POSTGRES_PORT" \
  -U "$LEDGERLINE_POSTGRES_USER" -d "$LEDGERLINE_POSTGRES_DBNAME" -c 'show fsync' 2>&1)" = on
# shellcheck disable=SC2016 # $1.. are the inner bash -c's arguments
check "postgres refuses a wrong password" bash -c '! PGPASSWORD=wrong PGCONNECT_TIMEOUT=5 psql -X -tA \
  -h "$1" -p "$2" -U "$3" -d "$4" -c "select 1" >/dev/null 2>&1' _ \
  "$LEDGERLINE_POSTGRES_HOST" "$LEDGERLINE_POSTGRES_PORT" "$LEDGERLINE_POSTGRES_USER" "$LEDGERLINE_POSTGRES_DBNAME"
# shellcheck disable=SC2016 # $1 and $2 are the inner bash -c's arguments
check "redis refuses commands without the password" bash -c \
  '[[ "$(timeout 10 redis-cli -h "$1" -p "$2" ping 2>&1)" == *NOAUTH* ]]' _ \
  "$LEDGERLINE_REDIS_HOST" "$LEDGERLINE_REDIS_PORT"

# --- stop-one / start-one / up ----------------------------------------------------
probe_key="ledgerline:test_stack:probe:$$"
probe_val="v$RANDOM$RANDOM"
check "redis SET of a probe key" test "$(redis_cli set "$probe_key" "$probe_val" 2>&1)" = OK

rmq_pid="$(pid_of rabbitmq)"
pg_pid="$(pid_of postgres)"
for round in start-one up; do
  out="$(timeout "$TIMEOUT" "${STACK[@]}" stop-one redis 2>&1)"
  check "[$round] stop-one redis exits 0" test $? -eq 0
  check "[$round] redis process is gone" test -z "$(pid_of redis)"
  out="$(timeout "$TIMEOUT" "${STACK[@]}" status 2>&1)"
  rc=$?
  check "[$round] status exits non-zero with redis stopped" test $rc -ne 0
  check "[$round] status says redis is down" grep -Eq '^redis +down ' <<<"$out"
  check "[$round] status still says postgres is up" grep -Eq '^postgres +up ' <<<"$out"
  if [[ $round == start-one ]]; then
    out="$(timeout "$TIMEOUT" "${STACK[@]}" start-one redis 2>&1)"
  else
    out="$(timeout "$TIMEOUT" "${STACK[@]}" up 2>&1)"
  fi
  rc=$?
  check "[$round] $round brings redis back (exit 0)" test $rc -eq 0
  check "[$round] status exits 0 again" quiet timeout "$TIMEOUT" "${STACK[@]}" status
  check "[$round] redis kept its data (appendonly)" test "$(redis_cli get "$probe_key" 2>&1)" = "$probe_val"
  check "[$round] rabbitmq and postgres were not restarted" \
    test "$(pid_of rabbitmq)/$(pid_of postgres)" = "$rmq_pid/$pg_pid"
done
redis_cli del "$probe_key" >/dev/null 2>&1

# --- the stack's Prometheus --------------------------------------------------------
# prom_get PATH: the body of GET PATH on the stack's Prometheus (HTTP/1.0 over
# bash's /dev/tcp; no HTTP client is among the project's dependencies);
# non-zero unless it answered 200.
prom_get() {
  local fd line code=""
  { exec {fd}<>"/dev/tcp/127.0.0.1/$LEDGERLINE_STACK_PROMSERVER_PORT"; } 2>/dev/null || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$1" >&"$fd"
  IFS= read -r -t 10 -u "$fd" line || true
  [[ "$line" =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]] && code="${BASH_REMATCH[1]}"
  while IFS= read -r -t 10 -u "$fd" line && [[ -n "${line%$'\r'}" ]]; do :; done
  timeout 10 cat <&"$fd"
  exec {fd}>&-
  [[ "$code" == 200 ]]
}
# prom_until SECONDS JQ_FILTER PATH: polls PATH until JQ_FILTER prints true.
# shellcheck disable=SC2317 # reachable: check runs it ("check LABEL prom_until ...")
prom_until() {
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    [[ "$(prom_get "$3" 2>/dev/null | jq -r "$2" 2>/dev/null)" == true ]] && return 0
    sleep 1
  done
  return 1
}
uri() { jq -rn --arg v "$1" '$v | @uri'; }

PROM_DIR="$LEDGERLINE_STACK_DIR/prometheus"
check "prometheus answers /-/ready" quiet prom_get /-/ready
check "its rendered configuration passes promtool check config" \
  quiet promtool check config "$PROM_DIR/prometheus.yml"
flags="$(prom_get /api/v1/status/flags)"
check "it listens on 127.0.0.1:$LEDGERLINE_STACK_PROMSERVER_PORT only (flag)" \
  test "$(jq -r '.data["web.listen-address"]' <<<"$flags")" = "127.0.0.1:$LEDGERLINE_STACK_PROMSERVER_PORT"
check "it keeps its data under the stack folder" \
  test "$(jq -r '.data["storage.tsdb.path"]' <<<"$flags")" = "$PROM_DIR/data"
check "its retention is short (6h)" test "$(jq -r '.data["storage.tsdb.retention.time"]' <<<"$flags")" = 6h
nrules="$(grep -c '^ *- alert: ' "$ROOT/ops/prometheus/alerts.yml")"
check "it loaded every rule of ops/prometheus/alerts.yml ($nrules)" \
  test "$(prom_get /api/v1/rules | jq '[.data.groups[] | select(.name == "ledgerline") | .rules[]] | length')" = "$nrules"
for job in rabbitmq rabbitmq-detailed; do
  check "it scrapes job $job on the stack's rabbitmq_prometheus port, and the scrape is up" \
    prom_until 30 "[.data.activeTargets[] | select(.labels.job == \"$job\") |
      (.scrapeUrl | test(\"^http://127.0.0.1:$LEDGERLINE_STACK_PROMETHEUS_PORT/\")) and .health == \"up\"] |
      length == 1 and all" /api/v1/targets
done
check "it scrapes the ops/workers port slots (4 replicas x 5 kinds)" \
  test "$(prom_get /api/v1/targets | jq -r '[.data.activeTargets[] | select(.labels.job == "ledgerline-slots") |
    .labels.instance] | sort | join(" ")')" = "$(for k in 1 2 3 4 5; do for i in 0 1 2 3; do
    echo "127.0.0.1:$((9470 + k + 10 * i))"; done; done | sort | tr '\n' ' ' | sed 's/ $//')"
check "the per-queue families answer (risk has a consumer count)" \
  prom_until 30 '.data.result | length > 0' "/api/v1/query?query=$(uri 'rabbitmq_detailed_queue_consumers{queue=~".+"}')"
# a target file announced by a test, in the folder env names
probe_port=$((40000 + RANDOM % 20000))
sd_file="$LEDGERLINE_STACK_PROMETHEUS_TARGETS_DIR/test_stack-$$.json"
printf '[{"targets": ["127.0.0.1:%s"], "labels": {"worker": "test_stack-probe"}}]\n' "$probe_port" >"$sd_file"
check "a file_sd target file is picked up (job ledgerline)" \
  prom_until 30 "[.data.activeTargets[] | select(.labels.job == \"ledgerline\" and .labels.instance == \"127.0.0.1:$probe_port\")] | length == 1" \
  /api/v1/targets
rm -f "$sd_file"
check "a removed target file drops its target" \
  prom_until 30 "[.data.activeTargets[] | select(.labels.instance == \"127.0.0.1:$probe_port\")] | length == 0" \
  /api/v1/targets
# a configuration that differs: `up` renders it again and reloads, no restart
prom_pid="$(pid_of prometheus)"
echo '# edited by test_stack' >>"$PROM_DIR/prometheus.yml"
out="$(timeout "$TIMEOUT" "${STACK[@]}" up 2>&1)"
rc=$?
# shellcheck disable=SC2016 # $1 and $2 are the inner bash -c's arguments
check "up after the configuration changed exits 0 and says prometheus is already up" \
  bash -c '[[ $1 -eq 0 ]] && grep -Eq "^prometheus +already up" <<<"$2"' _ "$rc" "$out"
# shellcheck disable=SC2016 # $1 is the inner bash -c's argument
check "up rendered the configuration again" bash -c '! grep -q "edited by test_stack" "$1"' _ "$PROM_DIR/prometheus.yml"
check "up reloaded it without a restart (same pid)" test "$(pid_of prometheus)" = "$prom_pid"
# stop-one / up keeps the samples (data under .stack/NAME/prometheus/data)
# (the hour before a fixed instant: a window that slides would lose the
# stack's oldest samples between the two queries)
t_before="$(date +%s)"
q="/api/v1/query?query=$(uri "count_over_time(up{job=\"rabbitmq\"}[1h] @ $t_before)")"
n_before="$(prom_get "$q" | jq -r '.data.result[0].value[1] // 0')"
out="$(timeout "$TIMEOUT" "${STACK[@]}" stop-one prometheus 2>&1)"
check "stop-one prometheus exits 0" test $? -eq 0
out="$(timeout "$TIMEOUT" "${STACK[@]}" status 2>&1)"
rc=$?
check "status exits non-zero with prometheus stopped" test $rc -ne 0
check "status says prometheus is down" grep -Eq '^prometheus +down ' <<<"$out"
out="$(timeout "$TIMEOUT" "${STACK[@]}" up 2>&1)"
check "up brings prometheus back (exit 0)" test $? -eq 0
check "status exits 0 again" quiet timeout "$TIMEOUT" "${STACK[@]}" status
# (60 s: under a loaded CI the replayed head can answer late; a failure
# shows what it answered and how its shutdown and replay went)
if ! check "prometheus kept the samples of before the restart ($n_before)" \
  prom_until 60 "(.data.result[0].value[1] // \"0\" | tonumber) >= $n_before and $n_before > 0" "$q"; then
  echo "  it answers: $(prom_get "$q" 2>&1 | head -c 400)"
  grep -Ei 'shut|WAL|replay|head|TSDB|err' "$PROM_DIR/prometheus.log" 2>/dev/null | tail -15 | sed 's/^/  log: /'
fi
check "rabbitmq and postgres were not restarted" \
  test "$(pid_of rabbitmq)/$(pid_of postgres)" = "$rmq_pid/$pg_pid"

check "unknown command is an error" bash -c '! "$@" frobnicate >/dev/null 2>&1' _ "${STACK[@]}"
check "unknown server is an error" bash -c '! "$@" stop-one mysql >/dev/null 2>&1' _ "${STACK[@]}"


# --- a checkout the server users cannot reach --------------------------------
# RabbitMQ and PostgreSQL run as their own users; under a private (0700)
# folder they cannot reach the stack: `up` must say which folder and how to
# fix it, and start nothing.
priv="$(mktemp -d)" # mktemp -d makes it 0700
mkdir -p "$priv/ck" && cp -r "$ROOT/ops" "$priv/ck/ops"
out="$(LEDGERLINE_STACK_PORT_OFFSET=19 timeout "$TIMEOUT" "$priv/ck/ops/stack" --name unreach up 2>&1)"
rc=$?
check "up under a 0700 folder exits 1" test $rc -eq 1
# shellcheck disable=SC2016 # $1 and $2 are the inner bash -c's arguments
check "up under a 0700 folder names the folder and the fix" \
  bash -c '[[ "$1" == *"cannot reach"* && "$1" == *"$2 is not searchable"* && "$1" == *"chmod o+x $2"* ]]' _ "$out" "$priv"
# (epmd is shared by port, so another stack's may be listed: not counted)
out="$(LEDGERLINE_STACK_PORT_OFFSET=19 timeout "$TIMEOUT" "$priv/ck/ops/stack" --name unreach pids 2>&1)"
rc=$?
check "pids of the refused stack answers (exit 0)" test $rc -eq 0
check "up under a 0700 folder started nothing" test -z "$(grep -Ev '^epmd ' <<<"$out")"
rm -rf "$priv"

finish
