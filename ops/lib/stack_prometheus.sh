# shellcheck shell=bash
# ops/lib/stack_prometheus.sh - the Prometheus server of ops/stack: one
# prometheus from Debian's package (never its service), on 127.0.0.1 only,
# scraping the stack's RabbitMQ (rabbitmq_prometheus) and workers every 2 s,
# evaluating ops/prometheus/alerts.yml, keeping 6 hours of data under
# .stack/NAME/prometheus/. Source it from ops/stack once STACK_DIR is set
# (the paths below derive from it); it defines variables and functions,
# runs nothing.
#
# Its configuration is rendered from ops/prometheus/stack.yml.in at every
# start and `up` (a running server reloads it when it changed). It scrapes:
#   - job ledgerline: the file_sd target files in .stack/NAME/prometheus/
#     targets/*.json (tests announce the workers they start there);
#   - job ledgerline-slots: the ports ops/workers gives replicas 1..4 of each
#     kind (risk 9471, payment 9472, settlement 9473, refund 9474, funds
#     9475, + 10 per replica);
#   - jobs rabbitmq and rabbitmq-detailed: the stack's rabbitmq_prometheus
#     port, /metrics and the per-queue /metrics/detailed families.
#
# Public API, the face every server file of ops/stack has (prefix prom_):
#   prom_need_tools  dies, naming the package, if a program it needs is missing
#   prom_user        the system user the server runs as (none: root)
#   prom_start       starts it unless it runs (a running one reloads a
#                    changed configuration); does not wait
#   prom_wait        waits until it answers /-/ready, prints its "up"/
#                    "already up" line
#   prom_stop        stops it (SIGTERM: the head block is written; data kept)
#   prom_status      prints its status line; 0 when /-/ready answers 200
#   prom_running     0 when its process lives
#   prom_pids        "prometheus PID" when its process lives
#   prom_log         the path of its log
# Also: prom_pid, prom_ready, prom_url, prom_write_config FILE (renders the
# configuration; needs only NAME, STACK_DIR, LL_ROOT and PORT), PROM_TARGETS
# (the file_sd folder).
#
# Reads what ops/stack sets: NAME, PROG, TIMEOUT, STACK_DIR, LL_ROOT,
# PORT[PROMSERVER] and PORT[PROMETHEUS] (RabbitMQ's plugin); uses
# ops/lib/stack_common.sh and give_to_invoker from ops/stack.

PROM_DIR="$STACK_DIR/prometheus"
PROM_PID="$PROM_DIR/prometheus.pid"
PROM_LOG="$PROM_DIR/prometheus.log"
PROM_CONF="$PROM_DIR/prometheus.yml"
PROM_TARGETS="$PROM_DIR/targets"
PROM_RETENTION=6h
PROM_SLOTS=4 # replicas per kind whose ports the ledgerline-slots job scrapes

prom_need_tools() {
  ll_need_cmd prometheus prometheus
  ll_need_cmd promtool prometheus
}
prom_user() { :; } # runs as root, like the script
prom_log() { echo "$PROM_LOG"; }
prom_url() { echo "http://127.0.0.1:${PORT[PROMSERVER]}"; }

prom_pid() { pid_from_file "$PROM_PID"; }
# its process: a live "prometheus" whose command line names this stack's
# configuration (another stack's Prometheus has the same name)
prom_running() {
  local pid
  pid="$(prom_pid)"
  pid_alive "$pid" prometheus &&
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "--config.file=$PROM_CONF"
}

# prom_http METHOD PATH: sets PROM_HTTP_CODE to the HTTP status of the
# server's answer ("" when it does not answer) and PROM_HTTP_BODY to its
# body. Plain bash: no HTTP client is among the stack's dependencies.
prom_http() {
  local fd line
  PROM_HTTP_CODE=""
  PROM_HTTP_BODY=""
  # (the braces: `exec ... 2>/dev/null` alone would silence this shell's
  # stderr for good)
  { exec {fd}<>"/dev/tcp/127.0.0.1/${PORT[PROMSERVER]}"; } 2>/dev/null || return 0
  if printf '%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n' "$1" "$2" 1>&"$fd" 2>/dev/null; then
    IFS= read -r -t 10 -u "$fd" line 2>/dev/null || true
    [[ "$line" =~ ^HTTP/[0-9.]+\ ([0-9]{3}) ]] && PROM_HTTP_CODE="${BASH_REMATCH[1]}"
    while IFS= read -r -t 10 -u "$fd" line 2>/dev/null && [[ "$line" != $'\r' && -n "$line" ]]; do :; done
    PROM_HTTP_BODY="$(timeout 10 cat <&"$fd" 2>/dev/null || true)"
  fi
  exec {fd}>&-
}

# prom_ready: 0 when GET /-/ready answers 200.
prom_ready() { prom_http GET /-/ready && [[ "$PROM_HTTP_CODE" == 200 ]]; }

# prom_write_config FILE: renders ops/prometheus/stack.yml.in for this stack.
prom_write_config() {
  local out="$1" tmpl="$LL_ROOT/ops/prometheus/stack.yml.in" slots="" kind base i targets
  [[ -r "$tmpl" ]] || fail prometheus "its template $tmpl is missing" "restore it: git checkout -- ops/prometheus/stack.yml.in"
  for kind in risk:9471 payment:9472 settlement:9473 refund:9474 funds:9475; do
    base="${kind#*:}"
    targets=""
    for ((i = 0; i < PROM_SLOTS; i++)); do
      targets+="${targets:+, }\"127.0.0.1:$((base + 10 * i))\""
    done
    slots+="      - targets: [$targets]"$'\n'"        labels: {worker: ${kind%%:*}-worker}"$'\n'
  done
  local line
  while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ "$line" == "@SLOT_TARGETS@" ]]; then
      printf '%s' "$slots"
      continue
    fi
    line="${line//@NAME@/$NAME}"
    line="${line//@ALERTS@/$LL_ROOT/ops/prometheus/alerts.yml}"
    line="${line//@TARGETS_DIR@/$PROM_TARGETS}"
    line="${line//@SLOTS@/$PROM_SLOTS}"
    line="${line//@RABBITMQ_PROMETHEUS_PORT@/${PORT[PROMETHEUS]}}"
    printf '%s\n' "$line"
  done <"$tmpl" >"$out"
}

# prom_render: writes the configuration, checked by promtool; 0 when it
# changed (or is new), 1 when it is what the server already has.
prom_render() {
  mkdir -p "$PROM_DIR/data" "$PROM_TARGETS"
  # tests running as the invoking user write their target files here
  give_to_invoker "$PROM_TARGETS"
  prom_write_config "$PROM_CONF.new"
  local out
  out="$(promtool check config "$PROM_CONF.new" 2>&1)" ||
    fail prometheus "its rendered configuration $PROM_CONF.new is invalid: $(printf '%s' "$out" | grep -m1 -E 'FAILED|error' || printf '%s' "$out" | tail -n 1)" \
      "correct ops/prometheus/stack.yml.in or ops/prometheus/alerts.yml (promtool check config $PROM_CONF.new)"
  if [[ -f "$PROM_CONF" ]] && cmp -s "$PROM_CONF.new" "$PROM_CONF"; then
    rm -f "$PROM_CONF.new"
    return 1
  fi
  mv -f "$PROM_CONF.new" "$PROM_CONF"
  return 0
}

prom_start() {
  PROM_WAS_UP=0
  if prom_running; then
    PROM_WAS_UP=1
    if prom_render; then PROM_WAS_UP=2; fi # changed: prom_wait reloads it
    return 0
  fi
  require_free_port PROMSERVER prometheus
  rm -f "$PROM_PID"
  prom_render || true
  [[ -s "$PROM_LOG" ]] && mv -f "$PROM_LOG" "$PROM_LOG.1"
  # setsid keeps it out of our terminal's signals; the subshell execs into
  # prometheus itself, so $! is its pid
  (
    cd /
    exec 9>&- # the stack lock must not outlive this command
    exec setsid prometheus \
      --config.file="$PROM_CONF" \
      --web.listen-address="127.0.0.1:${PORT[PROMSERVER]}" \
      --web.enable-lifecycle \
      --storage.tsdb.path="$PROM_DIR/data" \
      --storage.tsdb.retention.time="$PROM_RETENTION" \
      --log.level=info \
      </dev/null >>"$PROM_LOG" 2>&1
  ) &
  echo $! >"$PROM_PID"
}

prom_wait() {
  local deadline=$(($(now) + TIMEOUT)) rc=0 what=up
  [[ "${PROM_WAS_UP:-0}" -ne 0 ]] && what="already up"
  wait_until "$deadline" "$(prom_pid)" prometheus prom_ready || rc=$?
  if [[ $rc -eq 0 ]] && ! prom_running; then
    rc=2 # what answers on the port is not this stack's Prometheus
  fi
  case $rc in
    0) ;;
    2) fail prometheus "the server exited during startup" "read $PROM_LOG" "$PROM_LOG" ;;
    *) fail prometheus "no 200 from $(prom_url)/-/ready within ${TIMEOUT}s" "read $PROM_LOG" "$PROM_LOG" ;;
  esac
  if [[ "${PROM_WAS_UP:-0}" -eq 2 ]]; then
    # the configuration changed under a running server: reload it (the
    # lifecycle API answers once the reload is done, 200 or why not)
    prom_http POST /-/reload
    [[ "$PROM_HTTP_CODE" == 200 ]] ||
      fail prometheus "the running server did not take the new configuration (HTTP ${PROM_HTTP_CODE:-no answer}: ${PROM_HTTP_BODY:0:200})" \
        "read $PROM_LOG; restart it: $PROG --name $NAME stop-one prometheus && $PROG --name $NAME up" "$PROM_LOG"
  fi
  printf '%-9s %-13s%s  (pid %s, targets %s)\n' \
    prometheus "$what" "$(prom_url)" "$(prom_pid)" "$PROM_TARGETS"
}

prom_stop() {
  local pid deadline
  pid="$(prom_pid)"
  deadline=$(($(now) + TIMEOUT))
  if pid_alive "$pid" prometheus; then
    kill -TERM "$pid" 2>/dev/null || true # writes the head block, then exits
    while pid_alive "$pid" prometheus && [[ $(now) -lt $deadline ]]; do sleep 0.1; done
    if pid_alive "$pid" prometheus; then
      ll_warn "prometheus (pid $pid) ignored SIGTERM for ${TIMEOUT}s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PROM_PID"
}

prom_status() {
  if prom_running && prom_ready; then
    printf '%-9s up     http://127.0.0.1:%s\n' prometheus "${PORT[PROMSERVER]}"
    return 0
  fi
  local note=""
  if prom_running; then
    note='  (process alive, /-/ready not answering)'
  fi
  printf '%-9s down   http://127.0.0.1:%s%s\n' prometheus "${PORT[PROMSERVER]}" "$note"
  return 1
}

prom_pids() {
  if prom_running; then
    echo "prometheus $(prom_pid)"
  fi
}
