#!/usr/bin/env bash
# tests/lint/lint_k8s.sh - the Kubernetes base ops/k8s builds and says what
# the workers need; static, no cluster:
#   1. `kubectl kustomize ops/k8s` succeeds (with every kubectl named in
#      LEDGERLINE_LINT_KUBECTLS, default: the one on PATH), and
#      kustomization.yaml uses only fields kustomize v2 (kubectl 1.20) knows;
#   2. in the built objects: one Namespace holding everything; per worker
#      kind a Deployment (no replicas field: KEDA owns the count) whose
#      startup and liveness probes GET /healthz and readiness probe GETs
#      /readyz on the kind's port (risk 9471, payment 9472, settlement 9473,
#      refund 9474, funds 9475, docs/operations.md), with requests and
#      limits, a grace period above
#      worker.shutdown_timeout_ms + 5 s, non-root, read-only root, no
#      capabilities, prometheus.io annotations on that port; a
#      PodDisruptionBudget selecting its pods; a KEDA ScaledObject on its
#      queue with the rabbitmq trigger, protocol http, mode QueueLength, a
#      TriggerAuthentication that reads `host` from a Secret, and at least
#      one replica; each worker runs as its kind's least-privilege RabbitMQ
#      user (ledgerline-<kind>, not the admin password) and risk and payment
#      have an approval key file; funds-worker, which screens withdrawals
#      with the risk settings, has the risk-worker's LEDGERLINE_RISK_* and
#      a blocklist file from the same volume source; the migrate Job runs
#      `ledgerctl migrate` and `ledgerctl topology apply` with
#      LEDGERLINE_AMQP_MANAGEMENT_URL, then `ledgerctl users apply` and
#      `ledgerctl keys generate`, and mounts the password of every user of
#      schemas/users.json (users apply needs each one: the workers', the
#      producer's, the rail adapters', the monitor's);
#   3. every LEDGERLINE_* variable is a setting of common/settings.c (a
#      worker refuses to start on an unknown one), every *_FILE names a file
#      of a mounted Secret, and secret.example.yaml holds those Secrets with
#      placeholder values and stays out of the base.
# kubectl prints YAML; `kubectl annotate --local -o json` turns it into JSON
# without a cluster, and jq checks it. The checker is also run over broken
# copies of ops/k8s and must reject each one, so this test can fail.
# Without kubectl or jq it FAILS, naming the fix.
set -uo pipefail

ROOT="${LL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
K8S="$ROOT/ops/k8s"
SETTINGS_C="$ROOT/common/settings.c"
USERS_JSON="$ROOT/schemas/users.json"
FAILS=0
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

ok() { printf 'ok - %s\n' "$1"; }
not_ok() {
  printf 'not ok - %s\n' "$1"
  FAILS=$((FAILS + 1))
}

read -r -a KUBECTLS <<<"${LEDGERLINE_LINT_KUBECTLS:-kubectl}"
for k in "${KUBECTLS[@]}"; do
  command -v "$k" >/dev/null 2>&1 || {
    echo "FAIL: '$k' is not installed (fix: apt-get install -y kubernetes-client, or run ./ops/test, which installs it when no kubectl exists)"
    exit 1
  }
done
KUBECTL="${KUBECTLS[0]}"
command -v jq >/dev/null 2>&1 || {
  echo "FAIL: jq is not installed (fix: apt-get install -y jq, or run ./ops/test, which installs the project's Debian packages)"
  exit 1
}
[[ -f "$K8S/kustomization.yaml" ]] || {
  echo "FAIL: $K8S/kustomization.yaml does not exist"
  exit 1
}

# The settings every LEDGERLINE_* variable must name: LEDGERLINE_<SECTION>_<KEY>
# from the rows of common/settings.c, and <that>_FILE for secrets.
SETTINGS_JSON="$TMP/settings.json"
if ! grep -oE '\b(STR|SECRET|INT|BOOL|ENUM)\("[a-z_]+", "[a-z0-9_]+"' "$SETTINGS_C" |
  sed -E 's/^(STR|SECRET|INT|BOOL|ENUM)\("([a-z_]+)", "([a-z0-9_]+)"$/\1 \2_\3/' |
  jq -R -s '[split("\n")[] | select(length > 0) | split(" ") |
             {secret: (.[0] == "SECRET"), name: ("LEDGERLINE_" + (.[1] | ascii_upcase))}]' \
    >"$SETTINGS_JSON" || [[ "$(jq length "$SETTINGS_JSON")" -lt 10 ]]; then
  echo "FAIL: cannot read the settings rows of $SETTINGS_C (STR/SECRET/INT/BOOL/ENUM(\"section\", \"key\", ...))"
  exit 1
fi

# The RabbitMQ users `ledgerctl users apply` creates, each with a password
# file: the names of schemas/users.json.
USERS_LIST="$TMP/users.json"
if ! jq -e '[.users[].name | strings] | select(length >= 3)' "$USERS_JSON" >"$USERS_LIST" 2>/dev/null; then
  echo "FAIL: cannot read the user names of $USERS_JSON (.users[].name)"
  exit 1
fi

# The fields of kustomize v2.0.3 (kubectl 1.20): a newer one (labels,
# patches, replacements, ...) breaks the old kubectls.
V2_FIELDS='["apiVersion", "kind", "namespace", "namePrefix", "nameSuffix", "commonLabels",
  "commonAnnotations", "resources", "bases", "crds", "configMapGenerator", "secretGenerator",
  "generatorOptions", "images", "patchesStrategicMerge", "patchesJson6902", "vars"]'

# to_json FILE OUT: the objects of a YAML stream FILE as one JSON array.
to_json() {
  if "$KUBECTL" annotate --local -f "$1" -o json lint.ledgerline/checked=true 2>"$TMP/to_json.err" |
    jq -s '[.[] | if .kind == "List" then .items[] else . end]' >"$2" && [[ -s "$2" ]]; then
    return 0
  fi
  printf 'cannot read %s as Kubernetes objects: %s\n' "$1" "$(head -c 300 "$TMP/to_json.err")"
  return 1
}

# The checks of point 2 and 3, over the built objects ($objs), the example
# Secrets ($secrets), kustomization.yaml ($kz) and the settings: one line
# per problem.
read -r -d '' JQ_CHECKS <<'EOF'
def kinds: [
  {kind: "risk", port: 9471, queue: "risk"},
  {kind: "payment", port: 9472, queue: "payments"},
  {kind: "settlement", port: 9473, queue: "settlement"},
  {kind: "refund", port: 9474, queue: "refunds"},
  {kind: "funds", port: 9475, queue: "funds"}];
def objs_of($k): [$objs[] | select(.kind == $k)];
def named($k; $n): [$objs[] | select(.kind == $k and .metadata.name == $n)] | first;
def portnum($c; $p):
  if ($p | type) == "number" then $p
  else [$c.ports[]? | select(.name == $p) | .containerPort] | first end;
def envmap($c):
  ([$c.envFrom[]? | .configMapRef.name // empty | . as $n
    | $objs[] | select(.kind == "ConfigMap" and .metadata.name == $n) | .data]
   + [$c.env[]? | select(.value != null) | {(.name): .value}]) | add // {};
def known_setting($k):
  any($settings[]; .name == $k or (.secret and ($k == .name + "_FILE")));
# *_FILE variables of container $c in pod spec $ps: each names a key of a
# mounted Secret volume that secret.example.yaml defines
def secret_files($what; $ps; $c):
  envmap($c) | to_entries[] | select(.key | endswith("_FILE")) | . as $e
  | ($e.value | sub("/[^/]*$"; "")) as $dir | ($e.value | sub("^.*/"; "")) as $file
  | ([$c.volumeMounts[]? | select(.mountPath == $dir) | .name] | first) as $vname
  | ([$ps.volumes[]? | select(.name == $vname) | .secret] | first) as $sv
  | if $vname == null then "\($what): \($e.key)=\($e.value) but nothing is mounted at \($dir)"
    elif $sv == null then "\($what): \($e.key): volume \($vname) is not a Secret"
    else
      ([($sv.items // [])[] | select(.path == $file) | .key] | first
       // (if $sv.items then null else $file end)) as $key
      | ([$secrets[] | select(.kind == "Secret" and .metadata.name == $sv.secretName)] | first) as $s
      | if $key == null then "\($what): \($e.key): Secret \($sv.secretName) is mounted without a file \($file)"
        elif $s == null then "\($what): \($e.key): Secret \($sv.secretName) is not in secret.example.yaml"
        elif (($s.stringData // $s.data // {}) | has($key)) | not then
          "\($what): \($e.key): secret.example.yaml's \($sv.secretName) has no key \($key)"
        else empty end
    end;
def nonroot($what; $ps; $c):
  (if (($c.securityContext.runAsNonRoot // $ps.securityContext.runAsNonRoot) != true)
     or (($c.securityContext.runAsUser // $ps.securityContext.runAsUser // 1) == 0)
   then "\($what): not runAsNonRoot" else empty end),
  (if $c.securityContext.readOnlyRootFilesystem != true then "\($what): root file system not read-only" else empty end),
  (if $c.securityContext.allowPrivilegeEscalation != false then "\($what): allowPrivilegeEscalation is not false" else empty end),
  (if ([$c.securityContext.capabilities.drop[]?] | index("ALL")) == null then "\($what): capabilities do not drop ALL" else empty end);

# `ledgerctl users apply --secrets-dir DIR` of container $c reads
# DIR/<user>.password of every user and cannot write one into a read-only
# Secret: DIR must be a mounted Secret volume holding one for each user of
# schemas/users.json ($users) and each worker's user
def users_dir_files($what; $ps; $c):
  ((($c.command // []) + ($c.args // []) | join(" "))
   | [capture("users apply --secrets-dir[ =](?<d>[^ ]+)")] | first | .d // null) as $dir
  | if $dir == null then empty else
    ($dir | rtrimstr("/")) as $dir
    | ([$c.volumeMounts[]? | (.mountPath | rtrimstr("/")) as $mp
        | select($dir == $mp or ($dir | startswith($mp + "/")))
        | {name, mp: $mp, sub: ($dir | ltrimstr($mp) | ltrimstr("/"))}]
       | sort_by(.mp | length) | last) as $m
    | if $m == null then "\($what): nothing is mounted at \($dir), where `ledgerctl users apply` reads the passwords"
      else
        [$ps.volumes[]? | select(.name == $m.name) | .secret.items[]?.path] as $paths
        | ([kinds[] | "ledgerline-\(.kind)"] + $users | unique)[] as $u
        | ((if $m.sub == "" then "" else $m.sub + "/" end) + $u + ".password") as $want
        | select($paths | index($want) | not)
        | "\($what): `ledgerctl users apply` finds no \($u).password in \($dir) (mount the Secret's \($u)-password there)"
      end
    end;

def check_worker($w):
  "\($w.kind)-worker" as $name | named("Deployment"; $name) as $d
  | if $d == null then "no Deployment \($name)" else
    $d.spec.template.spec as $ps
    | ([$ps.containers[]? | select((.command // [])[0] == $name)] | first) as $c
    | "Deployment \($name)" as $what
    | if $c == null then "\($what): no container runs \($name)" else
      envmap($c) as $env
      | (($env.LEDGERLINE_WORKER_SHUTDOWN_TIMEOUT_MS // "15000") | tonumber) as $drain_ms
      | (if $d.spec.replicas != null then "\($what) sets spec.replicas (the ScaledObject owns the count; each apply would reset it)" else empty end),
        (if ([$c.ports[]?.containerPort] | index($w.port)) == null then "\($what): no containerPort \($w.port)" else empty end),
        (["startupProbe", "livenessProbe"][] as $p | $c[$p] as $pr
         | if $pr.httpGet.path != "/healthz" or portnum($c; $pr.httpGet.port) != $w.port
           then "\($what): \($p) is not GET /healthz on port \($w.port)" else empty end),
        ($c.readinessProbe as $pr
         | if $pr.httpGet.path != "/readyz" or portnum($c; $pr.httpGet.port) != $w.port
           then "\($what): readinessProbe is not GET /readyz on port \($w.port)" else empty end),
        ($ps.terminationGracePeriodSeconds as $g
         | if $g == null or $g * 1000 <= $drain_ms + 5000
           then "\($what): terminationGracePeriodSeconds \($g) is not above worker.shutdown_timeout_ms (\($drain_ms) ms) + the 5 s hard stop" else empty end),
        (["requests", "limits"][] as $r | ["cpu", "memory"][] as $x
         | if $c.resources[$r][$x] == null then "\($what): no \($x) in resources.\($r)" else empty end),
        nonroot($what; $ps; $c),
        (($d.spec.template.metadata.annotations // {}) as $a
         | if $a["prometheus.io/scrape"] != "true" or $a["prometheus.io/port"] != ($w.port | tostring)
           then "\($what): no prometheus.io/scrape \"true\" and prometheus.io/port \"\($w.port)\" annotations" else empty end),
        (if $env.LEDGERLINE_HTTP_ADDRESS != "0.0.0.0" then "\($what): LEDGERLINE_HTTP_ADDRESS is not 0.0.0.0 (the probes could not reach the endpoints)" else empty end),
        (if ($env.LEDGERLINE_HTTP_PORT // "-1") != "-1" and $env.LEDGERLINE_HTTP_PORT != ($w.port | tostring)
         then "\($what): LEDGERLINE_HTTP_PORT=\($env.LEDGERLINE_HTTP_PORT) but the probes use \($w.port)" else empty end),
        secret_files($what; $ps; $c),
        (if $env.LEDGERLINE_AMQP_USER != "ledgerline-\($w.kind)"
         then "\($what): LEDGERLINE_AMQP_USER is \($env.LEDGERLINE_AMQP_USER), not its least-privilege user ledgerline-\($w.kind)" else empty end),
        (if ($env.LEDGERLINE_AMQP_PASSWORD_FILE // "") | test("amqp-password$")
         then "\($what): reads the broker's admin password" else empty end),
        (if ($w.kind == "risk" or $w.kind == "payment") and (($env.LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE // "") == "")
         then "\($what): approvals unsigned (no LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE)" else empty end),
        (($d.spec.template.metadata.labels // {}) as $labels
         | if [objs_of("PodDisruptionBudget")[] | select(.spec.selector.matchLabels as $m
              | $m != null and ($m | to_entries | all(.value == $labels[.key])))] | length == 0
           then "no PodDisruptionBudget selects the pods of \($name)" else empty end),
        ([objs_of("ScaledObject")[] | select(.spec.scaleTargetRef.name == $name)] as $so
         | if ($so | length) != 1 then "expected one ScaledObject scaling \($name), found \($so | length)"
           else $so[0] as $s | "ScaledObject \($s.metadata.name)" as $sw
           | (if ($s.spec.minReplicaCount // 0) < 1 then "\($sw): minReplicaCount below 1 (the stage would stop; settlement closes windows by the clock)" else empty end),
             (if ($s.spec.maxReplicaCount // 100) < ($s.spec.minReplicaCount // 0) then "\($sw): maxReplicaCount below minReplicaCount" else empty end),
             ([$s.spec.triggers[]? | select(.type == "rabbitmq")] as $t
              | if ($t | length) == 0 then "\($sw): no rabbitmq trigger" else $t[0] as $tr
                | (if $tr.metadata.protocol != "http" then "\($sw): trigger protocol is not http (unacked messages would not count)" else empty end),
                  (if $tr.metadata.mode != "QueueLength" then "\($sw): trigger mode is not QueueLength" else empty end),
                  (if $tr.metadata.queueName != $w.queue then "\($sw): trigger queueName is not \($w.queue)" else empty end),
                  (if (($tr.metadata.value // "") | test("^[0-9]+$") | not) or ($tr.metadata.value | tonumber) < 1
                   then "\($sw): trigger value is not a positive number of messages" else empty end),
                  ($tr.authenticationRef.name as $an
                   | named("TriggerAuthentication"; $an) as $ta
                   | if $ta == null then "\($sw): no TriggerAuthentication \($an)"
                     elif ([$ta.spec.secretTargetRef[]? | select(.parameter == "host")] | length) == 0
                     then "\($sw): TriggerAuthentication \($an) reads no host from a Secret"
                     else empty end)
                end)
           end)
      end
    end;

# funds-worker screens withdrawals with the risk stage's rules: the
# risk-worker's risk.* settings, and a blocklist file from the same volume
# source (a Secret or ConfigMap and its items)
def worker_container($name):
  named("Deployment"; $name) as $d
  | if $d == null then null
    else {ps: $d.spec.template.spec,
          c: ([$d.spec.template.spec.containers[]? | select((.command // [])[0] == $name)] | first)}
    end;
def risk_env($w): envmap($w.c) | with_entries(select(.key | startswith("LEDGERLINE_RISK_")));
def file_source($w; $path):
  ([$w.c.volumeMounts[]? | (.mountPath | rtrimstr("/")) as $mp
    | select($path | startswith($mp + "/")) | {name, mp: $mp}]
   | sort_by(.mp | length) | last) as $m
  | if $m == null then null
    else {mountPath: $m.mp, volume: ([$w.ps.volumes[]? | select(.name == $m.name) | del(.name)] | first)}
    end;
def check_risk_shared:
  worker_container("risk-worker") as $r | worker_container("funds-worker") as $f
  | if $r == null or $f == null or $r.c == null or $f.c == null then empty else
    risk_env($r) as $re | risk_env($f) as $fe
    | if $re != $fe then
        "Deployment funds-worker: risk settings differ from risk-worker's (\([($re | keys[]), ($fe | keys[])] | unique | map(select($re[.] != $fe[.])) | join(", "))); it screens withdrawals with them: set LEDGERLINE_RISK_* in ledgerline-config"
      elif ($fe.LEDGERLINE_RISK_BLOCKLIST_FILE // "") != ""
           and file_source($r; $fe.LEDGERLINE_RISK_BLOCKLIST_FILE) != file_source($f; $fe.LEDGERLINE_RISK_BLOCKLIST_FILE) then
        "Deployment funds-worker: its blocklist \($fe.LEDGERLINE_RISK_BLOCKLIST_FILE) is not mounted from the risk-worker's volume source"
      else empty end
    end;

def check_job:
  [objs_of("Job")[] | . as $j | $j.spec.template.spec as $ps | $ps.containers[]?
   | select(((.command // []) + (.args // []) | join(" ")) as $cmd
            | ($cmd | contains("ledgerctl migrate")) and ($cmd | contains("ledgerctl topology apply")))
   | {job: $j.metadata.name, ps: $ps, c: .}] as $found
  | if ($found | length) != 1 then "expected one Job running `ledgerctl migrate && ledgerctl topology apply`, found \($found | length)"
    else $found[0] as $f | "Job \($f.job)" as $what
    | (if (envmap($f.c).LEDGERLINE_AMQP_MANAGEMENT_URL // "") == "" then "\($what): no LEDGERLINE_AMQP_MANAGEMENT_URL (topology apply sets the policies through it)" else empty end),
      nonroot($what; $f.ps; $f.c),
      secret_files($what; $f.ps; $f.c),
      ((($f.c.command // []) + ($f.c.args // []) | join(" ")) as $cmd
       | ("ledgerctl users apply", "ledgerctl keys generate")
       | select(. as $s | $cmd | contains($s) | not)
       | "\($what): does not run `\(.)` (secure by default: users and approval key)"),
      users_dir_files($what; $f.ps; $f.c)
    end;

[ (kinds[] | check_worker(.)),
  check_risk_shared,
  check_job,
  (objs_of("Namespace") as $ns
   | if ($ns | length) != 1 then "expected one Namespace, found \($ns | length)"
     else $ns[0].metadata.name as $n
     | $objs[] | select(.kind != "Namespace" and .metadata.namespace != $n)
     | "\(.kind) \(.metadata.name) is not in namespace \($n)" end),
  (objs_of("ConfigMap")[] as $cm | ($cm.data // {} | keys[])
   | select(startswith("LEDGERLINE_") and (known_setting(.) | not))
   | "ConfigMap \($cm.metadata.name): \(.) is no setting of common/settings.c (a worker refuses to start)"),
  (objs_of("Deployment")[], objs_of("Job")[] | . as $o | .spec.template.spec.containers[]?.env[]?.name
   | select(startswith("LEDGERLINE_") and (known_setting(.) | not))
   | "\($o.kind) \($o.metadata.name): \(.) is no setting of common/settings.c"),
  (($kz.resources // [])[] | select(test("secret\\.example")) | "kustomization.yaml lists \(.): apply would overwrite real passwords with placeholders"),
  ($secrets[] | select(.kind == "Secret") | . as $s | (.stringData // {}) | to_entries[]
   | select(.value | test("CHANGE-ME") | not)
   | "secret.example.yaml: \($s.metadata.name).\(.key) is not a CHANGE-ME placeholder")
] | .[]
EOF

# check_k8s DIR: 0 when DIR builds with every kubectl and passes the checks;
# the problems on stdout otherwise.
check_k8s() {
  local dir="$1" k out rc=0
  # first the fields: an old kubectl would only say "unknown field"
  to_json "$dir/kustomization.yaml" "$TMP/kz.json" || return 1
  out="$(jq -r --argjson v2 "$V2_FIELDS" '.[0] | del(.metadata) | keys[] | select(. as $k | $v2 | index($k) | not)
    | "kustomization.yaml: field `\(.)` is unknown to kustomize v2 (kubectl 1.20); use only \($v2 | join(", "))"' \
    "$TMP/kz.json")"
  if [[ -n "$out" ]]; then
    printf '%s\n' "$out"
    return 1
  fi
  for k in "${KUBECTLS[@]}"; do
    if ! out="$("$k" kustomize "$dir" 2>&1 >"$TMP/built.yaml")"; then
      printf '%s kustomize failed: %s\n' "$k" "$(printf '%s' "$out" | head -c 400)"
      return 1
    fi
  done
  # the objects of the first kubectl are checked (all must build them)
  "$KUBECTL" kustomize "$dir" 2>/dev/null >"$TMP/built.yaml"
  to_json "$TMP/built.yaml" "$TMP/objs.json" || return 1
  if [[ -f "$dir/secret.example.yaml" ]]; then
    to_json "$dir/secret.example.yaml" "$TMP/secrets.json" || return 1
  else
    echo '[]' >"$TMP/secrets.json"
  fi
  if ! out="$(jq -n -r --slurpfile objs "$TMP/objs.json" --slurpfile secrets "$TMP/secrets.json" \
    --slurpfile kz "$TMP/kz.json" --slurpfile settings "$SETTINGS_JSON" --slurpfile users "$USERS_LIST" \
    '$objs[0] as $objs | $secrets[0] as $secrets | ($kz[0][0] | del(.metadata)) as $kz
     | $settings[0] as $settings | $users[0] as $users | '"$JQ_CHECKS" 2>&1)"; then
    printf 'jq failed: %s\n' "$out"
    return 1
  fi
  if [[ -n "$out" ]]; then
    printf '%s\n' "$out"
    rc=1
  fi
  return "$rc"
}

if why="$(check_k8s "$K8S")"; then
  ok "ops/k8s builds with ${KUBECTLS[*]} ($("$KUBECTL" version --client 2>/dev/null | head -n 1)); a Deployment, PodDisruptionBudget and ScaledObject (rabbitmq, http, QueueLength) per worker; probes on 9471/9472/9473/9474/9475; grace > drain + 5 s; non-root; migrate Job; settings and secrets agree"
else
  while IFS= read -r line; do not_ok "ops/k8s: $line"; done <<<"$why"
fi

# mutant LABEL FILE WANT SED_EXPR: a copy of ops/k8s with FILE changed by
# SED_EXPR must be rejected, and for a reason containing WANT.
mutant() {
  local label="$1" file="$2" want="$3" expr="$4" why
  rm -rf "$TMP/k8s"
  cp -r "$K8S" "$TMP/k8s"
  sed -e "$expr" "$K8S/$file" >"$TMP/k8s/$file"
  if cmp -s "$TMP/k8s/$file" "$K8S/$file"; then
    not_ok "mutant '$label' did not change $file (update the sed expression)"
  elif why="$(check_k8s "$TMP/k8s")"; then
    not_ok "mutant '$label' was accepted by the checker"
  elif [[ "$why" != *"$want"* ]]; then
    not_ok "mutant '$label' was rejected for another reason than '$want': $(printf '%s' "$why" | head -n 1 | cut -c1-200)"
  else
    ok "mutant '$label' rejected: $(printf '%s' "$why" | grep -F -m1 -- "$want" | cut -c1-160)"
  fi
}

# the checker rejects broken copies, each for its own reason
mutant "a worker as the broker's admin" payment-worker.yaml "not its least-privilege user ledgerline-payment" \
  's/value: ledgerline-payment$/value: ledgerline/'
mutant "unsigned approvals" risk-worker.yaml "approvals unsigned" \
  '/LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE/,+1d'
mutant "migrate makes no users" migrate-job.yaml "does not run \`ledgerctl users apply\`" \
  's/ledgerctl users apply/ledgerctl users list/'
mutant "grace period too short" payment-worker.yaml "terminationGracePeriodSeconds 15 is not above" \
  's/terminationGracePeriodSeconds: 30/terminationGracePeriodSeconds: 15/'
mutant "readiness on /healthz" risk-worker.yaml "readinessProbe is not GET /readyz" \
  '/readinessProbe:/,/path:/s|path: /readyz|path: /healthz|'
mutant "probes on another port" settlement-worker.yaml "not GET /healthz on port 9473" \
  's/containerPort: 9473/containerPort: 9999/'
mutant "PodDisruptionBudget removed" risk-worker.yaml "no PodDisruptionBudget selects the pods of risk-worker" \
  's/^kind: PodDisruptionBudget/kind: ConfigMap/'
mutant "KEDA over AMQP" payment-worker.yaml "protocol is not http" \
  's/protocol: http/protocol: amqp/'
mutant "KEDA on another queue" settlement-worker.yaml "queueName is not settlement" \
  's/queueName: settlement/queueName: settlements/'
mutant "KEDA may scale to zero" settlement-worker.yaml "minReplicaCount below 1" \
  's/minReplicaCount: 2/minReplicaCount: 0/'
mutant "replicas fixed" risk-worker.yaml "sets spec.replicas" \
  's/^  revisionHistoryLimit: 5/  replicas: 2\n  revisionHistoryLimit: 5/'
mutant "writable root file system" payment-worker.yaml "root file system not read-only" \
  's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/'
mutant "misspelt setting" kustomization.yaml "LEDGERLINE_WORKER_SHUTDOWN_TIMEOUT is no setting" \
  's/LEDGERLINE_WORKER_SHUTDOWN_TIMEOUT_MS=/LEDGERLINE_WORKER_SHUTDOWN_TIMEOUT=/'
mutant "kustomize v3+ field" kustomization.yaml "unknown to kustomize v2" \
  's/^generatorOptions:/labels:\n  - pairs:\n      app.kubernetes.io\/part-of: ledgerline\ngeneratorOptions:/'
mutant "secret file not mounted" migrate-job.yaml "nothing is mounted at /run/secrets/ledgerline" \
  's|mountPath: /run/secrets/ledgerline|mountPath: /run/secrets/other|'
mutant "invalid YAML" keda-auth.yaml "kustomize failed" \
  's/^spec:/spec: [/'
mutant "refund-worker left out of the base" kustomization.yaml "no Deployment refund-worker" \
  '/^  - refund-worker.yaml$/d'
mutant "refund-worker as the broker's admin" refund-worker.yaml "not its least-privilege user ledgerline-refund" \
  's/value: ledgerline-refund$/value: ledgerline/'
mutant "KEDA on the wrong queue for refunds" refund-worker.yaml "queueName is not refunds" \
  's/queueName: refunds/queueName: refund/'
mutant "migrate without the refund user's password" migrate-job.yaml "finds no ledgerline-refund.password" \
  '/key: ledgerline-refund-password/,+1d'
mutant "funds-worker left out of the base" kustomization.yaml "no Deployment funds-worker" \
  '/^  - funds-worker.yaml$/d'
mutant "funds-worker as the broker's admin" funds-worker.yaml "not its least-privilege user ledgerline-funds" \
  's/value: ledgerline-funds$/value: ledgerline/'
mutant "funds-worker probed on another port" funds-worker.yaml "not GET /healthz on port 9475" \
  's/containerPort: 9475/containerPort: 9474/'
mutant "KEDA on the wrong queue for funds" funds-worker.yaml "queueName is not funds" \
  's/queueName: funds/queueName: funds.dead/'
mutant "migrate without the funds user's password" migrate-job.yaml "finds no ledgerline-funds.password" \
  '/key: ledgerline-funds-password/,+1d'
mutant "migrate without the rail user's password" migrate-job.yaml "finds no ledgerline-rail.password" \
  '/key: ledgerline-rail-password/,+1d'
mutant "a risk setting on the risk-worker only" risk-worker.yaml "risk settings differ from risk-worker's (LEDGERLINE_RISK_MAX_AMOUNT)" \
  's/^            - name: LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE$/            - name: LEDGERLINE_RISK_MAX_AMOUNT\n              value: "EUR:100000"\n&/'

if [[ $FAILS -ne 0 ]]; then
  echo "FAIL: $FAILS check(s) failed"
  exit 1
fi
echo "PASS"
