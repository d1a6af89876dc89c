#!/usr/bin/env bash
# A MariaDB primary and a GTID replica of it, for the read replica tests
# (crates/deploytime-server/tests/api/replica.rs). Both are instances of their
# own, beside the server on 3306, which is left as it is: that one runs with
# Debian's defaults, without a binary log, and other tests share it.
#
#   primary  127.0.0.1:3308  server_id 1, log_bin, binlog_format ROW
#   replica  127.0.0.1:3307  server_id 2, log_bin + log_slave_updates, GTID
#                            replication of the primary (slave_pos)
#
# Idempotent: a first run creates the data directories (mariadb-install-db)
# and sets up replication; a later run starts whatever is not running and
# restarts replication if it was left stopped. Run from the repository root,
# as root (the instances then run as the mysql user) or as a user who may
# write $DEPLOYTIME_REPLICA_DIR. Prints the URLs the tests read:
#
#   eval "$(bash .ci/mariadb-replica.sh)"
#
# Users: deploytime_test (all privileges, both instances; the tests create
# and drop a database per test on the primary), deploytime_reader (SELECT
# only, on the replica: a read user without REPLICATION CLIENT), repl (the
# replication user, on the primary). Set up with sql_log_bin=0, so neither
# binary log holds a write that did not come from a test.
set -euo pipefail

BASE=${DEPLOYTIME_REPLICA_DIR:-/var/tmp/deploytime-mariadb-replica}
PRIMARY_PORT=3308
REPLICA_PORT=3307
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)

log() { printf 'mariadb-replica: %s\n' "$*" >&2; }

run_as=()
if [ "$(id -u)" -eq 0 ]; then
  run_as=(--user=mysql)
fi

client() { # instance, then mysql arguments; root over the instance's socket
  local dir=$BASE/$1
  shift
  mysql --no-defaults --protocol=socket --socket="$dir/mysqld.sock" -uroot "$@"
}

start_instance() { # name port server_id [extra options]
  local name=$1 port=$2 id=$3
  shift 3
  local dir=$BASE/$name
  if client "$name" -e 'SELECT 1' >/dev/null 2>&1; then
    return
  fi
  mkdir -p "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    log "creating the $name's data directory in $dir/data"
    mkdir -p "$dir/data"
    [ "$(id -u)" -eq 0 ] && chown -R mysql:mysql "$dir"
    mariadb-install-db --no-defaults "${run_as[@]}" --datadir="$dir/data" \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 ||
      { cat "$dir/install.log" >&2; exit 1; }
  fi
  [ "$(id -u)" -eq 0 ] && chown -R mysql:mysql "$dir"
  log "starting the $name on 127.0.0.1:$port"
  # Small buffers: these instances hold a few test databases at a time.
  # Detached, with no descriptor of this script's: `eval "$(…)"` reads this
  # script's output to its end.
  setsid "$MARIADBD" --no-defaults "${run_as[@]}" --datadir="$dir/data" \
    --port="$port" --bind-address=127.0.0.1 --socket="$dir/mysqld.sock" \
    --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
    --server-id="$id" --log-bin="$dir/data/binlog" --binlog-format=ROW \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=32M \
    --skip-name-resolve "$@" </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 60); do
    client "$name" -e 'SELECT 1' >/dev/null 2>&1 && return
    sleep 1
  done
  log "the $name did not start; its log:"
  tail -n 30 "$dir/error.log" >&2 || true
  exit 1
}

start_instance primary "$PRIMARY_PORT" 1
start_instance replica "$REPLICA_PORT" 2 --log-slave-updates --relay-log="$BASE/replica/data/relay"

client primary <<'SQL'
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS 'deploytime_test'@'127.0.0.1' IDENTIFIED BY 'deploytime-test';
GRANT ALL PRIVILEGES ON *.* TO 'deploytime_test'@'127.0.0.1';
CREATE USER IF NOT EXISTS 'repl'@'127.0.0.1' IDENTIFIED BY 'repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';
SQL

client replica <<'SQL'
SET SESSION sql_log_bin = 0;
CREATE USER IF NOT EXISTS 'deploytime_test'@'127.0.0.1' IDENTIFIED BY 'deploytime-test';
GRANT ALL PRIVILEGES ON *.* TO 'deploytime_test'@'127.0.0.1';
CREATE USER IF NOT EXISTS 'deploytime_reader'@'127.0.0.1' IDENTIFIED BY 'deploytime-reader';
GRANT SELECT ON *.* TO 'deploytime_reader'@'127.0.0.1';
SQL

if [ -z "$(client replica -N -e 'SHOW REPLICA STATUS')" ]; then
  log "making 127.0.0.1:$REPLICA_PORT a replica of 127.0.0.1:$PRIMARY_PORT"
  client replica <<SQL
CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$PRIMARY_PORT,
  MASTER_USER='repl', MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos,
  MASTER_CONNECT_RETRY=1;
SQL
fi
# A test that stopped the replica's SQL thread and was killed leaves it so.
client replica -e 'START REPLICA'

for _ in $(seq 1 30); do
  status=$(client replica -e 'SHOW REPLICA STATUS\G')
  if grep -q 'Slave_IO_Running: Yes' <<<"$status" && grep -q 'Slave_SQL_Running: Yes' <<<"$status"; then
    echo "export DEPLOYTIME_TEST_MYSQL_REPLICA_PRIMARY_URL=mysql://deploytime_test:deploytime-test@127.0.0.1:$PRIMARY_PORT"
    echo "export DEPLOYTIME_TEST_MYSQL_REPLICA_URL=mysql://deploytime_test:deploytime-test@127.0.0.1:$REPLICA_PORT"
    echo "export DEPLOYTIME_TEST_MYSQL_REPLICA_READER_URL=mysql://deploytime_reader:deploytime-reader@127.0.0.1:$REPLICA_PORT"
    exit 0
  fi
  sleep 1
done
log "replication does not run:"
printf '%s\n' "$status" | grep -E 'Running|Error|Gtid' >&2
exit 1
