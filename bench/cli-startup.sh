#!/usr/bin/env bash
# CLI start-up benchmark: `deploytime start` end to end (process start, spool
# check, one POST, the answer) against the release server on a local SQLite
# file, measured with hyperfine. Results go in BENCHMARKS.md, "CLI start-up".
#
#   bench/cli-startup.sh               # 300 runs after 20 warm-up runs
#   RUNS=30 bench/cli-startup.sh       # quicker
#   SKIP_BUILD=1 bench/cli-startup.sh  # use the release binaries already built
#
# Needs hyperfine (apt-get install hyperfine) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-300}
WARMUP=${WARMUP:-20}
TARGET=${CARGO_TARGET_DIR:-target}
WORK=$TARGET/bench-cli-startup
rm -rf "$WORK"
mkdir -p "$WORK"

[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --quiet -p deploytime-cli -p deploytime-server
CLI=$TARGET/release/deploytime
SERVER=$TARGET/release/deploytime-server

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$SERVER" serve --bind "127.0.0.1:$port" --database-url "sqlite://$WORK/bench.db" >"$WORK/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null

export DEPLOYTIME_URL="http://127.0.0.1:$port" DEPLOYTIME_SPOOL="$WORK/spool.jsonl"
unset DEPLOYTIME_TOKEN DEPLOYTIME_STRICT

hyperfine --shell=none --warmup "$WARMUP" --runs "$RUNS" --export-json "$WORK/hyperfine.json" \
  --command-name 'deploytime --version' "$CLI --version" \
  --command-name 'deploytime start bench' "$CLI start bench --no-ci-metadata"

stored=$(curl -sf "http://127.0.0.1:$port/api/v1/deployments?component=bench&limit=1000" |
  python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
[ -s "$WORK/spool.jsonl" ] && { echo "events were spooled: the server did not answer" >&2; exit 1; }

python3 - "$WORK/hyperfine.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    ms = lambda s: f"{s * 1000:.1f}"
    print(f"| `{r['command']}` | {ms(r['median'])} | {ms(r['mean'])} ± {ms(r['stddev'])} | {ms(r['min'])} | {ms(r['max'])} | {len(r['times'])} |")
PY
echo "deployments stored by the runs (the listing caps at 1000): $stored"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
