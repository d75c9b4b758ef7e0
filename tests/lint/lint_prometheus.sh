#!/usr/bin/env bash
# tests/lint/lint_prometheus.sh - the monitoring files stay valid, with no
# server running:
#   1. `promtool check config` accepts ops/prometheus/prometheus.yml (the
#      compose one: its dns names need not resolve) and the local stack's
#      configuration rendered from ops/prometheus/stack.yml.in by
#      ops/lib/stack_prometheus.sh itself;
#   2. `promtool check rules` accepts ops/prometheus/alerts.yml; every alert
#      has a severity (critical, warning or info), a summary and a
#      description;
#   3. `promtool test rules ops/prometheus/alerts_test.yml` passes, and that
#      file makes EVERY alert fire (a non-empty exp_alerts) and checks it
#      silent at least once (exp_alerts: []);
#   4. ops/grafana/dashboards/ledgerline.json parses (jq), has its fixed uid,
#      unique panel ids, and every panel target has a non-empty expr on the
#      provisioned data source;
#   5. every metric name in those exprs and in the alert rules is one of
#      docs/operations.md's table (a histogram's _bucket/_sum/_count), a
#      process_* name or a rabbitmq_* one (the rules may also use `up`);
#   6. the Grafana provisioning files exist and name that data source uid.
# Without promtool or jq it FAILS, naming the package (never skips).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PROM="$ROOT/ops/prometheus"
GRAFANA="$ROOT/ops/grafana"
DASH="$GRAFANA/dashboards/ledgerline.json"
DS_FILE="$GRAFANA/provisioning/datasources/prometheus.yml"
DOCS="$ROOT/docs/operations.md"
DASH_UID=ledgerline-overview
DS_UID=ledgerline-prometheus
FAILS=0
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

ok() { printf 'ok - %s\n' "$1"; }
not_ok() {
  printf 'not ok - %s\n' "$1"
  FAILS=$((FAILS + 1))
}
# run LABEL CMD...: ok when CMD exits 0, otherwise not ok with its output.
run() {
  local label="$1" out
  shift
  if out="$("$@" 2>&1)"; then
    ok "$label"
  else
    not_ok "$label"
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
}

for tool in promtool:prometheus jq:jq; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || {
    echo "FAIL: '${tool%%:*}' is not installed"
    echo "fix: apt-get install -y ${tool#*:}   (or ./ops/test, which installs the project's Debian packages)"
    exit 1
  }
done

# --- 1. configurations ---------------------------------------------------------
run "promtool check config ops/prometheus/prometheus.yml (compose)" \
  promtool check config "$PROM/prometheus.yml"

# the stack's configuration, rendered by the function ops/stack uses
render_stack_config() {
  (
    # shellcheck source=ops/lib/common.sh
    . "$ROOT/ops/lib/common.sh"
    NAME=lint PROG=ops/stack STACK_DIR="$TMP/stack"
    declare -A PORT=([PROMSERVER]=9190 [PROMETHEUS]=15702)
    # shellcheck source=ops/lib/stack_common.sh
    . "$ROOT/ops/lib/stack_common.sh"
    # shellcheck source=ops/lib/stack_prometheus.sh
    . "$ROOT/ops/lib/stack_prometheus.sh"
    prom_write_config "$1"
  )
}
if render_stack_config "$TMP/stack.yml" 2>"$TMP/render.err"; then
  run "promtool check config of the stack's rendered ops/prometheus/stack.yml.in" \
    promtool check config "$TMP/stack.yml"
  if grep -q '@[A-Z_]*@' "$TMP/stack.yml"; then
    not_ok "the rendered stack configuration still has placeholders: $(grep -o '@[A-Z_]*@' "$TMP/stack.yml" | sort -u | tr '\n' ' ')"
  else
    ok "the rendered stack configuration has no placeholder left"
  fi
else
  not_ok "ops/lib/stack_prometheus.sh could not render ops/prometheus/stack.yml.in: $(cat "$TMP/render.err")"
fi

# --- 2. rules --------------------------------------------------------------------
run "promtool check rules ops/prometheus/alerts.yml" promtool check rules "$PROM/alerts.yml"

mapfile -t ALERTS < <(sed -nE 's/^ *- alert: *([A-Za-z0-9_]+) *$/\1/p' "$PROM/alerts.yml")
if [[ ${#ALERTS[@]} -eq 0 ]]; then
  not_ok "no alert found in ops/prometheus/alerts.yml"
fi
# alert_block NAME: the lines of one rule, from its "- alert:" to the next
alert_block() {
  awk -v n="$1" '/^ *- alert: / { on = ($3 == n) } on' "$PROM/alerts.yml"
}
for a in "${ALERTS[@]}"; do
  block="$(alert_block "$a")"
  missing=()
  grep -Eq '^ +severity: (critical|warning|info) *$' <<<"$block" || missing+=("labels.severity (critical|warning|info)")
  grep -Eq '^ +summary: ' <<<"$block" || missing+=("annotations.summary")
  grep -Eq '^ +description: ' <<<"$block" || missing+=("annotations.description")
  if [[ ${#missing[@]} -eq 0 ]]; then
    ok "alert $a has a severity, a summary and a description"
  else
    not_ok "alert $a lacks: ${missing[*]} (fix: add them in ops/prometheus/alerts.yml)"
  fi
done

# --- 3. rule tests ---------------------------------------------------------------
# shellcheck disable=SC2016 # $1 is the inner bash -c's argument
run "promtool test rules ops/prometheus/alerts_test.yml" \
  bash -c 'cd "$1" && promtool test rules alerts_test.yml' _ "$PROM"
for a in "${ALERTS[@]}"; do
  # block form: "alertname: A" then "exp_alerts:" and a list below it
  if grep -A1 -E "^ +alertname: $a *$" "$PROM/alerts_test.yml" | grep -Eq '^ +exp_alerts: *$'; then
    ok "alerts_test.yml makes $a fire"
  else
    not_ok "alerts_test.yml never expects $a to fire (fix: add input series and an alert_rule_test with exp_alerts for it)"
  fi
  if grep -Eq "alertname: $a(,| *$)" "$PROM/alerts_test.yml" &&
    { grep -A1 -E "^ +alertname: $a *$" "$PROM/alerts_test.yml" | grep -Eq 'exp_alerts: \[\]' ||
      grep -Eq "alertname: $a, exp_alerts: \[\]" "$PROM/alerts_test.yml"; }; then
    ok "alerts_test.yml checks a case where $a must not fire"
  else
    not_ok "alerts_test.yml has no case where $a must stay silent (fix: add one with exp_alerts: [])"
  fi
done

# --- 4. dashboard ---------------------------------------------------------------
if ! jq -e . "$DASH" >/dev/null 2>"$TMP/jq.err"; then
  not_ok "ops/grafana/dashboards/ledgerline.json does not parse: $(cat "$TMP/jq.err")"
else
  ok "ops/grafana/dashboards/ledgerline.json parses"
  got="$(jq -r .uid "$DASH")"
  if [[ "$got" == "$DASH_UID" ]]; then ok "the dashboard uid is $DASH_UID"; else not_ok "the dashboard uid is '$got', not $DASH_UID (links and provisioning rely on it)"; fi
  dup="$(jq -r '[.. | objects | select(has("gridPos")) | .id] | group_by(.) | map(select(length > 1) | .[0]) | join(" ")' "$DASH")"
  if [[ -z "$dup" ]]; then ok "panel ids are unique"; else not_ok "panel ids used twice: $dup"; fi
  # every panel with targets (rows' nested panels too)
  bad="$(jq -r '.. | objects | select(has("targets")) | .title as $t | .targets[] |
    select((.expr // "" | test("^\\s*$")) or .datasource.uid != "'"$DS_UID"'") | "\($t) (\(.refId))"' "$DASH")"
  n="$(jq '[.. | objects | select(has("targets")) | .targets[]] | length' "$DASH")"
  if [[ "$n" -gt 0 && -z "$bad" ]]; then
    ok "all $n panel targets have an expr and use data source $DS_UID"
  else
    not_ok "panel targets without an expr or on another data source than $DS_UID: ${bad:-no target at all}"
  fi
fi

# --- 5. metric names -----------------------------------------------------------------
# The table of docs/operations.md: | `name` | type | ...
allowed="$TMP/allowed"
# shellcheck disable=SC2016 # the backquotes are markdown, not a command
sed -nE 's/^\| `(ledgerline_[a-z0-9_]+)` \| ([a-z]+).*/\1 \2/p' "$DOCS" |
  while read -r name type; do
    if [[ "$type" == histogram ]]; then
      printf '%s_bucket\n%s_sum\n%s_count\n' "$name" "$name" "$name"
    else
      printf '%s\n' "$name"
    fi
  done >"$allowed"
if [[ ! -s "$allowed" ]]; then
  not_ok "no metric found in the table of docs/operations.md (has its format changed?)"
fi
# metric_names: each PromQL expression on stdin (one JSON string per line)
# -> the metric names it uses, one per line. Strings, label matchers,
# ranges and label lists (by, on, ...) go first; what is left and not a
# function call, keyword or number is a metric name.
metric_names() {
  jq -r '
    gsub("\"(?:[^\"\\\\]|\\\\.)*\""; "")
    | gsub("\\{[^}]*\\}"; "")
    | gsub("\\[[^\\]]*\\]"; "")
    | gsub("\\b(by|without|on|ignoring|group_left|group_right)\\s*\\([^)]*\\)"; "")
    | [scan("(?<![A-Za-z0-9_:.])[A-Za-z_:][A-Za-z0-9_:]*\\b(?!\\s*\\()")]
    | .[] | select(test("^(and|or|unless|offset|bool|by|without|on|ignoring|group_left|group_right|inf|nan|Inf|NaN)$") | not)'
}
# check_names WHAT EXTRA_ALLOWED_REGEX: expressions (JSON strings) on stdin
# (not a pipeline's last command: it counts FAILS in this shell)
check_names() {
  local what="$1" extra="$2" names unknown=() name
  names="$(metric_names | sort -u)"
  while IFS= read -r name; do
    [[ -n "$name" ]] || continue
    [[ "$name" =~ ^(process_|rabbitmq_) ]] && continue
    [[ -n "$extra" && "$name" =~ $extra ]] && continue
    grep -qxF "$name" "$allowed" || unknown+=("$name")
  done <<<"$names"
  if [[ ${#unknown[@]} -eq 0 ]]; then
    ok "$what use only documented metric names ($(wc -l <<<"$names") distinct)"
  else
    not_ok "$what use metric names that docs/operations.md does not list: ${unknown[*]} (fix: correct the name, or document the metric there first)"
  fi
}
if jq -e . "$DASH" >/dev/null 2>&1; then
  # the template variables take their "All" value (.*)
  # shellcheck disable=SC2016 # $stage and $instance are Grafana's, not the shell's
  check_names "the dashboard's panel queries" "" < <(
    jq '.. | objects | select(has("targets")) | .targets[] | .expr // ""' "$DASH" |
      sed -e 's/\$stage/.*/g; s/\$instance/.*/g'
  )
fi
# the rules' expressions: "expr: X" on one line, or "expr: >-" / "|" and the
# lines indented deeper
check_names "the alert rules" '^up$' < <(awk '
  function flush() { if (buf != "") { gsub(/\\/, "\\\\", buf); gsub(/"/, "\\\"", buf); print "\"" buf "\"" }; buf = "" }
  /^ *expr: *[>|]-? *$/ { flush(); match($0, /^ */); ind = RLENGTH; inblock = 1; next }
  inblock { match($0, /^ */); if (RLENGTH > ind && $0 !~ /^ *$/) { sub(/^ */, ""); buf = buf " " $0; next } else { inblock = 0; flush() } }
  /^ *expr: / { flush(); sub(/^ *expr: */, ""); buf = $0; flush() }
  END { flush() }' "$PROM/alerts.yml")

# --- 6. grafana provisioning ---------------------------------------------------
if [[ -f "$DS_FILE" ]] && grep -Eq "^ +uid: $DS_UID *$" "$DS_FILE"; then
  ok "the provisioned data source has uid $DS_UID"
else
  not_ok "$DS_FILE is missing or does not define uid $DS_UID (the dashboard's targets use it)"
fi
if [[ -f "$GRAFANA/provisioning/dashboards/ledgerline.yml" ]] &&
  grep -Eq '^ +path: /' "$GRAFANA/provisioning/dashboards/ledgerline.yml"; then
  ok "the dashboard provider names the folder Grafana loads the dashboards from"
else
  not_ok "ops/grafana/provisioning/dashboards/ledgerline.yml is missing or has no options.path"
fi

if [[ $FAILS -ne 0 ]]; then
  echo "FAIL: $FAILS check(s) failed"
  exit 1
fi
echo "PASS"
