# Sourced by scripts/cluster.sh and bench/cluster.sh: a throwaway PostgreSQL
# cluster in a directory of its own, on a loopback port, removed with it.
#
#   pg_start DIR PORT   # initdb (as the postgres user when run as root) and start
#   pg_url DB           # postgres://gw@127.0.0.1:PORT/DB
#   pg_psql DB SQL      # run SQL with psql
#   pg_stop             # stop it (-m immediate); the caller removes DIR
#
# Needs Debian's `postgresql` package (installed when missing).
# shellcheck shell=bash

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
  echo "installing postgresql"
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

pg_as_owner() { # command...: as postgres when we are root (initdb refuses root)
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() { # dir, port
  PG_DIR=$1
  PG_PORT=$2
  mkdir -p "$PG_DIR"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$PG_DIR"
    chmod a+x "$(dirname "$PG_DIR")"
  fi
  pg_as_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U gw --no-sync -E UTF8 >"$PG_DIR/initdb.log"
  pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -w -l "$PG_DIR/server.log" \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 ${PG_OPTIONS:-}" start >/dev/null
}

pg_url() { # database
  echo "postgres://gw@127.0.0.1:$PG_PORT/$1"
}

pg_psql() { # database, sql
  "$PG_BIN/psql" -X -q -A -t -h 127.0.0.1 -p "$PG_PORT" -U gw -d "$1" -c "$2"
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] && [ -f "$PG_DIR/data/postmaster.pid" ] &&
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
}
