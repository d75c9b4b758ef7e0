#!/usr/bin/env bash
# tests/integration/test_stack.sh - ops/stack against the already-running
# stack whose environment is exported (./ops/test does both):
#   status exits 0; a second `up` is idempotent (says "already up", no pid
#   changes); `env` prints every documented variable with the values in use;
#   every socket of the stack listens on loopback only (ss -ltnp);
#   PostgreSQL refuses a wrong password; stop-one redis makes status fail and
#   leaves the others alone; start-one redis and `up` bring it back with its
#   data (appendonly); `up` in a checkout under a 0700 folder refuses,
#   naming the folder and the fix, and starts nothing.
# Without the stack's environment it FAILS (it never skips).
set -uo pipefail

ROOT="${LL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
FAILS=0

ok() { printf 'ok - %s\n' "$1"; }
not_ok() {
  printf 'not ok - %s\n' "$1"
  FAILS=$((FAILS + 1))
}
check() { # LABEL CMD...
  local label="$1"
  shift
  if "$@"; then ok "$label"; else not_ok "$label"; fi
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
  LEDGERLINE_STACK_RABBITMQ_NODE LEDGERLINE_STACK_EPMD_PORT)

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
for s in rabbitmq redis postgres; do
  check "status says $s is up" grep -Eq "^$s +up " <<<"$out"
done

# --- up is idempotent -------------------------------------------------------
before="$(pids)"
check "pids lists rabbitmq, epmd, redis and postgres" \
  test "$(awk '{print $1}' <<<"$before" | tr '\n' ' ')" = "epmd postgres rabbitmq redis "
out="$(timeout "$TIMEOUT" "${STACK[@]}" up 2>&1)"
rc=$?
check "second up exits 0" test $rc -eq 0
check "second up says 'already up' for all three servers" \
  test "$(grep -c 'already up' <<<"$out")" -eq 3
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
check "found listening sockets of the stack's processes" test "$nsock" -ge 7
for p in "$LEDGERLINE_AMQP_PORT" "$LEDGERLINE_STACK_MGMT_PORT" "$LEDGERLINE_STACK_PROMETHEUS_PORT" \
  "$LEDGERLINE_STACK_EPMD_PORT" "$LEDGERLINE_REDIS_PORT" "$LEDGERLINE_POSTGRES_PORT"; do
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
