#!/usr/bin/env bash
# tests/integration/test_compose.sh - compose.yaml stays valid and safe:
#   1. `docker-compose -f compose.yaml config -q` exits 0 (Debian's 1.29);
#   2. services rabbitmq, redis and postgres exist and each has a healthcheck;
#      the three workers exist, wait for `migrate`, have cpu/memory limits and
#      read their secrets from *_FILE variables; every *_FILE a service is
#      given names a secret that service mounts (ledgerctl and the workers
#      read them all at start: a missing one stops `migrate`, and with it
#      every worker);
#   3. every published port is bound to 127.0.0.1.
# Checks 2-3 parse the normalised `docker-compose config` output. The checker
# is also run over broken copies of compose.yaml (a port on all interfaces, a
# missing healthcheck, invalid YAML, an unmounted secret) and must reject each one, so this test
# can fail. Needs no Docker daemon.
set -uo pipefail

ROOT="${LL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
COMPOSE="$ROOT/compose.yaml"
FAILS=0
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

ok() { printf 'ok - %s\n' "$1"; }
not_ok() {
  printf 'not ok - %s\n' "$1"
  FAILS=$((FAILS + 1))
}

command -v docker-compose >/dev/null 2>&1 || {
  echo "FAIL: docker-compose is not installed (fix: apt-get install -y docker-compose, or run ./ops/test which installs it)"
  exit 1
}
[[ -f "$COMPOSE" ]] || {
  echo "FAIL: $COMPOSE does not exist"
  exit 1
}

# check_compose FILE: 0 when FILE is valid, complete and loopback-only; the
# reason on stdout otherwise.
check_compose() {
  local file="$1" out
  if ! out="$(cd "$ROOT" && docker-compose --project-directory "$ROOT" -f "$file" config -q 2>&1)"; then
    printf 'docker-compose config -q failed: %s\n' "$out"
    return 1
  fi
  if ! out="$(cd "$ROOT" && docker-compose --project-directory "$ROOT" -f "$file" config 2>&1)"; then
    printf 'docker-compose config failed: %s\n' "$out"
    return 1
  fi
  python3 -c '
import sys, yaml
cfg = yaml.safe_load(sys.stdin)
problems = []
services = (cfg or {}).get("services") or {}
for name in ("rabbitmq", "redis", "postgres"):
    svc = services.get(name)
    if svc is None:
        problems.append("service %s is missing" % name)
        continue
    hc = svc.get("healthcheck") or {}
    test = hc.get("test")
    if hc.get("disable") or not test or test == ["NONE"]:
        problems.append("service %s has no healthcheck" % name)
for name in ("risk-worker", "payment-worker", "settlement-worker"):
    svc = services.get(name)
    if svc is None:
        problems.append("worker %s is missing" % name)
        continue
    if "migrate" not in (svc.get("depends_on") or {}):
        problems.append("worker %s does not wait for migrate" % name)
    limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    if not limits.get("cpus") or not limits.get("memory"):
        problems.append("worker %s has no cpu/memory limits" % name)
    if not any(str(v).endswith("_FILE") or k.endswith("_FILE")
               for k, v in (svc.get("environment") or {}).items()):
        problems.append("worker %s gets no secret through a *_FILE variable" % name)
# every *_FILE a Ledgerline service is given must be a secret it mounts
# (ledgerctl and the workers read every configured secret file at start)
for name, svc in sorted(services.items()):
    env = svc.get("environment") or {}
    mounted = set()
    for sec in svc.get("secrets") or []:
        mounted.add(sec.get("source") if isinstance(sec, dict) else str(sec))
    for k, v in env.items():
        if k.startswith("LEDGERLINE_") and k.endswith("_FILE") and str(v).startswith("/run/secrets/"):
            sec = str(v)[len("/run/secrets/"):]
            if sec not in mounted:
                problems.append("service %s: %s=%s but secret %s is not mounted" % (name, k, v, sec))
for name, svc in sorted(services.items()):
    for port in svc.get("ports") or []:
        if isinstance(port, dict):
            host_ip = port.get("host_ip")
            published = port.get("published")
        else:
            parts = str(port).split("/")[0].split(":")
            host_ip = parts[0] if len(parts) == 3 else None
            published = parts[-2] if len(parts) >= 2 else None
        if published is None:
            problems.append("service %s: port %r is published on a random host port" % (name, port))
        elif host_ip != "127.0.0.1":
            problems.append("service %s: port %r is not bound to 127.0.0.1" % (name, port))
if problems:
    print("; ".join(problems))
    sys.exit(1)
' <<<"$out"
}

# 1-3 on the real file
if out="$(cd "$ROOT" && docker-compose -f compose.yaml config -q 2>&1)"; then
  ok "docker-compose -f compose.yaml config -q exits 0"
else
  not_ok "docker-compose -f compose.yaml config -q: $out"
fi
if why="$(check_compose "$COMPOSE")"; then
  ok "compose.yaml: rabbitmq, redis, postgres have healthchecks; workers wait for migrate and have limits; all ports on 127.0.0.1"
else
  not_ok "compose.yaml: $why"
fi

# the checker rejects broken copies, each for its own reason (table: label,
# a phrase the rejection must contain, sed expression)
MUTANTS=(
  "port on all interfaces|not bound to 127.0.0.1|s/\"127\\.0\\.0\\.1:\${LEDGERLINE_COMPOSE_REDIS_PORT:-6379}:6379\"/\"6379:6379\"/"
  "port on 0.0.0.0|not bound to 127.0.0.1|s/127\\.0\\.0\\.1:\${LEDGERLINE_COMPOSE_PG_PORT/0.0.0.0:\${LEDGERLINE_COMPOSE_PG_PORT/"
  "healthcheck removed|has no healthcheck|/^  redis:/,/^  postgres:/{/^    healthcheck:/,/^    restart:/{/^    restart:/!d}}"
  "invalid YAML|config -q failed|s/^services:/services: [/"
  "a secret file not mounted|is not mounted|s/^    secrets: \[amqp_password, redis_password, postgres_password\]$/    secrets: [amqp_password, postgres_password]/"
)
for row in "${MUTANTS[@]}"; do
  label="${row%%|*}"
  rest="${row#*|}"
  want="${rest%%|*}"
  expr="${rest#*|}"
  mutant="$TMP/compose.yaml"
  sed -e "$expr" "$COMPOSE" >"$mutant"
  if cmp -s "$mutant" "$COMPOSE"; then
    not_ok "mutant '$label' did not change compose.yaml (update the sed expression)"
  elif why="$(check_compose "$mutant")"; then
    not_ok "mutant '$label' was accepted by the checker"
  elif [[ "$why" != *"$want"* ]]; then
    not_ok "mutant '$label' was rejected for another reason than '$want': $(printf '%s' "$why" | head -n 1 | cut -c1-160)"
  else
    ok "mutant '$label' rejected: $(printf '%s' "$why" | head -n 1 | cut -c1-160)"
  fi
done

if [[ $FAILS -ne 0 ]]; then
  echo "FAIL: $FAILS check(s) failed"
  exit 1
fi
echo "PASS"
