#!/usr/bin/env bash
# Property-based tests of the HTTP API against its own OpenAPI description
# (GET /api/v1/openapi.json, derived from the handlers): schemathesis generates
# valid and invalid calls for every operation and runs every check it has: no
# 5xx, every status and body as described, every schema-valid call accepted and
# every invalid one refused (the few rules between fields that a schema cannot
# state are listed in schemathesis.toml).
#
# Runs the built server ($DEPLOYTIME_SERVER_BIN, default target/debug/deploytime-server)
# on a free loopback port with a fresh SQLite file, in anonymous mode. Schemathesis
# is installed into target-ci/schemathesis-venv on first use.
#
#   bash .ci/checks/schemathesis.sh
#   SCHEMATHESIS_MAX_EXAMPLES=500 SCHEMATHESIS_SEED=$RANDOM bash .ci/checks/schemathesis.sh   # dig deeper
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
SERVER=${DEPLOYTIME_SERVER_BIN:-$ROOT/target/debug/deploytime-server}
VENV=$ROOT/target-ci/schemathesis-venv
VERSION=4.32.5
# Bounded so that CI finishes in a few minutes; the seed makes a failure reproducible.
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-200}
SEED=${SCHEMATHESIS_SEED:-20261122}

if [ ! -x "$SERVER" ]; then
  echo "schemathesis: no server binary at $SERVER (cargo build -p deploytime-server)" >&2
  exit 1
fi
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "$VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

WORK=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SERVER" serve --bind "127.0.0.1:$port" --database-url "$WORK/schemathesis.db" \
  --log-format json 2>"$WORK/server.log" &
pid=$!
stop() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$WORK"
}
trap stop EXIT

status=0
# From target-ci/, where schemathesis keeps its cache (.schemathesis/), not the tree.
cd "$ROOT/target-ci"
"$VENV/bin/schemathesis" --config-file "$ROOT/.ci/checks/schemathesis.toml" \
  run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --wait-for-schema 30 \
  --checks all \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --generation-database "$ROOT/target-ci/schemathesis-examples" \
  --workers 1 \
  --report junit --report-dir "$ROOT/target-ci/schemathesis-report" || status=$?

# A server that fell over mid-run fails the check even if schemathesis missed it.
if ! kill -0 "$pid" 2>/dev/null; then
  echo "schemathesis: the server exited during the run; its log:" >&2
  tail -n 50 "$WORK/server.log" >&2
  status=1
fi
# The server's own errors and any panic fail it too. (actix-http logs requests it
# cannot parse, such as a NUL byte in a header, at ERROR level; those are
# answered 400 and are not the server's fault.)
failures='panicked|"level":"ERROR".*"target":"deploytime'
if grep -Eq "$failures" "$WORK/server.log"; then
  echo "schemathesis: the server logged errors:" >&2
  grep -E "$failures" "$WORK/server.log" | tail -n 20 >&2
  status=1
fi
exit "$status"
