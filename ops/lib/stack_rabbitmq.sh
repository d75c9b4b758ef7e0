# shellcheck shell=bash
# ops/lib/stack_rabbitmq.sh - the RabbitMQ 3.10 server of ops/stack: its own
# epmd and node (ledgerline-NAME@localhost) on 127.0.0.1, AMQP and AMQP over
# TLS (the stack's certificates, copied to rabbitmq/tls/), files under
# .stack/NAME/rabbitmq/. Source it from ops/stack once STACK_DIR is set (the
# paths below derive from it); it defines variables and functions, runs
# nothing.
#
# Public API, the face every server file of ops/stack has (prefix rmq_):
#   rmq_need_tools   dies, naming the package, if a program it needs is missing
#   rmq_user         the system user the server runs as (rabbitmq)
#   rmq_start        starts the node unless it runs; it boots in the background
#   rmq_wait         waits until the node started by rmq_start answers AMQP,
#                    prints its "up"/"already up" line
#   rmq_stop         stops the node and the stack's epmd (data is kept)
#   rmq_status       prints its status line; 0 when AMQP answers
#   rmq_running      0 when the node's beam.smp lives
#   rmq_pids         "rabbitmq PID" and "epmd PID" for the live processes
#   rmq_log          the path of its log
# Also: rmq_pid, rmq_ctl (rabbitmqctl for this node), epmd_pid,
# amqp_answers PORT (0 when an AMQP 0-9-1 broker answers on 127.0.0.1:PORT),
# amqps_answers PORT (0 when a TLS handshake on 127.0.0.1:PORT verifies
# against the stack's CA).
#
# Reads what ops/stack sets: NAME, NODE, PROG, TIMEOUT, STACK_DIR, TLS_DIR,
# the PORT array (AMQP AMQPS MGMT PROMETHEUS EPMD DIST) and secret(); uses
# ops/lib/stack_common.sh.

RMQ_DIR="$STACK_DIR/rabbitmq"
RMQ_PID="$RMQ_DIR/rabbitmq.pid"
RMQ_LAUNCHER_PID="$RMQ_DIR/launcher.pid"
RMQ_LOG="$RMQ_DIR/log/rabbit.log"
RMQ_STARTUP_LOG="$RMQ_DIR/startup.log"

rmq_need_tools() {
  ll_need_cmd rabbitmq-server rabbitmq-server
  ll_need_cmd epmd erlang-base
}
rmq_user() { echo rabbitmq; }
rmq_log() { echo "$RMQ_LOG"; }

rmq_env() {
  export RABBITMQ_NODENAME="$NODE"
  export RABBITMQ_USE_LONGNAME=false
  export RABBITMQ_CONF_ENV_FILE="$RMQ_DIR/rabbitmq-env.conf"
  export RABBITMQ_CONFIG_FILE="$RMQ_DIR/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_DIR/advanced.config"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_DIR/enabled_plugins"
  export RABBITMQ_MNESIA_BASE="$RMQ_DIR/mnesia"
  export RABBITMQ_LOG_BASE="$RMQ_DIR/log"
  export RABBITMQ_LOGS="$RMQ_LOG"
  export RABBITMQ_PID_FILE="$RMQ_PID"
  export RABBITMQ_DIST_PORT="${PORT[DIST]}"
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export ERL_EPMD_PORT="${PORT[EPMD]}"
}

# rabbitmqctl finds the node through the stack's epmd port and node name
rmq_ctl() { (rmq_env && cd / && exec timeout "$((TIMEOUT + 10))" rabbitmqctl -n "$NODE" "$@" 9>&-); }

# The launcher (/usr/sbin/rabbitmq-server -> su -> ... -> beam.smp) lives as
# long as the node, from before the pid file exists until after it is gone.
rmq_launcher_alive() { pid_alive "$(pid_from_file "$RMQ_LAUNCHER_PID")" rabbitmq-server; }

# the node's beam.smp: from its pid file, else the beam.smp whose environment
# names this stack's node (the pid file appears only during boot)
rmq_is_ours() { tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | grep -qxF "RABBITMQ_NODENAME=$NODE"; }
rmq_pid() {
  local pid
  pid="$(pid_from_file "$RMQ_PID")"
  if pid_alive "$pid" beam.smp && rmq_is_ours "$pid"; then
    echo "$pid"
    return 0
  fi
  for pid in $(pgrep -x beam.smp 2>/dev/null); do
    if rmq_is_ours "$pid"; then
      echo "$pid"
      return 0
    fi
  done
  return 0
}

rmq_running() { pid_alive "$(rmq_pid)" beam.smp; }
rmq_answers() { rmq_running && amqp_answers "${PORT[AMQP]}"; }

epmd_pid() {
  local line
  line="$(ss -Hltnp "sport = :${PORT[EPMD]}" 2>/dev/null | grep -m1 '"epmd"' || true)"
  if [[ "$line" =~ pid=([0-9]+) ]]; then
    printf '%s' "${BASH_REMATCH[1]}"
  fi
}

# Speaks the first step of AMQP 0-9-1: a broker answers the protocol header
# with a connection.start method frame (type 1).
amqp_answers() {
  local tcp_port="$1" fd b
  # (the braces: `exec ... 2>/dev/null` alone would silence this shell's
  # stderr for good once the connection succeeds)
  { exec {fd}<>"/dev/tcp/127.0.0.1/$tcp_port"; } 2>/dev/null || return 1
  printf 'AMQP\x00\x00\x09\x01' 1>&"$fd" 2>/dev/null || {
    exec {fd}>&-
    return 1
  }
  b=""
  IFS= read -r -t 5 -N 1 -u "$fd" b 2>/dev/null || true
  exec {fd}>&-
  [[ "$b" == $'\x01' ]]
}

# A TLS handshake that verifies the server's certificate (chain and name)
# against the stack's CA: the listener is up and can read its files.
amqps_answers() {
  timeout 10 openssl s_client -connect "127.0.0.1:$1" -servername localhost \
    -CAfile "$TLS_DIR/ca.crt" -verify_hostname localhost -verify_return_error </dev/null >/dev/null 2>&1
}

rmq_write_config() {
  mkdir -p "$RMQ_DIR/mnesia" "$RMQ_DIR/log" "$RMQ_DIR/tls"
  # the node runs as rabbitmq and reads its own copies (the key is root's)
  cp -f "$TLS_DIR/ca.crt" "$TLS_DIR/server.crt" "$TLS_DIR/server.key" "$RMQ_DIR/tls/"
  chmod 0700 "$RMQ_DIR/tls"
  chmod 0600 "$RMQ_DIR/tls/"*
  : >"$RMQ_DIR/rabbitmq-env.conf"
  printf '[rabbitmq_management,rabbitmq_prometheus,rabbitmq_consistent_hash_exchange].\n' \
    >"$RMQ_DIR/enabled_plugins"
  (
    umask 077
    cat >"$RMQ_DIR/rabbitmq.conf" <<EOF
# generated by ops/stack for stack '$NAME'; rewritten at every start
listeners.tcp.default = 127.0.0.1:${PORT[AMQP]}
# amqps: the stack's server certificate; a client certificate is verified
# when one is given, none is required
listeners.ssl.default = 127.0.0.1:${PORT[AMQPS]}
ssl_options.cacertfile = $RMQ_DIR/tls/ca.crt
ssl_options.certfile = $RMQ_DIR/tls/server.crt
ssl_options.keyfile = $RMQ_DIR/tls/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
management.tcp.ip = 127.0.0.1
management.tcp.port = ${PORT[MGMT]}
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = ${PORT[PROMETHEUS]}
default_vhost = /
default_user = ledgerline
default_pass = $(secret amqp)
default_permissions.configure = .*
default_permissions.read = .*
default_permissions.write = .*
default_user_tags.administrator = true
loopback_users = none
disk_free_limit.absolute = 200MB
log.console = false
log.file.level = info
EOF
  )
  chown -R rabbitmq:rabbitmq "$RMQ_DIR"
  chmod 0750 "$RMQ_DIR"
}

# rmq_start: starts the node in the background (does not wait: rmq_wait does).
rmq_start() {
  if rmq_running || rmq_launcher_alive; then
    RMQ_WAS_UP=1
    return 0
  fi
  RMQ_WAS_UP=0
  local key
  for key in AMQP AMQPS MGMT PROMETHEUS DIST; do
    require_free_port "$key" rabbitmq
  done
  rm -f "$RMQ_PID" "$RMQ_LAUNCHER_PID"
  rmq_write_config
  # the stack's own epmd, loopback only, on the stack's port
  if [[ -z "$(epmd_pid)" ]]; then
    require_free_port EPMD rabbitmq
    (cd / && ERL_EPMD_ADDRESS=127.0.0.1 runuser -u rabbitmq -- \
      epmd -address 127.0.0.1 -port "${PORT[EPMD]}" -daemon </dev/null >/dev/null 2>&1 9>&-) ||
      fail rabbitmq "epmd did not start on port ${PORT[EPMD]}" \
        "check 'epmd -port ${PORT[EPMD]} -names'; or choose another port: export LEDGERLINE_STACK_EPMD_PORT=<port>"
    local i
    for ((i = 0; i < 50; i++)); do
      [[ -n "$(epmd_pid)" ]] && break
      sleep 0.1
    done
  fi
  # a fresh log per boot, so a failure shows this boot's lines
  [[ -s "$RMQ_LOG" ]] && mv -f "$RMQ_LOG" "$RMQ_LOG.1"
  : >"$RMQ_STARTUP_LOG"
  # /usr/sbin/rabbitmq-server switches to the rabbitmq user with su (the
  # environment is kept); setsid keeps it out of our terminal's signals.
  (
    rmq_env
    cd /
    exec 9>&- # the stack lock must not outlive this command
    exec setsid rabbitmq-server </dev/null >>"$RMQ_STARTUP_LOG" 2>&1
  ) &
  echo $! >"$RMQ_LAUNCHER_PID"
}

rmq_wait() {
  if [[ "${RMQ_WAS_UP:-0}" -eq 1 ]]; then
    # running, but maybe still booting (an earlier 'up' that gave up early)
    wait_until $(($(now) + TIMEOUT)) "$(pid_from_file "$RMQ_LAUNCHER_PID")" rabbitmq-server rmq_answers ||
      fail rabbitmq "the node (launcher pid $(pid_from_file "$RMQ_LAUNCHER_PID")) runs but AMQP port ${PORT[AMQP]} does not answer" \
        "read the log ('$PROG --name $NAME logs rabbitmq'); restart it: $PROG --name $NAME stop-one rabbitmq && $PROG --name $NAME up" \
        "$RMQ_LOG"
    printf '%-9s already up   amqp 127.0.0.1:%s  amqps :%s  management :%s  prometheus :%s  (node %s, pid %s)\n' \
      rabbitmq "${PORT[AMQP]}" "${PORT[AMQPS]}" "${PORT[MGMT]}" "${PORT[PROMETHEUS]}" "$NODE" "$(rmq_pid)"
    return 0
  fi
  local deadline=$(($(now) + TIMEOUT)) launcher wpid rc=1
  launcher="$(pid_from_file "$RMQ_LAUNCHER_PID")"
  # rabbitmqctl wait returns once the pid file exists and the rabbit app runs
  rmq_ctl wait "$RMQ_PID" --timeout "$TIMEOUT" >"$RMQ_DIR/wait.log" 2>&1 &
  wpid=$!
  while :; do
    if ! kill -0 "$wpid" 2>/dev/null; then
      wait "$wpid" && rc=0 || rc=$?
      break
    fi
    if ! pid_alive "$launcher"; then
      sleep 0.5
      kill "$wpid" 2>/dev/null || true
      wait "$wpid" 2>/dev/null || true
      fail rabbitmq "the node exited during startup" \
        "read $RMQ_STARTUP_LOG and $RMQ_LOG; '$PROG --name $NAME logs rabbitmq'" \
        "$([[ -s $RMQ_LOG ]] && echo "$RMQ_LOG" || echo "$RMQ_STARTUP_LOG")"
    fi
    if [[ $(now) -ge $deadline ]]; then
      kill "$wpid" 2>/dev/null || true
      wait "$wpid" 2>/dev/null || true
      break
    fi
    sleep 0.3
  done
  if [[ $rc -ne 0 ]]; then
    fail rabbitmq "node $NODE did not finish booting within ${TIMEOUT}s (rabbitmqctl wait: $(tail -n 1 "$RMQ_DIR/wait.log" 2>/dev/null))" \
      "read the log ('$PROG --name $NAME logs rabbitmq'); raise LEDGERLINE_STACK_TIMEOUT if the machine is just slow" \
      "$RMQ_LOG"
  fi
  wait_until "$deadline" "$(rmq_pid)" beam.smp amqp_answers "${PORT[AMQP]}" ||
    fail rabbitmq "node booted but AMQP port ${PORT[AMQP]} does not answer" \
      "read the log ('$PROG --name $NAME logs rabbitmq')" "$RMQ_LOG"
  wait_until "$deadline" "$(rmq_pid)" beam.smp amqps_answers "${PORT[AMQPS]}" ||
    fail rabbitmq "node booted but no TLS handshake on its amqps port ${PORT[AMQPS]} verifies against $TLS_DIR/ca.crt" \
      "read the log ('$PROG --name $NAME logs rabbitmq'); if the certificates are broken: $PROG --name $NAME down && rm -rf $TLS_DIR && $PROG --name $NAME up" \
      "$RMQ_LOG"
  printf '%-9s up           amqp 127.0.0.1:%s  amqps :%s  management :%s  prometheus :%s  (node %s, pid %s)\n' \
    rabbitmq "${PORT[AMQP]}" "${PORT[AMQPS]}" "${PORT[MGMT]}" "${PORT[PROMETHEUS]}" "$NODE" "$(rmq_pid)"
}

rmq_stop() {
  local pid launcher deadline
  launcher="$(pid_from_file "$RMQ_LAUNCHER_PID")"
  deadline=$(($(now) + TIMEOUT))
  pid="$(rmq_pid)"
  # still booting, before beam.smp exists: give it a moment to appear
  while [[ -z "$pid" ]] && rmq_launcher_alive && [[ $(now) -lt $((deadline - TIMEOUT + 15)) ]]; do
    sleep 0.2
    pid="$(rmq_pid)"
  done
  if pid_alive "$pid" beam.smp; then
    # RabbitMQ 3.10 shuts down gracefully on SIGTERM (like 'rabbitmqctl
    # stop', without the second or two the CLI needs to boot)
    kill -TERM "$pid" 2>/dev/null || true
    while pid_alive "$pid" beam.smp && [[ $(now) -lt $deadline ]]; do sleep 0.2; done
    if pid_alive "$pid" beam.smp; then
      ll_warn "rabbitmq (pid $pid) ignored the stop request for ${TIMEOUT}s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  if pid_alive "$launcher" rabbitmq-server; then
    local c
    for c in $(proc_descendants "$launcher") "$launcher"; do
      kill -TERM "$c" 2>/dev/null || true
    done
  fi
  # the stack's own epmd, nothing else's
  local epid
  epid="$(epmd_pid)"
  if [[ -n "$epid" ]]; then
    ERL_EPMD_PORT="${PORT[EPMD]}" epmd -port "${PORT[EPMD]}" -kill >/dev/null 2>&1 || true
    local i
    for ((i = 0; i < 30; i++)); do
      pid_alive "$epid" epmd || break
      sleep 0.1
    done
    if pid_alive "$epid" epmd; then
      kill -TERM "$epid" 2>/dev/null || true
    fi
  fi
  rm -f "$RMQ_PID" "$RMQ_LAUNCHER_PID"
}

rmq_status() {
  if rmq_running && amqp_answers "${PORT[AMQP]}"; then
    printf '%-9s up     amqp 127.0.0.1:%s  amqps :%s  management :%s  prometheus :%s  epmd :%s  dist :%s\n' \
      rabbitmq "${PORT[AMQP]}" "${PORT[AMQPS]}" "${PORT[MGMT]}" "${PORT[PROMETHEUS]}" "${PORT[EPMD]}" "${PORT[DIST]}"
    return 0
  fi
  local note=""
  if rmq_running; then
    note='  (process alive, AMQP not answering)'
  fi
  printf '%-9s down   amqp 127.0.0.1:%s%s\n' rabbitmq "${PORT[AMQP]}" "$note"
  return 1
}

rmq_pids() {
  local pid
  pid="$(rmq_pid)"
  if pid_alive "$pid" beam.smp; then
    echo "rabbitmq $pid"
  fi
  pid="$(epmd_pid)"
  if [[ -n "$pid" ]]; then
    echo "epmd $pid"
  fi
}

