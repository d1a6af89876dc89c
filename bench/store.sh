#!/usr/bin/env bash
# Store-path benchmark: on SQLite (WAL, synchronous=FULL) and MySQL/MariaDB, drives
# POST /api/v1/events with wrk at 1, 16 and 64 connections, measures the same
# inserts issued directly (examples/store_limit.rs: same validation, pool and
# transaction, no HTTP) and /healthz as the HTTP ceiling, checks that every 2xx is
# a stored event and that no answer was anything but 2xx, and prints one table.
# Medians of RUNS runs.
#
#   bench/store.sh            # 3 runs x 10 s per point (several minutes)
#   bench/store.sh --smoke    # 1 run x 2 s at 1 and 4 connections: checks it still works
#
# MySQL: BENCH_MYSQL_URL (default mysql://root@127.0.0.1:3306), an account that may
# create and drop the database `deploytime_store_bench`. BENCH_SKIP_MYSQL=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
SECONDS_PER_POINT=${SECONDS_PER_POINT:-10}
CONCURRENCY=${CONCURRENCY:-"1 16 64"}
POOL=${POOL:-8}
if [ "${1:-}" = "--smoke" ]; then RUNS=1 SECONDS_PER_POINT=2 CONCURRENCY="1 4"; fi
MYSQL_URL=${BENCH_MYSQL_URL:-mysql://root@127.0.0.1:3306}
WORK=target/bench-store
mkdir -p "$WORK"

if ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
features=()
[ "${BENCH_SKIP_MYSQL:-0}" = 1 ] || features=(--features mysql)
if [ "${1:-}" = "--smoke" ]; then
  # The smoke run checks the script, not the speed: the debug build the tests
  # already made will do.
  build_dir=${CARGO_TARGET_DIR:-target}
  cargo build --quiet -p deploytime-server "${features[@]}" --bin deploytime-server --example store_limit
  BIN=$build_dir/debug/deploytime-server
  LIMIT=$build_dir/debug/examples/store_limit
else
  # A target directory of its own, so no other build swaps the binaries mid-run.
  CARGO_TARGET_DIR=target/bench cargo build --release --quiet -p deploytime-server "${features[@]}" --bin deploytime-server --example store_limit
  BIN=target/bench/release/deploytime-server
  LIMIT=target/bench/release/examples/store_limit
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json() { python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])[sys.argv[1]])" "$1"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

reset_db() { # backend -> url of an empty database
  case $1 in
    sqlite) rm -f "$WORK"/store.db*; echo "sqlite://$WORK/store.db" ;;
    mysql)
      python3 - "$MYSQL_URL" <<'PY' >&2
import subprocess, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
args = ["mysql", "-h", u.hostname or "127.0.0.1", "-P", str(u.port or 3306), "-u", u.username or "root"]
if u.password: args.append(f"-p{u.password}")
subprocess.run(args + ["-e", "DROP DATABASE IF EXISTS deploytime_store_bench; CREATE DATABASE deploytime_store_bench"], check=True)
PY
      echo "${MYSQL_URL%/}/deploytime_store_bench" ;;
  esac
}

count_events() { # backend url
  case $1 in
    sqlite) python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from events').fetchone()[0])" "$WORK/store.db" ;;
    mysql) python3 - "$MYSQL_URL" <<'PY'
import subprocess, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
args = ["mysql", "-N", "-h", u.hostname or "127.0.0.1", "-P", str(u.port or 3306), "-u", u.username or "root"]
if u.password: args.append(f"-p{u.password}")
print(subprocess.run(args + ["-e", "select count(*) from deploytime_store_bench.events"], check=True, capture_output=True, text=True).stdout.strip())
PY
    ;;
  esac
}

rows=()
failures=0
backends=(sqlite)
[ "${BENCH_SKIP_MYSQL:-0}" = 1 ] || backends+=(mysql)
for backend in "${backends[@]}"; do
  for c in $CONCURRENCY; do
    store_rps=() p50=() p99=() limit_rps=() rss=() health_rps=()
    for run in $(seq "$RUNS"); do
      url=$(reset_db "$backend")
      port=$(free_port)
      "$BIN" serve --database-url "$url" --bind "127.0.0.1:$port" --pool-size "$POOL" >"$WORK/server.log" 2>&1 &
      pid=$!
      for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.1; done
      threads=$(( c < 2 ? 1 : 2 ))
      out=$(wrk -t"$threads" -c"$c" -d"${SECONDS_PER_POINT}s" --latency -s bench/store.lua "http://127.0.0.1:$port" 2>&1 | tail -1)
      health=$(wrk -t"$threads" -c"$c" -d"$(( SECONDS_PER_POINT < 3 ? SECONDS_PER_POINT : 3 ))s" -s bench/healthz.lua "http://127.0.0.1:$port/healthz" 2>&1 | tail -1)
      peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
      kill "$pid"; wait "$pid" || true
      requests=$(echo "$out" | json requests); non2xx=$(echo "$out" | json non_2xx)
      stored=$(count_events "$backend" "$url")
      # wrk counts the answers it received before its deadline; the up to $c
      # requests still in flight then are stored but never counted. So: every
      # acknowledged event is stored (nothing lost), and at most $c more (nothing
      # stored twice).
      if [ "$non2xx" != 0 ] || [ "$stored" -lt "$requests" ] || [ "$stored" -gt $((requests + c)) ]; then
        echo "FAIL $backend c=$c run=$run: $requests answered, $non2xx non-2xx, $stored events stored" >&2
        failures=$((failures + 1))
      fi
      store_rps+=("$(echo "$out" | json per_second)"); p50+=("$(echo "$out" | json p50_ms)"); p99+=("$(echo "$out" | json p99_ms)")
      health_rps+=("$(echo "$health" | json per_second)"); rss+=("$((peak / 1024))")
      url=$(reset_db "$backend")
      limit=$("$LIMIT" "$url" "$c" "$SECONDS_PER_POINT" "$POOL" 2>/dev/null | tail -1)
      limit_rps+=("$(echo "$limit" | json per_second)")
    done
    s=$(printf '%s\n' "${store_rps[@]}" | median); l=$(printf '%s\n' "${limit_rps[@]}" | median)
    rows+=("$(printf '| %s | %s | %.0f | %.2f | %.2f | %.0f | %.0f%% | %.0f | %s MiB |' "$backend" "$c" "$s" \
      "$(printf '%s\n' "${p50[@]}" | median)" "$(printf '%s\n' "${p99[@]}" | median)" "$l" \
      "$(echo "100 * $s / $l" | bc -l)" "$(printf '%s\n' "${health_rps[@]}" | median)" \
      "$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)")")
  done
done

echo "| backend | connections | store req/s | p50 ms | p99 ms | limit req/s | store/limit | /healthz req/s | peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
if [ "$failures" -gt 0 ]; then
  echo "store benchmark: $failures runs lost events or answered non-2xx" >&2
  exit 1
fi
