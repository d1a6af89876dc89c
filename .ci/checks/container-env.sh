#!/usr/bin/env bash
# Runs deploytime-server the way the container image runs it, without a Docker
# engine: the image's ENV, ENTRYPOINT and CMD from docker/Dockerfile, then the
# environment docker/docker-compose.yml gives the "api" service (interpolated
# from docker/.env.example), as a non-root user, against this machine's MariaDB.
#
#   DEPLOYTIME_SERVER_BIN=target/release/deploytime-server bash .ci/checks/container-env.sh
#
# The binary must be built with --features mysql. Needs: root (to create the
# database and user over MariaDB's Unix socket), curl, python3.
#
# Two values differ from the container, on purpose, and nothing else:
# - DATABASE_URL's host: "db" is a name only compose's network resolves; here
#   the database is 127.0.0.1:3306. The port, user, password and database are
#   the ones the compose file builds.
# - DEPLOYTIME_BIND: 127.0.0.1 and a free port instead of 0.0.0.0:8080. Inside a
#   container 0.0.0.0 is that container's own network namespace; on a shared CI
#   machine 8080 may be taken, and 0.0.0.0 would offer a server with a known
#   admin token to the whole network. The check still asserts that the compose
#   file and the image say 0.0.0.0:8080, so that difference stays the only one.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
: "${DEPLOYTIME_SERVER_BIN:?set DEPLOYTIME_SERVER_BIN to a deploytime-server built with --features mysql}"
BIN=$(realpath "$DEPLOYTIME_SERVER_BIN")
[[ -x $BIN ]] || {
  echo "container-env: $BIN is not an executable" >&2
  exit 1
}

WORK=$ROOT/target-ci/container-env
DB=deploytime_ctenv # not the compose default "deploytime": never clobber a real one
passed=0
failed=0
SERVER_PID=

pass() {
  echo "ok   $*"
  passed=$((passed + 1))
}
fail() {
  echo "FAIL $*"
  failed=$((failed + 1))
}

# PyYAML reads the compose file: the venv .ci/checks/deploy.sh made, else the
# system Python, else a small venv of its own.
PY=
for candidate in "$ROOT/target-ci/venv/bin/python" python3 "$ROOT/target-ci/venv-yaml/bin/python"; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import yaml' 2>/dev/null; then
    PY=$candidate
    break
  fi
done
if [[ -z $PY ]]; then
  if ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  python3 -m venv "$ROOT/target-ci/venv-yaml"
  "$ROOT/target-ci/venv-yaml/bin/pip" install -q --disable-pip-version-check PyYAML==6.0.3
  PY=$ROOT/target-ci/venv-yaml/bin/python
fi

mysql_root() { mariadb --protocol=socket -uroot -N -B "$@"; }

cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  mysql_root -e "DROP DATABASE IF EXISTS \`${DB}\`; DROP USER IF EXISTS '${DB}'@'%'" || true
}
trap cleanup EXIT

rm -rf "$WORK"
mkdir -p "$WORK/home"

# What docker/.env would hold: the example's names, a fresh password and token
# (hex, as the example asks for URL-safe passwords).
DB_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
ADMIN_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# ---------------------------------------------------------------- the environment
# Prints NUL-separated KEY=VALUE lines for env -i, then the entrypoint + command
# (one per line) into $WORK/argv and the HEALTHCHECK script into $WORK/healthcheck.
ENV_FILE=$WORK/env
MYSQL_DATABASE=$DB MYSQL_USER=$DB MYSQL_PASSWORD=$DB_PASSWORD DEPLOYTIME_ADMIN_TOKEN=$ADMIN_TOKEN \
  PORT=$PORT WORK=$WORK "$PY" - >"$ENV_FILE" <<'PY'
import json, os, re, shlex, sys
from urllib.parse import urlsplit, urlunsplit
import yaml

work = os.environ["WORK"]

# --- docker/.env, as a user makes it from the example: the example's values with
# the secrets and names replaced.
dotenv = {}
for line in open("docker/.env.example"):
    line = line.strip()
    if line and not line.startswith("#") and "=" in line:
        key, value = line.split("=", 1)
        dotenv[key] = value
for key in ("MYSQL_DATABASE", "MYSQL_USER", "MYSQL_PASSWORD", "DEPLOYTIME_ADMIN_TOKEN"):
    assert key in dotenv, f"docker/.env.example lacks {key}"
    dotenv[key] = os.environ[key]

# --- the image: the runtime stage's ENV, ENTRYPOINT, CMD, HEALTHCHECK.
text = open("docker/Dockerfile").read().replace("\\\n", " ")
stage = re.split(r"(?im)^FROM\s", text)[-1]
image_env, entrypoint, cmd, healthcheck = {}, [], [], None
for line in stage.splitlines():
    line = line.strip()
    word, _, rest = line.partition(" ")
    word = word.upper()
    if word == "ENV":
        for item in shlex.split(rest):
            key, value = item.split("=", 1)
            image_env[key] = value
    elif word == "ENTRYPOINT":
        entrypoint = json.loads(rest)
    elif word == "CMD":
        cmd = json.loads(rest)
    elif word == "HEALTHCHECK":
        healthcheck = json.loads(rest.split(" CMD ", 1)[1])
assert entrypoint and entrypoint[0] == "deploytime-server", entrypoint
assert healthcheck and healthcheck[:2] == ["bash", "-c"], healthcheck

# --- compose: the api service's environment, interpolated like compose does.
def interpolate(value):
    def repl(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if op == ":-":
            return dotenv.get(name) or arg
        if op == ":?":
            if not dotenv.get(name):
                sys.exit(f"compose would refuse to start: {arg}")
        return dotenv.get(name, "")
    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:[-?])([^}]*))?\}", repl, str(value))

compose = yaml.safe_load(open("docker/docker-compose.yml"))
api = compose["services"]["api"]
environment = api["environment"]
if isinstance(environment, list):
    environment = dict(item.split("=", 1) for item in environment)
compose_env = {key: interpolate(value) for key, value in environment.items()}

env = {**image_env, **compose_env}

# --- the two documented differences.
assert image_env.get("DEPLOYTIME_BIND") == "0.0.0.0:8080", image_env
assert env["DEPLOYTIME_BIND"] == "0.0.0.0:8080", env["DEPLOYTIME_BIND"]
assert any(str(p).endswith(":8080") for p in api["ports"]), api["ports"]
env["DEPLOYTIME_BIND"] = f"127.0.0.1:{os.environ['PORT']}"
url = urlsplit(env["DATABASE_URL"])
assert url.scheme == "mysql" and url.hostname == "db" and url.port == 3306, env["DATABASE_URL"]
env["DATABASE_URL"] = urlunsplit(url._replace(netloc=url.netloc.replace("@db:", "@127.0.0.1:")))

with open(os.path.join(work, "argv"), "w") as f:
    f.write("\n".join(entrypoint[1:] + cmd) + "\n")
with open(os.path.join(work, "healthcheck"), "w") as f:
    f.write(healthcheck[2])
for key, value in sorted(env.items()):
    shown = "<secret>" if key in ("DATABASE_URL", "DEPLOYTIME_ADMIN_TOKEN") else value
    print(f"  {key}={shown}", file=sys.stderr)
    sys.stdout.write(f"{key}={value}\0")
PY

mapfile -d '' -t SERVER_ENV <"$ENV_FILE"
mapfile -t SERVER_ARGS <"$WORK/argv"
echo "container-env: deploytime-server ${SERVER_ARGS[*]} on 127.0.0.1:${PORT}"

# ---------------------------------------------------------------- the database
# As the mysql:8.4 image does with MYSQL_DATABASE/MYSQL_USER/MYSQL_PASSWORD.
mysql_root -e "DROP DATABASE IF EXISTS \`${DB}\`; DROP USER IF EXISTS '${DB}'@'%';
  CREATE DATABASE \`${DB}\`;
  CREATE USER '${DB}'@'%' IDENTIFIED BY '${DB_PASSWORD}';
  GRANT ALL ON \`${DB}\`.* TO '${DB}'@'%';"

# ---------------------------------------------------------------- the server
# A non-root user, as in the image (USER 10001): nobody, if it may run the binary.
RUN_AS=()
if [[ $(id -u) -eq 0 ]] && setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$BIN" 2>/dev/null; then
  RUN_AS=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  chown 65534:65534 "$WORK/home"
else
  echo "note: running as $(id -un): user nobody cannot execute $BIN"
fi

(
  cd "$WORK/home"
  exec env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$WORK/home" "${SERVER_ENV[@]}" \
    "${RUN_AS[@]}" "$BIN" "${SERVER_ARGS[@]}"
) >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

BASE=http://127.0.0.1:${PORT}
status() { curl -s -o "$WORK/body" -w '%{http_code}' --max-time 5 "$@" || true; }

# Poll /healthz until it answers, the server dies, or 60 s pass.
deadline=$((SECONDS + 60))
until [[ $(status "$BASE/healthz") == 200 ]]; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "container-env: the server exited before answering; its log:"
    cat "$WORK/server.log"
    exit 1
  fi
  if ((SECONDS >= deadline)); then
    echo "container-env: no answer on $BASE/healthz within 60 s; the log:"
    cat "$WORK/server.log"
    exit 1
  fi
  sleep 0.2
done

code=$(status "$BASE/healthz")
[[ $code == 200 ]] && pass "GET /healthz -> 200" || fail "GET /healthz -> $code"

code=$(status "$BASE/readyz")
[[ $code == 200 ]] && pass "GET /readyz -> 200 (MariaDB reached with the compose credentials)" ||
  fail "GET /readyz -> $code: $(cat "$WORK/body")"

code=$(status -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer ${ADMIN_TOKEN}" \
  --data '{"component":"api","phase":"start"}' "$BASE/api/v1/events")
[[ $code == 201 ]] && pass "POST /api/v1/events -> 201" || fail "POST /api/v1/events -> $code: $(cat "$WORK/body")"

code=$(status -H "Authorization: Bearer ${ADMIN_TOKEN}" "$BASE/api/v1/deployments")
if [[ $code == 200 ]] && grep -q '"api"' "$WORK/body"; then
  pass "GET /api/v1/deployments -> 200 with the stored deployment"
else
  fail "GET /api/v1/deployments -> $code: $(cat "$WORK/body")"
fi

rows=$(mysql_root -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '${DB}'")
[[ $rows -gt 0 ]] && pass "migrations created $rows tables in MariaDB" || fail "no tables in ${DB}"

# The image's HEALTHCHECK command, with the container's environment.
if env -i PATH=/usr/bin:/bin "${SERVER_ENV[@]}" timeout 5 bash -c "$(cat "$WORK/healthcheck")"; then
  pass "the Dockerfile's HEALTHCHECK command succeeds"
else
  fail "the Dockerfile's HEALTHCHECK command fails"
fi

# docker stop: SIGTERM, then the server must exit cleanly within its grace period.
kill -TERM "$SERVER_PID"
deadline=$((SECONDS + 35))
while kill -0 "$SERVER_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
if kill -0 "$SERVER_PID" 2>/dev/null; then
  fail "SIGTERM: still running after 35 s, killed"
  kill -KILL "$SERVER_PID"
fi
set +e
wait "$SERVER_PID"
rc=$?
set -e
SERVER_PID=
[[ $rc == 0 ]] && pass "SIGTERM: the server stopped cleanly" || fail "SIGTERM: exit status $rc"

if ((failed)); then
  echo "server log:"
  cat "$WORK/server.log"
fi
echo "container-env: ${passed} passed, ${failed} failed"
[[ $failed -eq 0 ]]
