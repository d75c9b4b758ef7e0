#!/usr/bin/env bash
# tests/lint/lint_compose.sh - compose.yaml, .dockerignore and the image stay
# valid and safe; static, needs no Docker engine:
#   1. `docker-compose config -q` exits 0 (Debian's 1.29);
#   2. in the normalised `docker-compose config` (no LEDGERLINE_* variable
#      and no .env file, so the defaults are what is checked):
#      - every long-running service has a healthcheck; a one-shot service
#        (one that others wait for with service_completed_successfully) has
#        restart "no"; every depends_on waits for service_healthy or
#        service_completed_successfully, and service_healthy only on a
#        service with a healthcheck;
#      - each worker (risk 9471, payment 9472, settlement 9473, refund 9474,
#        funds 9475) can be scaled: no container_name, no published port; its
#        healthcheck GETs /readyz on its kind's port with a tool the image
#        installs;
#        LEDGERLINE_HTTP_ADDRESS=0.0.0.0; it waits for `migrate` to complete;
#        cpu/memory limits; stop_grace_period above
#        worker.shutdown_timeout_ms + 5 s; non-root, read-only, no capabilities;
#      - `migrate` runs `ledgerctl migrate && ledgerctl topology apply` with
#        LEDGERLINE_AMQP_MANAGEMENT_URL=http://rabbitmq:15672, then
#        `ledgerctl users apply` and `ledgerctl keys generate`;
#      - secure by default: each worker runs as its kind's least-privilege
#        RabbitMQ user (ledgerline-<kind>), never mounts the admin password,
#        and risk and payment have an approval key file;
#      - funds-worker screens withdrawals with the risk settings: its
#        LEDGERLINE_RISK_* are risk-worker's, and a blocklist file comes
#        from the same volume or directory in both;
#      - every LEDGERLINE_* variable is a setting of common/settings.c (a
#        worker refuses to start on an unknown one), and every *_FILE names
#        a secret the service mounts or a file on a volume it mounts;
#      - every published port is bound to 127.0.0.1 on a fixed host port,
#        none twice, and no default is a port a machine's own servers use
#        (5672 15672 15692 25672 4369 6379 5432 9090 3000);
#      - RabbitMQ is 3.13 or later with rabbitmq_prometheus enabled;
#        prometheus (prom/prometheus) mounts ops/prometheus/prometheus.yml and
#        alerts.yml, grafana (grafana/grafana-oss) mounts ops/grafana/
#        provisioning/{datasources,dashboards} and ops/grafana/dashboards, and
#        every bind-mounted file or directory exists;
#   3. .dockerignore keeps .stack/, build*/, .git and ops/docker/secrets out
#      of the build context and every source the Dockerfile copies in
#      (Docker's matching: patterns in order, the last match wins, a match
#      on a directory covers what is below it);
#   4. the Dockerfile's image runs as a numeric non-root USER, and builds
#      and holds every worker compose runs.
# The checker is also run over broken copies of compose.yaml, .dockerignore
# and the Dockerfile and must reject each one, so this test can fail. Needs
# docker-compose and python3 with the yaml module (Debian's docker-compose
# depends on python3-yaml): without them it FAILS, naming the fix.
set -uo pipefail

ROOT="${LL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
COMPOSE="$ROOT/compose.yaml"
DOCKERIGNORE="$ROOT/.dockerignore"
DOCKERFILE="$ROOT/ops/docker/Dockerfile"
FAILS=0
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

ok() { printf 'ok - %s\n' "$1"; }
not_ok() {
  printf 'not ok - %s\n' "$1"
  FAILS=$((FAILS + 1))
}

command -v docker-compose >/dev/null 2>&1 || {
  echo "FAIL: docker-compose is not installed (fix: apt-get install -y docker-compose, or run ./ops/test, which installs it)"
  exit 1
}
PY=""
for cand in python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import yaml' 2>/dev/null; then
    PY="$cand"
    break
  fi
done
[[ -n "$PY" ]] || {
  echo "FAIL: no python3 with the yaml module (fix: apt-get install -y python3-yaml; Debian's docker-compose depends on it)"
  exit 1
}
for f in "$COMPOSE" "$DOCKERIGNORE" "$DOCKERFILE"; do
  [[ -f "$f" ]] || {
    echo "FAIL: $f does not exist"
    exit 1
  }
done

# docker-compose without the caller's LEDGERLINE_* variables and .env file:
# the defaults of compose.yaml are what is checked
: >"$TMP/empty.env"
compose() {
  local unset=() v
  for v in $(compgen -e); do
    [[ "$v" == LEDGERLINE_* ]] && unset+=(-u "$v")
  done
  (cd "$ROOT" && env "${unset[@]}" docker-compose --project-directory "$ROOT" \
    --env-file "$TMP/empty.env" "$@")
}

read -r -d '' CHECKER <<'EOF'
import os, re, sys, yaml

config_path, root, dockerignore, dockerfile = sys.argv[1:5]
cfg = yaml.safe_load(open(config_path)) or {}
services = cfg.get("services") or {}
problems = []
bad = problems.append

WORKERS = {"risk-worker": 9471, "payment-worker": 9472, "settlement-worker": 9473,
           "refund-worker": 9474, "funds-worker": 9475}
SERVERS = ("rabbitmq", "redis", "postgres")
RESERVED = {5672, 15672, 15692, 25672, 4369, 6379, 5432, 9090, 3000}
READY = ("service_healthy", "service_completed_successfully")

# the settings: LEDGERLINE_<SECTION>_<KEY>, and <that>_FILE for secrets
settings, secret_settings = set(), set()
src = open(os.path.join(root, "common/settings.c")).read()
for macro, sec, key in re.findall(r'\b(STR|SECRET|INT|BOOL|ENUM)\("([a-z_]+)", "([a-z0-9_]+)"', src):
    name = "LEDGERLINE_%s_%s" % (sec.upper(), key.upper())
    settings.add(name)
    if macro == "SECRET":
        secret_settings.add(name + "_FILE")
if len(settings) < 10:
    bad("cannot read the settings of common/settings.c")

def seconds(v):
    if v is None:
        return 10.0  # Docker's default stop grace
    if isinstance(v, (int, float)):
        return float(v)
    total, ok = 0.0, False
    for num, unit in re.findall(r"([0-9.]+)(us|ms|s|m|h)", str(v)):
        total += float(num) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
        ok = True
    return total if ok else None

def health_test(svc):
    hc = svc.get("healthcheck") or {}
    test = hc.get("test")
    if hc.get("disable") or not test or test == ["NONE"]:
        return None
    return test if isinstance(test, list) else ["CMD-SHELL", str(test)]

# the final stage of the Dockerfile: its USER and what apt-get installs
df_lines, cur = [], ""
for line in open(dockerfile):
    line = line.rstrip("\n")
    if line.lstrip().startswith("#"):
        continue
    if line.endswith("\\"):
        cur += line[:-1] + " "
        continue
    df_lines.append(cur + line)
    cur = ""
stages, copies = [], []
for line in df_lines:
    words = line.split()
    if not words:
        continue
    op = words[0].upper()
    if op == "FROM":
        stages.append([])
    if stages:
        stages[-1].append(line)
    if op == "COPY" and not any(w.startswith("--from") for w in words[1:]):
        copies += [w for w in words[1:-1] if not w.startswith("--")]
final = stages[-1] if stages else []
users = [l.split()[1] for l in final if l.split()[0].upper() == "USER"]
user = users[-1] if users else "root"
if not re.fullmatch(r"[0-9]+(:[0-9]+)?", user) or user.split(":")[0] == "0":
    bad("Dockerfile: the image runs as USER %s (want a numeric non-root uid, e.g. 10001:10001)" % user)
installed = " ".join(l for l in final if "apt-get" in l and "install" in l).split()
# every worker is built (cmake --build --target ...) and copied into the image
built = " ".join(l for st in stages[:-1] for l in st if "cmake" in l and "--target" in l).split()
shipped = " ".join(l for l in final if l.split()[0].upper() == "COPY" and "--from" in l).split()
for name in WORKERS:
    if name not in built:
        bad("Dockerfile: %s is not built (cmake --build ... --target %s)" % (name, name))
    if not any(w.rstrip("/").endswith("/" + name) for w in shipped):
        bad("Dockerfile: the image has no %s (COPY --from=build /build/bin/%s ...)" % (name, name))

# one-shot services: others wait for them to complete
one_shot = set()
for name, svc in services.items():
    for dep, d in (svc.get("depends_on") or {}).items():
        if (d or {}).get("condition") == "service_completed_successfully":
            one_shot.add(dep)

for name in list(WORKERS) + ["migrate", *SERVERS, "prometheus", "grafana"]:
    if name not in services:
        bad("service %s is missing" % name)

for name, svc in sorted(services.items()):
    env = svc.get("environment") or {}
    if name in one_shot:
        if str(svc.get("restart", "no")) not in ("no", "False", "false"):
            bad("service %s is waited for with service_completed_successfully but has restart %r" % (name, svc.get("restart")))
    elif health_test(svc) is None:
        bad("service %s has no healthcheck" % name)
    for dep, d in (svc.get("depends_on") or {}).items():
        cond = (d or {}).get("condition", "service_started")
        if cond not in READY:
            bad("service %s waits for %s with %s (want service_healthy or service_completed_successfully)" % (name, dep, cond))
        elif cond == "service_healthy" and health_test(services.get(dep, {})) is None:
            bad("service %s waits for %s to be healthy, but %s has no healthcheck" % (name, dep, dep))
    # settings and secrets
    mounted = {(s.get("source") if isinstance(s, dict) else str(s)) for s in svc.get("secrets") or []}
    for k, v in env.items():
        if not k.startswith("LEDGERLINE_"):
            continue
        if k not in settings and k not in secret_settings:
            bad("service %s: %s is no setting of common/settings.c (a worker refuses to start)" % (name, k))
        if k.endswith("_FILE") and str(v).startswith("/run/secrets/"):
            sec = str(v)[len("/run/secrets/"):]
            if sec not in mounted:
                bad("service %s: %s=%s but secret %s is not mounted" % (name, k, v, sec))
        elif k.endswith("_FILE"):
            targets = [vol.get("target") if isinstance(vol, dict) else (str(vol).split(":") + [""])[1]
                       for vol in svc.get("volumes") or []]
            if not any(t and str(v).startswith(t.rstrip("/") + "/") for t in targets):
                bad("service %s: %s=%s is on no volume the service mounts" % (name, k, v))
    # bind mounts exist (Docker would create an empty directory instead)
    for vol in svc.get("volumes") or []:
        source = vol.get("source") if isinstance(vol, dict) else str(vol).split(":")[0]
        if source and source.startswith("/") and not os.path.exists(source):
            bad("service %s: bind mount source %s does not exist" % (name, source))

for name, port in WORKERS.items():
    svc = services.get(name)
    if svc is None:
        continue
    env = svc.get("environment") or {}
    if svc.get("container_name"):
        bad("worker %s has container_name %s (it could not be scaled)" % (name, svc["container_name"]))
    if svc.get("ports"):
        bad("worker %s publishes ports %s (replicas would collide; Prometheus scrapes it on the compose network)" % (name, svc["ports"]))
    if (svc.get("command") or [None])[0] != name:
        bad("worker %s does not run %s" % (name, name))
    test = health_test(svc)
    if test is not None:
        words = " ".join(str(t) for t in test)
        if not re.search(r"https?://(127\.0\.0\.1|localhost):%d/readyz\b" % port, words):
            bad("worker %s: healthcheck does not GET /readyz on port %d: %s" % (name, port, words))
        tool = str(test[1]).split()[0] if len(test) > 1 else ""
        if tool in ("curl", "wget") and tool not in installed:
            bad("worker %s: healthcheck runs %s, which the Dockerfile's runtime stage does not install" % (name, tool))
    if env.get("LEDGERLINE_HTTP_ADDRESS") != "0.0.0.0":
        bad("worker %s: LEDGERLINE_HTTP_ADDRESS is not 0.0.0.0 (Prometheus could not scrape it)" % name)
    if str(env.get("LEDGERLINE_HTTP_PORT", "-1")) not in ("-1", str(port)):
        bad("worker %s: LEDGERLINE_HTTP_PORT=%s, not the kind's port %d" % (name, env["LEDGERLINE_HTTP_PORT"], port))
    if ((svc.get("depends_on") or {}).get("migrate") or {}).get("condition") != "service_completed_successfully":
        bad("worker %s does not wait for migrate to complete" % name)
    limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    if not limits.get("cpus") or not limits.get("memory"):
        bad("worker %s has no cpu/memory limits" % name)
    drain = int(env.get("LEDGERLINE_WORKER_SHUTDOWN_TIMEOUT_MS", 15000)) / 1000.0
    grace = seconds(svc.get("stop_grace_period"))
    if grace is None or grace <= drain + 5:
        bad("worker %s: stop_grace_period %s is not above worker.shutdown_timeout_ms (%gs) + the 5 s hard stop" % (name, svc.get("stop_grace_period", "10s (default)"), drain))
    u = str(svc.get("user", user)).split(":")[0]
    if u in ("0", "root"):
        bad("worker %s runs as root" % name)
    if not svc.get("read_only"):
        bad("worker %s: root file system not read-only" % name)
    if "ALL" not in (svc.get("cap_drop") or []):
        bad("worker %s: capabilities not dropped (cap_drop: [ALL])" % name)
    if not any(str(k).endswith("_FILE") for k in env):
        bad("worker %s gets no secret through a *_FILE variable" % name)
    # secure by default: the kind's own user, never the broker's admin;
    # approvals signed
    kind = name.split("-")[0]
    if env.get("LEDGERLINE_AMQP_USER") != "ledgerline-" + kind:
        bad("worker %s: LEDGERLINE_AMQP_USER is %s, not its least-privilege user ledgerline-%s" % (name, env.get("LEDGERLINE_AMQP_USER"), kind))
    if "amqp_password" in {(s.get("source") if isinstance(s, dict) else str(s)) for s in svc.get("secrets") or []}:
        bad("worker %s mounts the broker's admin password (secret amqp_password)" % name)
    if kind in ("risk", "payment") and not env.get("LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE"):
        bad("worker %s: approvals unsigned (no LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE)" % name)

# funds-worker screens withdrawals with the risk stage's rules: the same
# risk.* settings, and a blocklist file from the same source
def risk_env(svc):
    return {k: str(v) for k, v in (svc.get("environment") or {}).items()
            if k.startswith("LEDGERLINE_RISK_")}
def source_of(svc, path):
    best = None
    for vol in svc.get("volumes") or []:
        if isinstance(vol, dict):
            src, tgt = vol.get("source", ""), vol.get("target", "")
        else:
            src, tgt = (str(vol).split(":") + [""])[:2]
        if tgt and path.startswith(tgt.rstrip("/") + "/") and (best is None or len(tgt) > len(best[1])):
            best = (src, tgt)
    return best
rw, fw = services.get("risk-worker"), services.get("funds-worker")
if rw is not None and fw is not None:
    re_, fe = risk_env(rw), risk_env(fw)
    if re_ != fe:
        diff = sorted(k for k in set(re_) | set(fe) if re_.get(k) != fe.get(k))
        bad("worker funds-worker: risk settings differ from risk-worker's (%s); it screens withdrawals with them: set LEDGERLINE_RISK_* alike on both" % ", ".join(diff))
    bl = fe.get("LEDGERLINE_RISK_BLOCKLIST_FILE")
    if bl and re_.get("LEDGERLINE_RISK_BLOCKLIST_FILE") == bl and source_of(rw, bl) != source_of(fw, bl):
        bad("worker funds-worker: its blocklist %s is not mounted from risk-worker's source (%s vs %s)" % (bl, source_of(fw, bl), source_of(rw, bl)))

mig = services.get("migrate") or {}
cmd = " ".join(str(c) for c in (mig.get("command") or []))
if "ledgerctl migrate" not in cmd or "ledgerctl topology apply" not in cmd:
    bad("migrate does not run `ledgerctl migrate && ledgerctl topology apply`: %s" % cmd)
for step in ("ledgerctl users apply", "ledgerctl keys generate"):
    if step not in cmd:
        bad("migrate does not run `%s` (secure by default: users and approval key): %s" % (step, cmd))
if (mig.get("environment") or {}).get("LEDGERLINE_AMQP_MANAGEMENT_URL") != "http://rabbitmq:15672":
    bad("migrate: LEDGERLINE_AMQP_MANAGEMENT_URL is not http://rabbitmq:15672 (topology apply sets the policies through it)")

# ports
seen = {}
for name, svc in sorted(services.items()):
    for port in svc.get("ports") or []:
        if isinstance(port, dict):
            host_ip, published = port.get("host_ip"), port.get("published")
        else:
            parts = str(port).split("/")[0].split(":")
            host_ip = parts[0] if len(parts) == 3 else None
            published = parts[-2] if len(parts) >= 2 else None
        if published is None or str(published) == "":
            bad("service %s: port %r is published on a random host port" % (name, port))
            continue
        if host_ip != "127.0.0.1":
            bad("service %s: port %r is not bound to 127.0.0.1" % (name, port))
        p = int(str(published).split("-")[0])
        if p in RESERVED:
            bad("service %s: default host port %d clashes with a machine's own server; choose another default" % (name, p))
        if p in seen:
            bad("services %s and %s both publish host port %d" % (seen[p], name, p))
        seen[p] = name

# RabbitMQ: a supported version with the prometheus plugin
rmq = services.get("rabbitmq") or {}
image = str(rmq.get("image", ""))
m = re.match(r"(?:.*/)?rabbitmq:(\d+)\.(\d+)", image)
if not m or (int(m.group(1)), int(m.group(2))) < (3, 13):
    bad("rabbitmq image %s is not RabbitMQ 3.13 or later (3.12 and older are end of life)" % image)
plugins = ""
for vol in rmq.get("volumes") or []:
    parts = str(vol).split(":") if not isinstance(vol, dict) else [vol.get("source", ""), vol.get("target", "")]
    if len(parts) >= 2 and parts[1] == "/etc/rabbitmq/enabled_plugins" and os.path.exists(parts[0]):
        plugins = open(parts[0]).read()
for plugin in ("rabbitmq_management", "rabbitmq_prometheus"):
    if plugin not in plugins:
        bad("rabbitmq: %s is not in the mounted /etc/rabbitmq/enabled_plugins" % plugin)

def mounts(svc):
    out = set()
    for vol in svc.get("volumes") or []:
        parts = str(vol).split(":") if not isinstance(vol, dict) else [vol.get("source", ""), vol.get("target", "")]
        if len(parts) >= 2 and parts[0].startswith(root + "/"):
            out.add(parts[0][len(root) + 1:])
    return out
for name, prefix, want in (
        ("prometheus", "prom/prometheus", {"ops/prometheus/prometheus.yml", "ops/prometheus/alerts.yml"}),
        ("grafana", "grafana/grafana-oss", {"ops/grafana/provisioning/datasources",
                                            "ops/grafana/provisioning/dashboards", "ops/grafana/dashboards"})):
    svc = services.get(name) or {}
    if not str(svc.get("image", "")).startswith(prefix + ":"):
        bad("service %s: image is not %s:<version>" % (name, prefix))
    missing = want - mounts(svc)
    if missing:
        bad("service %s does not mount %s" % (name, ", ".join(sorted(missing))))

# .dockerignore with Docker's matching
rules = []
for line in open(dockerignore):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    neg = line.startswith("!")
    pat = os.path.normpath(line[1:] if neg else line).lstrip("/")
    rx, i = "", 0
    while i < len(pat):
        if pat.startswith("**", i):
            i += 2
            if pat.startswith("/", i):
                i += 1
                rx += "(.*/)?"
            else:
                rx += ".*"
        elif pat[i] == "*":
            rx, i = rx + "[^/]*", i + 1
        elif pat[i] == "?":
            rx, i = rx + "[^/]", i + 1
        else:
            rx, i = rx + re.escape(pat[i]), i + 1
    rules.append((neg, re.compile(rx + r"\Z")))

def excluded(path):
    parts = path.split("/")
    out = False
    for neg, rx in rules:
        if any(rx.match("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            out = not neg
    return out

for path in (".stack/run/postgres/PG_VERSION", "build/bin/ledgerctl", "build-test/CMakeCache.txt",
             "build-anything/bin/risk-worker", ".git/HEAD", "ops/docker/secrets/dev/amqp.password"):
    if not excluded(path):
        bad(".dockerignore lets %s into the build context" % path)
skip = re.compile(r"(^|/)(\.git|\.stack|build[^/]*|Testing)(/|$)")
for src in copies or ["(none)"]:
    src = src.rstrip("/").lstrip("./") or "."
    full = os.path.join(root, src)
    if not os.path.exists(full):
        bad("Dockerfile copies %s, which does not exist" % src)
        continue
    files = [src] if os.path.isfile(full) else [
        os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(full) for f in fs]
    for f in files:
        if not skip.search(f) and excluded(f):
            bad(".dockerignore excludes %s, which the Dockerfile copies (COPY %s)" % (f, src))
            break

if problems:
    print("\n".join(problems))
    sys.exit(1)
EOF

# check_compose COMPOSE DOCKERIGNORE DOCKERFILE: 0 when all three pass; the
# problems on stdout otherwise (one a line).
check_compose() {
  local file="$1"
  # `config` validates as `config -q` does, and prints the normalised file
  if ! compose -f "$file" config >"$TMP/config.yaml" 2>"$TMP/config.err"; then
    printf 'docker-compose config failed: %s\n' "$(head -c 400 "$TMP/config.err")"
    return 1
  fi
  "$PY" -c "$CHECKER" "$TMP/config.yaml" "$ROOT" "$2" "$3"
}

if out="$(compose -f compose.yaml config -q 2>&1)"; then
  ok "docker-compose -f compose.yaml config -q exits 0 ($(docker-compose version --short 2>/dev/null))"
else
  not_ok "docker-compose -f compose.yaml config -q: $out"
fi
if why="$(check_compose "$COMPOSE" "$DOCKERIGNORE" "$DOCKERFILE")"; then
  ok "compose.yaml: healthchecks everywhere, workers scalable and probed on /readyz, migrate first, settings and secrets agree, ports on 127.0.0.1 off the usual ones; .dockerignore, the Dockerfile's user and its workers"
else
  while IFS= read -r line; do not_ok "$line"; done <<<"$why"
fi

# mutant LABEL TARGET WANT SED_EXPR: a copy with TARGET (compose.yaml,
# .dockerignore or Dockerfile) changed by SED_EXPR must be rejected, and for
# a reason containing WANT.
mutant() {
  local label="$1" target="$2" want="$3" expr="$4" why orig copy
  local files=("$COMPOSE" "$DOCKERIGNORE" "$DOCKERFILE")
  case "$target" in
  compose.yaml) orig="$COMPOSE" copy="$TMP/compose.yaml" files[0]="$copy" ;;
  .dockerignore) orig="$DOCKERIGNORE" copy="$TMP/dockerignore" files[1]="$copy" ;;
  Dockerfile) orig="$DOCKERFILE" copy="$TMP/Dockerfile" files[2]="$copy" ;;
  esac
  sed -e "$expr" "$orig" >"$copy"
  if cmp -s "$copy" "$orig"; then
    not_ok "mutant '$label' did not change $target (update the sed expression)"
  elif why="$(check_compose "${files[@]}")"; then
    not_ok "mutant '$label' was accepted by the checker"
  elif [[ "$why" != *"$want"* ]]; then
    not_ok "mutant '$label' was rejected for another reason than '$want': $(printf '%s' "$why" | head -n 1 | cut -c1-200)"
  else
    ok "mutant '$label' rejected: $(printf '%s' "$why" | grep -F -m1 -- "$want" | cut -c1-160)"
  fi
}

# the checker rejects broken copies, each for its own reason
# shellcheck disable=SC2016 # ${...} is compose.yaml's text, not the shell's
mutant "port on all interfaces" compose.yaml "not bound to 127.0.0.1" \
  's/"127\.0\.0\.1:${LEDGERLINE_COMPOSE_REDIS_PORT:-6479}:6379"/"6479:6379"/'
mutant "default port of the machine's PostgreSQL" compose.yaml "host port 5432 clashes" \
  's/LEDGERLINE_COMPOSE_PG_PORT:-5532/LEDGERLINE_COMPOSE_PG_PORT:-5432/'
mutant "healthcheck removed" compose.yaml "service redis has no healthcheck" \
  '/^  redis:/,/^  postgres:/{/^    healthcheck:/,/^    restart:/{/^    restart:/!d}}'
mutant "worker healthcheck removed" compose.yaml "service payment-worker has no healthcheck" \
  '/^  payment-worker:/,/^  settlement-worker:/{/^    healthcheck:/,/^      test:/d}'
mutant "worker probed on another port" compose.yaml "does not GET /readyz on port 9472" \
  's|http://127.0.0.1:9472/readyz|http://127.0.0.1:9471/readyz|'
mutant "worker with a container_name" compose.yaml "has container_name" \
  's/^    command: \["risk-worker"\]/    container_name: risk\n    command: ["risk-worker"]/'
mutant "worker with a published port" compose.yaml "worker settlement-worker publishes ports" \
  's/^    command: \["settlement-worker"\]/    command: ["settlement-worker"]\n    ports: ["127.0.0.1:9473:9473"]/'
mutant "endpoints on loopback only" compose.yaml "LEDGERLINE_HTTP_ADDRESS is not 0.0.0.0" \
  '/LEDGERLINE_HTTP_ADDRESS: 0.0.0.0/d'
mutant "workers do not wait for migrate" compose.yaml "waits for migrate with service_started" \
  's/condition: service_completed_successfully/condition: service_started/'
mutant "grace shorter than the drain" compose.yaml "stop_grace_period 10s is not above" \
  's/stop_grace_period: 30s/stop_grace_period: 10s/'
mutant "misspelt setting" compose.yaml "LEDGERLINE_WORKER_SHUTDOWN_TIMEOUT is no setting" \
  's/LEDGERLINE_WORKER_SHUTDOWN_TIMEOUT_MS:/LEDGERLINE_WORKER_SHUTDOWN_TIMEOUT:/'
mutant "a secret file not mounted" compose.yaml "is not mounted" \
  's/^  secrets: \[amqp_password, redis_password, postgres_password\]$/  secrets: [amqp_password, postgres_password]/'
mutant "a worker as the broker's admin" compose.yaml "not its least-privilege user ledgerline-payment" \
  's/LEDGERLINE_AMQP_USER: ledgerline-payment$/LEDGERLINE_AMQP_USER: ledgerline/'
mutant "unsigned approvals" compose.yaml "approvals unsigned" \
  '/LEDGERLINE_SIGNING_APPROVAL_KEYS_FILE:/d'
mutant "a password file on no volume" compose.yaml "is on no volume the service mounts" \
  's/^  volumes: \[\*secrets-volume\]$/  volumes: []/'
mutant "workers with the admin password" compose.yaml "mounts the broker's admin password" \
  's/^  secrets: \[redis_password, postgres_password\]$/  secrets: [amqp_password, redis_password, postgres_password]/'
mutant "no approval key made" compose.yaml "does not run \`ledgerctl keys generate\`" \
  's/ledgerctl keys generate/ledgerctl keys show/'
mutant "end-of-life RabbitMQ" compose.yaml "is not RabbitMQ 3.13 or later" \
  's/image: rabbitmq:[0-9.]*-management/image: rabbitmq:3.10-management/'
mutant "alerts not mounted" compose.yaml "does not mount ops/prometheus/alerts.yml" \
  '/ops\/prometheus\/alerts.yml:/d'
mutant "invalid YAML" compose.yaml "docker-compose config failed" \
  's/^services:/services: [/'
mutant ".stack in the build context" .dockerignore "lets .stack/run/postgres/PG_VERSION into" \
  '/^\.stack$/d'
# shellcheck disable=SC2016 # sed's $ (the last line)
mutant "sources left out of the build context" .dockerignore "excludes schemas/" \
  '$a **/*.yaml'
mutant "image runs as root" Dockerfile "runs as USER root" \
  's/^USER .*/USER root/'
mutant "refund-worker service removed" compose.yaml "service refund-worker is missing" \
  '/^  refund-worker:/,/^$/d'
mutant "refund-worker as the broker's admin" compose.yaml "not its least-privilege user ledgerline-refund" \
  's/LEDGERLINE_AMQP_USER: ledgerline-refund$/LEDGERLINE_AMQP_USER: ledgerline/'
mutant "refund-worker probed on another port" compose.yaml "does not GET /readyz on port 9474" \
  's|http://127.0.0.1:9474/readyz|http://127.0.0.1:9473/readyz|'
mutant "refund-worker not in the image" Dockerfile "the image has no refund-worker" \
  's| /build/bin/refund-worker /build/bin/funds-worker /usr/local/bin/| /build/bin/funds-worker /usr/local/bin/|'
mutant "funds-worker service removed" compose.yaml "service funds-worker is missing" \
  '/^  funds-worker:/,/^$/d'
mutant "funds-worker as the broker's admin" compose.yaml "not its least-privilege user ledgerline-funds" \
  's/LEDGERLINE_AMQP_USER: ledgerline-funds$/LEDGERLINE_AMQP_USER: ledgerline/'
mutant "funds-worker probed on another port" compose.yaml "does not GET /readyz on port 9475" \
  's|http://127.0.0.1:9475/readyz|http://127.0.0.1:9474/readyz|'
mutant "funds-worker not built" Dockerfile "funds-worker is not built" \
  's/ refund-worker funds-worker \\$/ refund-worker \\/'
mutant "funds-worker not in the image" Dockerfile "the image has no funds-worker" \
  's| /build/bin/funds-worker /usr/local/bin/| /usr/local/bin/|'
mutant "a risk setting on risk-worker only" compose.yaml "risk settings differ from risk-worker's (LEDGERLINE_RISK_MAX_AMOUNT)" \
  's/^      LEDGERLINE_AMQP_USER: ledgerline-risk$/&\n      LEDGERLINE_RISK_MAX_AMOUNT: "EUR:100000"/'

if [[ $FAILS -ne 0 ]]; then
  echo "FAIL: $FAILS check(s) failed"
  exit 1
fi
echo "PASS"
