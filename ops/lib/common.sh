# shellcheck shell=bash
# ops/lib/common.sh - shared bash for the operator scripts (ops/run, ops/test,
# ops/stack). Source it; it defines functions and LL_ROOT, runs nothing.
#
# Public API:
#   LL_ROOT                       absolute path of the checkout
#   LL_DEPS                       the one list of Debian packages the project needs
#   ll_info MSG...                "ledgerline: MSG" on stderr
#   ll_warn MSG...                "ledgerline: warning: MSG" on stderr
#   ll_error PROBLEM [FIX]        prints the problem and how to fix it, returns 1
#   ll_die PROBLEM [FIX]          ll_error, then exit 1
#   ll_need_cmd CMD [PACKAGE]     dies (naming the package) if CMD is not on PATH
#   ll_as_root CMD...             runs CMD as root (directly, or through sudo)
#   ll_missing_deps               prints the packages of LL_DEPS not installed
#   ll_install_deps               installs only the missing packages of LL_DEPS
#   ll_build DIR TYPE [ARGS...]   cmake configure (TYPE = Debug|Release) + build
#   ll_fresh_ledger CTL DB        an empty, migrated ledger DB on the exported
#                                 stack, its topology declared; exports
#                                 LEDGERLINE_POSTGRES_DBNAME=DB
#
# Every error names the problem and the command that fixes it.

if [[ -n "${LL_COMMON_SH_LOADED:-}" ]]; then
  return 0
fi
LL_COMMON_SH_LOADED=1

LL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# iproute2 (ss) and procps (ps, pgrep) are in a standard Debian install but
# not in the slim container images a fresh CI host may start from; jq reads
# the JSON reports of `ledgerctl bench` in ops/bench; shellcheck lints the
# shell scripts (tests/lint/check_shell.sh); libmicrohttpd serves the
# workers' /healthz, /readyz and /metrics; libcurl is ledgerctl's client of
# the RabbitMQ management API and of those endpoints; prometheus brings
# promtool and the server the test stack scrapes the workers with; openssl
# makes keys in the README's signing example; python3-yaml reads compose.yaml
# in tests/lint/lint_compose.sh; zlib compresses `ledgerctl archive`'s files;
# postgresql-15-pgtap (pgTAP) runs the SQL-level suites of tests/sql/
LL_DEPS=(build-essential cmake pkg-config git librabbitmq-dev libhiredis-dev
  libpq-dev libyaml-dev libjansson-dev libssl-dev check libsubunit-dev zlib1g-dev
  rabbitmq-server redis-server postgresql docker-compose clang-format bc
  iproute2 procps jq shellcheck libmicrohttpd-dev libcurl4-openssl-dev prometheus
  openssl python3-yaml clang libclang-rt-14-dev valgrind postgresql-15-pgtap)

ll_info() {
  printf 'ledgerline: %s\n' "$*" >&2
}

ll_warn() {
  printf 'ledgerline: warning: %s\n' "$*" >&2
}

# ll_error PROBLEM [FIX]: always returns 1 so `ll_error ... || return` reads well.
ll_error() {
  printf 'ledgerline: error: %s\n' "$1" >&2
  if [[ -n "${2:-}" ]]; then
    printf 'ledgerline:   fix: %s\n' "$2" >&2
  fi
  return 1
}

ll_die() {
  ll_error "$@" || true
  exit 1
}

ll_need_cmd() {
  local cmd="$1" pkg="${2:-$1}"
  command -v "$cmd" >/dev/null 2>&1 ||
    ll_die "'$cmd' is not installed" "install it: apt-get install -y $pkg (or run ./ops/run, which installs all dependencies)"
}

# ll_as_root CMD...: root runs it directly; others go through sudo.
ll_as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    ll_error "'$*' needs root and sudo is not installed" \
      "run it as root (su -c '$*'), or install sudo"
  fi
}

# Prints, one per line, the packages of LL_DEPS that are not fully installed.
ll_missing_deps() {
  local pkg status
  for pkg in "${LL_DEPS[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
    if [[ "$status" != "installed" ]]; then
      printf '%s\n' "$pkg"
    fi
  done
  # kubectl (for `kubectl kustomize` in the manifest test) may come from
  # another vendor's package (cloud SDKs ship one): Debian's only if none
  if ! command -v kubectl >/dev/null 2>&1; then
    printf '%s\n' kubernetes-client
  fi
}

# Installs only what is missing; `apt-get update` runs once, and only then.
# Package post-install scripts try to start the servers: a temporary
# policy-rc.d refuses that (without an init system they would fail, with
# systemd they would start Debian's own servers), and under systemd the
# server services this run installed are disabled. ops/stack starts the
# servers Ledgerline uses.
ll_install_deps() {
  local missing=() pkg
  command -v dpkg-query >/dev/null 2>&1 ||
    ll_die "dpkg-query not found: this script supports Debian 12 (bookworm) only" \
      "install the packages by hand: ${LL_DEPS[*]}"
  while IFS= read -r pkg; do
    [[ -n "$pkg" ]] && missing+=("$pkg")
  done < <(ll_missing_deps)
  if [[ ${#missing[@]} -eq 0 ]]; then
    return 0
  fi

  local cmd="DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  local -a sudo_cmd=()
  if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo_cmd=(sudo)
    else
      ll_die "missing Debian packages: ${missing[*]} (installing them needs root, and sudo is not installed)" \
        "as root run: apt-get update && $cmd"
    fi
  fi

  ll_info "installing missing packages: ${missing[*]}"
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e "$policy" ]]; then
    # forbid service starts during the install (exit 101 = "action forbidden"):
    # without an init system they would fail; with systemd they would start
    # the Debian-wide servers (RabbitMQ and epmd on every interface)
    if "${sudo_cmd[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 0755 $policy"; then
      made_policy=1
    fi
  fi
  local rc=0
  "${sudo_cmd[@]}" apt-get update -q || rc=$?
  if [[ $rc -eq 0 ]]; then
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
  fi
  if [[ $made_policy -eq 1 ]]; then
    "${sudo_cmd[@]}" rm -f "$policy" || true
  fi
  # with systemd, the server packages this run installed are enabled for the
  # next boot: Ledgerline runs its own servers (ops/stack), so these stay off
  if [[ $rc -eq 0 && -d /run/systemd/system ]]; then
    local -a units=()
    for pkg in "${missing[@]}"; do
      case "$pkg" in
        rabbitmq-server) units+=(rabbitmq-server.service epmd.socket epmd.service) ;;
        redis-server) units+=(redis-server.service) ;;
        postgresql) units+=(postgresql.service) ;;
        prometheus) units+=(prometheus.service) ;;
      esac
    done
    if [[ ${#units[@]} -gt 0 ]]; then
      ll_info "disabling the system-wide services just installed (${units[*]}): ops/stack runs its own servers on 127.0.0.1; to use Debian's instead: systemctl enable --now ${units[*]}"
      "${sudo_cmd[@]}" systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true
    fi
  fi
  if [[ $rc -ne 0 ]]; then
    ll_die "installing ${missing[*]} failed (apt-get exit status $rc; see the output above)" \
      "fix the apt error, then run: ${sudo_cmd[*]:+${sudo_cmd[*]} }apt-get update && ${sudo_cmd[*]:+${sudo_cmd[*]} }$cmd (after an interrupted install: dpkg --configure -a)"
  fi
  # a package that failed to configure still leaves something missing
  local still
  still="$(ll_missing_deps | tr '\n' ' ')"
  if [[ -n "${still// /}" ]]; then
    ll_die "packages still not installed after apt-get: $still" \
      "run: ${sudo_cmd[*]:+${sudo_cmd[*]} }dpkg --configure -a && ${sudo_cmd[*]:+${sudo_cmd[*]} }$cmd"
  fi
}

# ll_build DIR BUILD_TYPE [extra cmake args...]: configure + build with all CPUs.
ll_build() {
  local dir="$1" type="$2"
  shift 2
  ll_need_cmd cmake
  [[ "$dir" = /* ]] || dir="$LL_ROOT/$dir"
  ll_info "configuring $type build in $dir"
  cmake -S "$LL_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="$type" "$@" ||
    ll_die "cmake configure failed for $dir (see the messages above)" \
      "fix the reported problem; if the cache is stale, delete it: rm -rf $dir"
  ll_info "building $dir with $(nproc) jobs"
  cmake --build "$dir" -j"$(nproc)" ||
    ll_die "the build in $dir failed (see the compiler messages above)" \
      "fix the first error reported, then re-run"
}

ll_fresh_ledger() {
  local ctl="$1" db="$2"
  PGPASSWORD="$(cat "$LEDGERLINE_POSTGRES_PASSWORD_FILE")" psql -qAtX -h "$LEDGERLINE_POSTGRES_HOST" \
    -p "$LEDGERLINE_POSTGRES_PORT" -U "$LEDGERLINE_POSTGRES_USER" -d postgres \
    -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
    -c "CREATE DATABASE $db" >/dev/null ||
    ll_die "could not recreate database $db" "is the stack up? eval \"\$(ops/stack env)\" first"
  export LEDGERLINE_POSTGRES_DBNAME="$db"
  "$ctl" migrate >/dev/null || ll_die "ledgerctl migrate failed on $db" "see its message above"
  "$ctl" topology apply >/dev/null || ll_die "ledgerctl topology apply failed" "see its message above"
}
