# shellcheck shell=bash
# ops/lib/stack_common.sh - the helpers ops/stack and its server files
# (ops/lib/stack_{rabbitmq,redis,postgres,prometheus}.sh) share: processes, ports,
# deadlines and the one way a server start fails. Source it (ops/stack does);
# it defines functions, runs nothing.
#
# Public API:
#   now                           seconds since the epoch
#   pid_alive PID [COMM]          0 if PID lives (and its /proc comm is COMM)
#   pid_from_file FILE            the digits of FILE's first line, empty if none
#   proc_descendants PID          every descendant pid of PID, one per line
#   port_owner PORT               "process (pid N)" listening on PORT, empty if free
#   require_free_port KEY SERVER  fail unless PORT[KEY] is free
#   fail SERVER WHY FIX [LOG]     prints the failure, fix and log tail; exit 1
#   wait_until DEADLINE PID COMM CHECK...
#                                 polls CHECK: 0 ok, 1 deadline passed, 2 PID died
#
# Reads what ops/stack sets: NAME, PROG and the PORT array.

now() { date +%s; }

pid_alive() { # PID [COMM]
  local pid="$1" comm="${2:-}"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  if [[ -n "$comm" ]]; then
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$comm" ]] || return 1
  fi
  return 0
}

pid_from_file() { # FILE -> first line, if any
  if [[ -r "$1" ]]; then
    head -n 1 "$1" 2>/dev/null | tr -dc '0-9' || true
  fi
}

proc_descendants() { # PID -> every descendant pid, one per line
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$c"
    proc_descendants "$c"
  done
}

port_owner() { # PORT -> "process (pid N)" of a listener, empty if free
  local line
  line="$(ss -Hltnp "sport = :$1" 2>/dev/null | head -n 1)"
  [[ -n "$line" ]] || return 0
  if [[ "$line" =~ users:\(\(\"([^\"]+)\",pid=([0-9]+) ]]; then
    printf '%s (pid %s)' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
  else
    printf 'an unknown process'
  fi
}

require_free_port() { # KEY SERVER
  local key="$1" server="$2" owner
  owner="$(port_owner "${PORT[$key]}")"
  [[ -z "$owner" ]] ||
    fail "$server" "its $key port ${PORT[$key]} is already in use by $owner" \
      "stop that process, or choose another port: export LEDGERLINE_STACK_${key}_PORT=<port> (see $PROG --help)"
}

# fail SERVER WHY FIX [LOGFILE]: prints the failure and the log tail, exits 1.
fail() {
  local server="$1" why="$2" fix="$3" log="${4:-}"
  printf 'ledgerline: error: %s (stack %s) failed: %s\n' "$server" "$NAME" "$why" >&2
  if [[ -n "$log" && -s "$log" ]]; then
    printf 'ledgerline: last 30 lines of %s:\n' "$log" >&2
    tail -n 30 "$log" | sed 's/^/    /' >&2
  fi
  printf 'ledgerline:   fix: %s\n' "$fix" >&2
  exit 1
}

# wait_until DEADLINE PID COMM CHECK...: polls CHECK until it succeeds (0),
# the process PID dies (2) or DEADLINE passes (1).
wait_until() {
  local deadline="$1" pid="$2" comm="$3"
  shift 3
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [[ -n "$pid" ]] && ! pid_alive "$pid" "$comm"; then
      "$@" >/dev/null 2>&1 && return 0
      return 2
    fi
    [[ $(now) -lt $deadline ]] || return 1
    sleep 0.3
  done
}
