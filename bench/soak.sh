#!/usr/bin/env bash
# Soak: wrk on the tutorial's three kinds of request while `gwctl sync`
# changes the configuration every few seconds; socket errors, unexpected
# statuses and the gateway's RSS over time.
#
#   bench/soak.sh                               # 256 connections, 60 s, sync every 3 s
#   DURATION=300 CONNECTIONS=512 bench/soak.sh
#   SOAK_MIX=cookie,anon bench/soak.sh         # without the key logins
#   SYNC_EVERY=0 bench/soak.sh                  # without config changes
#
# The tutorial on a local `gateway echo`: key-auth (falling back to the
# anonymous consumer), consumer alex with key hello_world, session with
# `storage: kong`, request-termination 403 for the anonymous consumer.
# wrk (one Lua state per thread, see bench/soak.lua) cycles through
#   /anything/key     apikey: hello_world      -> 200
#   /anything/cookie  Cookie: session=...      -> 200
#   /anything/anon    nothing                  -> 403 {"message":"Forbidden"}
# and checks each answer: a 200 must come from the echo for a key or
# cookie path, and 403s may not outnumber the anonymous requests sent.
# Meanwhile `gwctl sync` alternates two files that differ in 2,000 extra
# consumers, an extra route and the session plugin's rolling_timeout (a
# change that rebuilds the plugin under traffic; old cookies stay valid).
# VmRSS of `gateway serve` is sampled every 5 s.
#
# Exit status: 0 when there were no socket errors, no unexpected statuses
# and no failed sync; 1 otherwise. Everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-60}
CONNECTIONS=${CONNECTIONS:-256}
THREADS=${THREADS:-2}
SYNC_EVERY=${SYNC_EVERY:-3}
ECHO_ADDR=${ECHO_ADDR:-127.0.0.1:19090}
PROXY_ADDR=${PROXY_ADDR:-127.0.0.1:19000}
ADMIN_ADDR=${ADMIN_ADDR:-127.0.0.1:19001}

for tool in wrk curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "installing $tool"
    apt-get update -qq && apt-get install -y -qq wrk curl >/dev/null
    break
  fi
done

echo "== building release binaries"
cargo build --release --bins --quiet
BIN=$PWD/target/release
ulimit -n 65536 2>/dev/null || true

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$BIN/gateway" echo --listen "$ECHO_ADDR" >"$work/echo.log" 2>&1 &
pids+=($!)
"$BIN/gateway" serve --data-dir "$work/data" --proxy-listen "$PROXY_ADDR" \
  --admin-listen "$ADMIN_ADDR" >"$work/gateway.out" 2>"$work/gateway.log" &
GW_PID=$!
pids+=("$GW_PID")
for _ in $(seq 1 100); do curl -s -o /dev/null "http://$ADMIN_ADDR/status" && break; sleep 0.1; done
export GWCTL_ADDR="http://$ADMIN_ADDR"

# The tutorial; $1 = extra consumers, $2 = the session's rolling_timeout,
# $3 = whether the extra route exists.
config() {
  cat <<YAML
_format_version: "3.0"
services:
  - name: example-service
    url: http://$ECHO_ADDR
    routes:
      - name: example-route
        paths: [/anything]
        strip_path: false
YAML
  if [ "$3" = yes ]; then
    printf '      - name: extra-route\n        paths: [/extra]\n'
  fi
  cat <<YAML
plugins:
  - name: key-auth
    service: example-service
    config:
      key_names: [apikey]
      anonymous: 81823632-10c0-4098-a4f7-31062520c1e6
  - name: session
    service: example-service
    config:
      storage: kong
      cookie_secure: false
      rolling_timeout: $2
  - name: request-termination
    service: example-service
    consumer: anonymous_users
    config:
      status_code: 403
      message: Forbidden
consumers:
  - username: alex
    keyauth_credentials:
      - key: hello_world
  - username: anonymous_users
    id: 81823632-10c0-4098-a4f7-31062520c1e6
YAML
  for i in $(seq 1 "$1"); do printf '  - username: filler-%d\n' "$i"; done
}
config 0 3600 no >"$work/a.yaml"
config 2000 3601 yes >"$work/b.yaml"
"$BIN/gwctl" sync "$work/a.yaml" >/dev/null

SOAK_COOKIE=$(curl -s -o /dev/null -D - -H 'apikey: hello_world' "http://$PROXY_ADDR/anything/login" |
  sed -nE 's/^[Ss]et-[Cc]ookie: (session=[^;]*).*/\1/p' | tr -d '\r')
[ -n "$SOAK_COOKIE" ] || { echo "no session cookie from the login"; exit 1; }
export SOAK_COOKIE
for check in "key:-H apikey:hello_world" "cookie:-H Cookie:$SOAK_COOKIE" "anon:"; do
  name=${check%%:*}; args=${check#*:}
  # shellcheck disable=SC2086
  printf '  preflight %-6s -> %s\n' "$name" "$(curl -s -o /dev/null -w '%{http_code}' $args "http://$PROXY_ADDR/anything/$name")"
done

echo "== soak: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, gwctl sync every ${SYNC_EVERY}s, mix ${SOAK_MIX:-key,cookie,anon}"
rss_log=$work/rss.log
(
  start=$(date +%s)
  while kill -0 "$GW_PID" 2>/dev/null; do
    now=$(date +%s)
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$GW_PID/status" 2>/dev/null || echo 0)
    echo "$((now - start)) $rss" >>"$rss_log"
    sleep 5
  done
) &
pids+=($!)

sync_log=$work/sync.log
(
  end=$(($(date +%s) + DURATION))
  flip=b
  while [ "$SYNC_EVERY" -gt 0 ] && [ "$(date +%s)" -lt "$end" ]; do
    sleep "$SYNC_EVERY"
    started=$(date +%s%N)
    if "$BIN/gwctl" sync "$work/$flip.yaml" >"$work/sync.out" 2>&1; then status=ok; else status="FAILED: $(tail -n 2 "$work/sync.out" | tr '\n' ' ')"; fi
    echo "$flip $(((($(date +%s%N) - started)) / 1000000)) ms $status" >>"$sync_log"
    if [ "$flip" = a ]; then flip=b; else flip=a; fi
  done
) &
sync_pid=$!
pids+=("$sync_pid")

wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s --latency \
  -s bench/soak.lua "http://$PROXY_ADDR" | tee "$work/wrk.out"
wait "$sync_pid" || true
sleep 1

echo
touch "$sync_log"
echo "== gwctl sync ($(wc -l <"$sync_log") runs)"
awk '{n++; t+=$2; if ($2>max) max=$2} $4!="ok" {bad++; print "  " $0} END {if (n) printf "  mean %d ms, max %d ms, failed %d\n", t/n, max, bad}' "$sync_log"
sync_failures=$(grep -vc ' ok$' "$sync_log" || true)

echo "== gateway VmRSS (MiB) every 5 s"
awk '{printf "  t=%3ds %6.1f\n", $1, $2/1024}' "$rss_log"
awk 'NR==1 {first=$2} {v[NR]=$2} END {
  warm = (NR >= 3) ? v[3] : first; last = v[NR];
  printf "  after warm-up (t=10s): %.1f MiB, at the end: %.1f MiB, growth %.1f MiB\n", warm/1024, last/1024, (last-warm)/1024 }' "$rss_log"
echo "== gateway log: $(grep -c ERROR "$work/gateway.log" || true) ERROR lines, $(grep -c WARN "$work/gateway.log" || true) WARN lines"
grep -E 'ERROR|WARN' "$work/gateway.log" | head -n 5 || true

socket_errors=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$work/wrk.out")
unexpected=$(awk '/^unexpected:/ {print $2}' "$work/wrk.out")
echo
echo "socket errors: ${socket_errors:-0}, unexpected statuses: ${unexpected:-?}, failed syncs: $sync_failures"
if [ "${socket_errors:-0}" = 0 ] && [ "${unexpected:-1}" = 0 ] && [ "$sync_failures" = 0 ]; then
  echo "PASS"
else
  echo "FAIL"
  exit 1
fi
