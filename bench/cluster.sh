#!/usr/bin/env bash
# Several gateway nodes on one PostgreSQL, measured in one run:
#
#   bench/cluster.sh                       # 3 nodes, 200 propagation rounds, wrk 10 s per row
#   ROUNDS=500 DURATION=20s bench/cluster.sh
#   BIN=/some/dir bench/cluster.sh         # that dir's gateway and gwctl, no build
#   LOGS=/tmp/logs bench/cluster.sh        # keep the nodes' logs
#
# 1. write-to-visible latency between nodes (bench/cluster.py): a route
#    posted on one node, polled through another node's proxy;
# 2. a burst of 100 writes and when the last is served elsewhere;
# 3. admin write throughput: PostgreSQL node vs sled node, and two nodes
#    writing the same row at once;
# 4. proxied requests/s (wrk) with `storage: kong` sessions on PostgreSQL
#    against the same on sled, with key-auth as the reference, and the CPU
#    time per request of the gateway (and of PostgreSQL for its row).
#
# PostgreSQL is a throwaway cluster (scripts/postgres.sh) with Debian's
# defaults (fsync on, synchronous_commit on); everything shares the
# machine's cores with wrk and nginx (the upstream).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
NODES=${NODES:-3}
UPSTREAM_PORT=18080
NGINX_PROXY_PORT=18081
PG_PORT=${PG_PORT:-55433}

if [ -z "${BIN:-}" ]; then
  echo "== building release binaries"
  cargo build --release --bins --quiet
  BIN=target/release
fi
# shellcheck source=bench/nginx.sh
source bench/nginx.sh
# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
# LOGS=DIR keeps the nodes' logs there.
trap '[ -n "${LOGS:-}" ] && mkdir -p "$LOGS" && cp "$work"/*.log "$LOGS"/ 2>/dev/null; pg_stop; cleanup' EXIT

echo "== PostgreSQL on port $PG_PORT ($PG_BIN)"
pg_start "$work/pg" "$PG_PORT"
pg_psql postgres "CREATE DATABASE gateway" >/dev/null
DATABASE=$(pg_url gateway)
"$BIN/gateway" migrations bootstrap --database "$DATABASE" >/dev/null

wait_up() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "$1 is not up" >&2; exit 1; }

echo "== $NODES PostgreSQL nodes and one sled node (--workers 1 each)"
pg_admins=() pg_proxies=()
for n in $(seq 1 "$NODES"); do
  proxy=127.0.0.1:$((18100 + n * 10)) admin=127.0.0.1:$((18101 + n * 10))
  "$BIN/gateway" serve --database "$DATABASE" --data-dir "$work/node$n" --workers 1 \
    --proxy-listen "$proxy" --admin-listen "$admin" >"$work/node$n.log" 2>&1 &
  pids+=($!)
  pg_admins+=("$admin") pg_proxies+=("$proxy")
  wait_up "http://$admin/status"
done
PG_NODE_PID=${pids[-$NODES]}
SLED_PROXY=127.0.0.1:18200 SLED_ADMIN=127.0.0.1:18201
"$BIN/gateway" serve --data-dir "$work/sled" --workers 1 \
  --proxy-listen "$SLED_PROXY" --admin-listen "$SLED_ADMIN" >"$work/sled.log" 2>&1 &
SLED_PID=$!
pids+=("$SLED_PID")
wait_up "http://$SLED_ADMIN/status"

echo "== $(nproc) cores; load: $(uptime | sed 's/.*load average/load average/')"
python3 bench/cluster.py --pg-admin "$(IFS=,; echo "${pg_admins[*]}")" \
  --pg-proxy "$(IFS=,; echo "${pg_proxies[*]}")" --sled-admin "$SLED_ADMIN" \
  --upstream "http://127.0.0.1:$UPSTREAM_PORT" --rounds "${ROUNDS:-200}" --burst "${BURST:-100}"

echo "== proxied requests with storage: kong sessions (wrk -t$THREADS -c$CONNECTIONS -d$DURATION)"
python3 bench/gen_config.py --upstream "http://127.0.0.1:$UPSTREAM_PORT" >"$work/small.yaml"
GWCTL_ADDR="http://${pg_admins[0]}" "$BIN/gwctl" sync "$work/small.yaml" >/dev/null
GWCTL_ADDR="http://$SLED_ADMIN" "$BIN/gwctl" sync "$work/small.yaml" >/dev/null
sleep 0.5

cookie_for() { # proxy address: log in with the key and print the session cookie
  curl -s -o /dev/null -D - -H 'apikey: hello_world' "http://$1/anything" |
    sed -nE 's/^[Ss]et-[Cc]ookie: (session=[^;]*).*/\1/p' | tr -d '\r'
}
cpu_ticks() { # pids...: user + system clock ticks used so far
  local total=0 pid
  for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done
  echo "$total"
}
postgres_pids() { pgrep -d ' ' -f "postgres: .*gateway" || true; }
run() { # label, "pids of the server", url, extra wrk args...
  local label=$1 server_pids=$2 url=$3; shift 3
  local out before after
  # shellcheck disable=SC2086
  before=$(cpu_ticks $server_pids $(postgres_pids))
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url")
  # shellcheck disable=SC2086
  after=$(cpu_ticks $server_pids $(postgres_pids))
  local rps p50 p99 non2xx requests cpu
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
    'BEGIN { if (n > 0) printf "%.1f", ticks / hz * 1e6 / n; else print "-" }')
  printf '  %-34s %9s req/s  p50 %8s  p99 %8s  %6s us CPU/req  non-2xx %s\n' \
    "$label" "$rps" "$p50" "$p99" "$cpu" "${non2xx:-0}"
}
PG_COOKIE=$(cookie_for "${pg_proxies[0]}")
SLED_COOKIE=$(cookie_for "$SLED_PROXY")
[ -n "$PG_COOKIE" ] && [ -n "$SLED_COOKIE" ] || { echo "no session cookie" >&2; exit 1; }
for round in 1 2; do
  echo "  -- round $round"
  run "sled, key-auth" "$SLED_PID" "http://$SLED_PROXY/key" -H 'apikey: hello_world'
  run "sled, storage: kong session" "$SLED_PID" "http://$SLED_PROXY/anything" -H "cookie: $SLED_COOKIE"
  run "postgres, key-auth" "$PG_NODE_PID" "http://${pg_proxies[0]}/key" -H 'apikey: hello_world'
  run "postgres, storage: kong session" "$PG_NODE_PID" "http://${pg_proxies[0]}/anything" -H "cookie: $PG_COOKIE"
done
echo "  (CPU/req counts the gateway and the PostgreSQL backends of database 'gateway')"
