#!/usr/bin/env bash
# Reporting benchmark: seeds synthetic history (200 components x 3 environments,
# 1,000,000 deployments over two years by default, with the incidents some failed
# production deployments open) into SQLite and MySQL, starts
# the release server on each, and measures /api/v1/stats, the CSV export, and
# the dashboard's overview and busiest component's page.
#
#   bench/reporting.sh            # the full run (several minutes; results in BENCHMARKS.md)
#   bench/reporting.sh --smoke    # a few thousand rows, to check the script still works
#
# MySQL: BENCH_MYSQL_URL (default mysql://root@127.0.0.1:3306), an account that
# may create and drop the database `deploytime_bench`. BENCH_SKIP_MYSQL=1 skips it.
# BENCH_REUSE=1 measures the databases a previous run seeded (seeding a million
# deployments takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

DEPLOYMENTS=${DEPLOYMENTS:-1000000}
REPEAT=${REPEAT:-15}
if [ "${1:-}" = "--smoke" ]; then DEPLOYMENTS=3000 REPEAT=3; fi
MYSQL_URL=${BENCH_MYSQL_URL:-mysql://root@127.0.0.1:3306}
WORK=target/bench-reporting
mkdir -p "$WORK"

features=()
[ "${BENCH_SKIP_MYSQL:-0}" = 1 ] || features=(--features mysql)
# A target directory of its own, so no other build swaps the binary mid-run.
CARGO_TARGET_DIR=target/bench cargo build --release --quiet -p deploytime-server "${features[@]}"
BIN=target/bench/release/deploytime-server

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median_ms() { sort -n | awk '{a[NR]=$1} END {print int(a[int((NR+1)/2)]*1000+0.5)}'; }
time_get() { # url -> median milliseconds over REPEAT requests (after one warm-up)
  curl -sf -o /dev/null "$1"
  for _ in $(seq "$REPEAT"); do curl -sf -o /dev/null -w '%{time_total}\n' "$1"; done | median_ms
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

results=()
pages=()
run_backend() { # name url
  local name=$1 url=$2 port pid
  if [ "${BENCH_REUSE:-0}" != 1 ]; then
    echo "== $name: seeding $DEPLOYMENTS deployments" >&2
    "$BIN" seed --database-url "$url" --deployments "$DEPLOYMENTS" 2>&1 | tail -1 >&2
  fi
  port=$(free_port)
  "$BIN" serve --database-url "$url" --bind "127.0.0.1:$port" >"$WORK/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.1; done
  kill -0 "$pid" || { echo "the server did not start: see $WORK/$name.log" >&2; exit 1; }
  local base="http://127.0.0.1:$port/api/v1" two_years
  two_years=$(date -u -d '-731 days' +%Y-%m-%dT%H:%M:%SZ)
  local one30 all30 one2y all2y
  one30=$(time_get "$base/stats?component=service-007")
  all30=$(time_get "$base/stats")
  one2y=$(time_get "$base/stats?component=service-007&since=$two_years")
  all2y=$(time_get "$base/stats?since=$two_years")
  # The dashboard: the overview of every component and the page of the
  # component with the most deployments, over the default 30 days and a year.
  local busiest over30 over365 page30 page365
  if curl -sf -o /dev/null "http://127.0.0.1:$port/"; then
    busiest=$(curl -sf "$base/stats?since=$two_years" | python3 -c '
import json, sys
groups = json.load(sys.stdin)["groups"]
print(max(groups, key=lambda g: g["deployments"])["component"])')
    over30=$(time_get "http://127.0.0.1:$port/")
    over365=$(time_get "http://127.0.0.1:$port/?window=365d")
    page30=$(time_get "http://127.0.0.1:$port/component?component=$busiest")
    page365=$(time_get "http://127.0.0.1:$port/component?component=$busiest&window=365d")
    pages+=("$(printf '| %s | %s | %s | %s | %s | %s |' "$name" "$DEPLOYMENTS" "$over30" "$over365" "$page30 ($busiest)" "$page365")")
  else
    pages+=("| $name | $DEPLOYMENTS | no dashboard | | | |")
  fi
  local before peak rows seconds sampler cold
  # The first export reads the table from disk (the statistics only read an
  # index, and this machine's page cache does not keep a gigabyte file for
  # long): reported on its own. The measured export is the second one.
  cold=$(curl -sf -o "$WORK/$name.csv" -w '%{time_total}' "$base/deployments?format=csv")
  before=$(rss_kib "$pid")
  ( peak=0; while kill -0 "$pid" 2>/dev/null; do r=$(rss_kib "$pid" 2>/dev/null || echo 0); [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" >"$WORK/$name.peak"; sleep 0.05; done ) &
  sampler=$!
  seconds=$(curl -sf -o "$WORK/$name.csv" -w '%{time_total}' "$base/deployments?format=csv")
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  peak=$(cat "$WORK/$name.peak" 2>/dev/null || echo "$before")
  rows=$(($(wc -l <"$WORK/$name.csv") - 1))
  kill "$pid"; wait "$pid" || true
  results+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %.0f | %.0f | %s → %s |' "$name" "$DEPLOYMENTS" \
    "$one30" "$all30" "$one2y" "$all2y" "$rows" "$(echo "$rows / $cold" | bc -l)" "$(echo "$rows / $seconds" | bc -l)" \
    "$((before / 1024)) MiB" "$((peak / 1024)) MiB")")
}

[ "${BENCH_REUSE:-0}" = 1 ] || rm -f "$WORK"/sqlite.db*
run_backend sqlite "sqlite://$WORK/sqlite.db"
if [ "${BENCH_SKIP_MYSQL:-0}" != 1 ]; then
  mysql_db="${MYSQL_URL%/}/deploytime_bench"
  [ "${BENCH_REUSE:-0}" = 1 ] || python3 - "$MYSQL_URL" <<'PY'
import subprocess, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
args = ["mysql", "-h", u.hostname or "127.0.0.1", "-P", str(u.port or 3306), "-u", u.username or "root"]
if u.password: args.append(f"-p{u.password}")
subprocess.run(args + ["-e", "DROP DATABASE IF EXISTS deploytime_bench; CREATE DATABASE deploytime_bench"], check=True)
PY
  run_backend mysql "$mysql_db"
fi

echo
echo "| backend | deployments | stats, 1 component, 30 d (ms) | stats, all, 30 d (ms) | stats, 1 component, 2 y (ms) | stats, all, 2 y (ms) | CSV rows | CSV rows/s, first export (cold) | CSV rows/s | server RSS before → peak during export |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
echo
echo "| backend | deployments | overview, 30 d (ms) | overview, 365 d (ms) | busiest component's page, 30 d (ms) | busiest component's page, 365 d (ms) |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${pages[@]}"
