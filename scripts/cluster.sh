#!/usr/bin/env bash
# The key-auth + session tutorial on three gateway nodes sharing one
# PostgreSQL, as a newcomer would run it:
#
#   1. start a throwaway PostgreSQL (in a temporary directory, port 55432)
#      and prepare its database with `gateway migrations bootstrap`;
#   2. start the echo upstream and three nodes, each with
#      `--database postgres://...` and a --data-dir of its own for its
#      local copy (proxies on 8000/8100/8200, Admin APIs on 8001/8101/8201);
#   3. apply the tutorial's blocks with gwctl through node 1;
#   4. log in through node 2, use the session cookie through node 3, log
#      out through node 1, and see the cookie refused by node 3;
#   5. show every node's /status (same configuration revision).
#
# Everything is stopped and removed on exit. KEEP=1 leaves it running until
# Ctrl-C, to try it by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/postgres.sh

ECHO=127.0.0.1:9000
PG_PORT=${PG_PORT:-55432}

echo "== building"
cargo build --bins --quiet
BIN=target/debug
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
wait_for() {
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  fail "$1 did not come up"
}

step "PostgreSQL in $work/pg on port $PG_PORT"
pg_start "$work/pg" "$PG_PORT"
pg_psql postgres "CREATE DATABASE gateway"
DATABASE=$(pg_url gateway)
"$BIN/gateway" migrations bootstrap --database "$DATABASE"

step "the echo upstream on $ECHO and three nodes"
"$BIN/gateway" echo --listen "$ECHO" >"$work/echo.log" 2>&1 &
pids+=($!)
for n in 1 2 3; do
  port=$((8000 + (n - 1) * 100))
  "$BIN/gateway" serve --database "$DATABASE" --data-dir "$work/node$n" \
    --proxy-listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$((port + 1))" \
    >"$work/node$n.log" 2>&1 &
  pids+=($!)
  echo "node $n: proxy http://127.0.0.1:$port, admin http://127.0.0.1:$((port + 1))"
done
for port in 8001 8101 8201; do wait_for "http://127.0.0.1:$port/status"; done
wait_for "http://$ECHO/anything"

step "the tutorial's blocks through node 1 (gwctl sync, as scripts/tutorial.sh)"
export GWCTL_ADDR=http://127.0.0.1:8001
"$BIN/gwctl" sync fixtures/tutorial/00-prerequisites.yaml
for block in fixtures/tutorial/0[1-9]-*.yaml; do
  "$BIN/gwctl" sync --no-deletes "$block"
done

get() { # url, extra curl args...: status; headers and body into files
  local url=$1; shift
  curl -s -D "$work/headers" -o "$work/body" -w '%{http_code}' "$@" "$url"
}
session_cookie() { grep -i '^set-cookie: session=' "$work/headers" | sed -E 's/^[Ss]et-[Cc]ookie: (session=[^;]*).*/\1/' | tr -d '\r'; }

step "node 3: an anonymous request is refused"
status=$(get http://127.0.0.1:8200/anything)
echo "GET node3/anything -> $status $(cat "$work/body")"
[ "$status" = 403 ] || fail "expected 403, got $status"

step "node 2: apikey: hello_world logs alex in"
status=$(get http://127.0.0.1:8100/anything -H 'apikey: hello_world')
[ "$status" = 200 ] || fail "expected 200, got $status"
COOKIE=$(session_cookie)
[ -n "$COOKIE" ] || fail "no session cookie"
echo "GET node2/anything (apikey) -> $status, Set-Cookie: ${COOKIE:0:40}..."

step "node 3: the cookie from node 2 authenticates (the row is in PostgreSQL)"
status=$(get http://127.0.0.1:8200/anything -H "cookie: $COOKIE")
[ "$status" = 200 ] || fail "expected 200, got $status"
grep -q '"X-Consumer-Username": *"alex"' "$work/body" || fail "the upstream did not see alex"
echo "GET node3/anything (cookie) -> $status, the upstream saw X-Consumer-Username: alex"

step "node 1: logout"
status=$(get 'http://127.0.0.1:8000/anything?session_logout=1' -X POST -H "cookie: $COOKIE")
[ "$status" = 200 ] || fail "expected 200, got $status"
echo "POST node1/anything?session_logout=1 -> $status"
status=$(get http://127.0.0.1:8200/anything -H "cookie: $COOKIE")
[ "$status" = 403 ] || fail "expected 403 after the logout, got $status"
echo "GET node3/anything (same cookie) -> $status: the session is gone on every node"

step "every node serves the same configuration revision"
for port in 8001 8101 8201; do
  echo "node on $port: $(curl -s "http://127.0.0.1:$port/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("revision", s["configuration_revision"], "database reachable:", s["database"]["reachable"])')"
done

printf '\nThe tutorial works on three nodes sharing one PostgreSQL.\n'
if [ "${KEEP:-}" = 1 ]; then
  echo "KEEP=1: running until Ctrl-C (database: $DATABASE)"
  while sleep 3600; do :; done
fi
