#!/usr/bin/env bash
# Proxy benchmark: the gateway side by side with an nginx reverse proxy, in one
# run on this machine, against the same nginx upstream with wrk.
#
#   bench/proxy.sh            # defaults: 10 s per row, 2 threads, 64 connections
#   DURATION=30s CONNECTIONS=128 bench/proxy.sh
#
# Rows: upstream direct, nginx proxy, gateway (no plugins, key-auth, session
# cookie with storage cookie and kong, anonymous 403). Then the same gateway
# rows with 10,000 consumers and 1,000 routes loaded. Prints requests/s, p50,
# p99 and the ratio of each row to the nginx proxy row, then the gateway's
# peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
UPSTREAM_PORT=18080
NGINX_PROXY_PORT=18081
GW_PROXY=127.0.0.1:18000
GW_ADMIN=127.0.0.1:18001

for tool in wrk nginx curl python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "installing $tool"
    apt-get update -qq && apt-get install -y -qq wrk nginx curl python3 >/dev/null
    break
  fi
done

echo "== building release binaries"
cargo build --release --bins --quiet
BIN=target/release
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting nginx (upstream :$UPSTREAM_PORT, proxy :$NGINX_PROXY_PORT)"
mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx;
  scgi_temp_path $work/nginx;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    location / { default_type application/json; return 200 '{"ok":true}'; }
  }
  upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PROXY_PORT;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
nginx -c "$work/nginx.conf"

echo "== starting the gateway"
"$BIN/gateway" serve --data-dir "$work/data" --proxy-listen "$GW_PROXY" --admin-listen "$GW_ADMIN" \
  >"$work/gateway.log" 2>&1 &
GW_PID=$!
pids+=("$GW_PID")
for _ in $(seq 1 100); do curl -s -o /dev/null "http://$GW_ADMIN/status" && break; sleep 0.1; done

export GWCTL_ADDR="http://$GW_ADMIN"
python3 bench/gen_config.py --upstream "http://127.0.0.1:$UPSTREAM_PORT" >"$work/small.yaml"
python3 bench/gen_config.py --upstream "http://127.0.0.1:$UPSTREAM_PORT" --consumers 10000 --routes 1000 >"$work/large.yaml"

cookie_for() { # path: log in with the key and print the session cookie
  curl -s -o /dev/null -D - -H 'apikey: hello_world' "http://$GW_PROXY$1" |
    sed -nE 's/^[Ss]et-[Cc]ookie: (session=[^;]*).*/\1/p' | tr -d '\r'
}

results=()
run() { # label, url, extra wrk args...
  local label=$1 url=$2; shift 2
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url")
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  results+=("$label|$rps|$p50|$p99|${non2xx:-0}")
  printf '  %-38s %10s req/s  p50 %8s  p99 %8s\n' "$label" "$rps" "$p50" "$p99"
}

gateway_rows() { # suffix
  local cookie_kong cookie_cookie
  cookie_kong=$(cookie_for /anything)
  cookie_cookie=$(cookie_for /cookie)
  run "gateway, no plugins$1" "http://$GW_PROXY/plain"
  run "gateway, key-auth$1" "http://$GW_PROXY/key" -H 'apikey: hello_world'
  run "gateway, session cookie (cookie)$1" "http://$GW_PROXY/cookie" -H "Cookie: $cookie_cookie"
  run "gateway, session cookie (kong)$1" "http://$GW_PROXY/anything" -H "Cookie: $cookie_kong"
  run "gateway, anonymous 403$1" "http://$GW_PROXY/anything"
}

echo "== small configuration"
"$BIN/gwctl" sync "$work/small.yaml" >/dev/null
run "upstream direct (nginx)" "http://127.0.0.1:$UPSTREAM_PORT/anything"
run "nginx proxy (baseline)" "http://127.0.0.1:$NGINX_PROXY_PORT/anything"
gateway_rows ""

echo "== 10,000 consumers and 1,000 routes"
"$BIN/gwctl" sync "$work/large.yaml" >/dev/null
gateway_rows " [large]"

rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$GW_PID/status")

baseline=$(printf '%s\n' "${results[@]}" | awk -F'|' '$1=="nginx proxy (baseline)" {print $2}')
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); wrk -t$THREADS -c$CONNECTIONS -d$DURATION"
printf '| %-40s | %12s | %9s | %9s | %8s | %9s |\n' row "req/s" p50 p99 "vs nginx" "non-2xx"
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..42})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..11})"
for row in "${results[@]}"; do
  IFS='|' read -r label rps p50 p99 non2xx <<<"$row"
  ratio=$(awk -v a="$rps" -v b="$baseline" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
  printf '| %-40s | %12s | %9s | %9s | %8s | %9s |\n' "$label" "$rps" "$p50" "$p99" "$ratio" "$non2xx"
done
echo
echo "gateway peak RSS: $((rss_kb / 1024)) MiB"
