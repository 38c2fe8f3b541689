#!/usr/bin/env bash
# Proxy benchmark: the gateway side by side with an nginx reverse proxy, in one
# run on this machine, against the same nginx upstream with wrk.
#
#   bench/proxy.sh            # defaults: 10 s per row, 2 threads, 64 connections
#   DURATION=30s CONNECTIONS=128 bench/proxy.sh
#   BIN=/some/dir bench/proxy.sh   # that dir's gateway and gwctl, no build
#   LARGE_CONSUMERS=100000 LARGE_ROUTES=10000 bench/proxy.sh  # issue 18's size
#
# Rows: upstream direct, nginx proxy, gateway (no plugins, key-auth, session
# cookie with storage cookie and kong, anonymous 403). Then the cost of
# observability on /plain, back to back: no plugins again, the prometheus
# plugin (global, every metric on), and a second gateway writing the access
# log to a file. Then the same gateway rows with 10,000 consumers and 1,000
# routes loaded. Prints requests/s, p50,
# p99 and the ratio of each row to the nginx proxy row, the CPU time the
# server under test spent per request (steadier than requests/s when other
# work shares the cores) and its ratio to the nginx proxy's, then the
# gateway's peak RSS. The upstream and the proxy are two nginx instances
# with NGINX_WORKERS workers each (default 1), so each one's CPU time is
# its own.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
NGINX_WORKERS=${NGINX_WORKERS:-1}
UPSTREAM_PORT=18080
NGINX_PROXY_PORT=18081
GW_PROXY=127.0.0.1:18000
GW_ADMIN=127.0.0.1:18001
GW_LOG_PROXY=127.0.0.1:18010
GW_LOG_ADMIN=127.0.0.1:18011

if [ -z "${BIN:-}" ]; then
  echo "== building release binaries"
  cargo build --release --bins --quiet
  BIN=target/release
fi
# shellcheck source=bench/nginx.sh
source bench/nginx.sh

echo "== starting the gateways (the second one writes an access log)"
"$BIN/gateway" serve --data-dir "$work/data" --proxy-listen "$GW_PROXY" --admin-listen "$GW_ADMIN" \
  >"$work/gateway.log" 2>&1 &
GW_PID=$!
pids+=("$GW_PID")
"$BIN/gateway" serve --data-dir "$work/data-log" --proxy-listen "$GW_LOG_PROXY" \
  --admin-listen "$GW_LOG_ADMIN" --proxy-access-log "$work/access.log" \
  >"$work/gateway-log.log" 2>&1 &
GW_LOG_PID=$!
pids+=("$GW_LOG_PID")
for admin in "$GW_ADMIN" "$GW_LOG_ADMIN"; do
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://$admin/status" && break; sleep 0.1; done
done

export GWCTL_ADDR="http://$GW_ADMIN"
python3 bench/gen_config.py --upstream "http://127.0.0.1:$UPSTREAM_PORT" >"$work/small.yaml"
python3 bench/gen_config.py --upstream "http://127.0.0.1:$UPSTREAM_PORT" --consumers "${LARGE_CONSUMERS:-10000}" \
  --routes "${LARGE_ROUTES:-1000}" >"$work/large.yaml"

cookie_for() { # path: log in with the key and print the session cookie
  curl -s -o /dev/null -D - -H 'apikey: hello_world' "http://$GW_PROXY$1" |
    sed -nE 's/^[Ss]et-[Cc]ookie: (session=[^;]*).*/\1/p' | tr -d '\r'
}

cpu_ticks() { # pids...: user + system clock ticks used so far
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

results=()
run() { # label, "pids of the server under test", url, extra wrk args...
  local label=$1 server_pids=$2 url=$3; shift 3
  local out before after
  # shellcheck disable=SC2086 # a list of pids
  before=$(cpu_ticks $server_pids)
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url")
  # shellcheck disable=SC2086
  after=$(cpu_ticks $server_pids)
  local rps p50 p99 non2xx requests cpu
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  cpu=$(awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
    'BEGIN { if (n > 0) printf "%.1f", ticks / hz * 1e6 / n; else print "-" }')
  results+=("$label|$rps|$p50|$p99|${non2xx:-0}|$cpu")
  printf '  %-38s %10s req/s  p50 %8s  p99 %8s  %6s us CPU/req\n' "$label" "$rps" "$p50" "$p99" "$cpu"
}

gateway_rows() { # suffix
  local cookie_kong cookie_cookie
  cookie_kong=$(cookie_for /anything)
  cookie_cookie=$(cookie_for /cookie)
  run "gateway, no plugins$1" "$GW_PID" "http://$GW_PROXY/plain"
  run "gateway, key-auth$1" "$GW_PID" "http://$GW_PROXY/key" -H 'apikey: hello_world'
  run "gateway, session cookie (cookie)$1" "$GW_PID" "http://$GW_PROXY/cookie" -H "Cookie: $cookie_cookie"
  run "gateway, session cookie (kong)$1" "$GW_PID" "http://$GW_PROXY/anything" -H "Cookie: $cookie_kong"
  run "gateway, anonymous 403$1" "$GW_PID" "http://$GW_PROXY/anything"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== small configuration"
"$BIN/gwctl" sync "$work/small.yaml" >/dev/null
run "upstream direct (nginx)" "$(nginx_pids upstream)" "http://127.0.0.1:$UPSTREAM_PORT/anything"
run "nginx proxy (baseline)" "$(nginx_pids proxy)" "http://127.0.0.1:$NGINX_PROXY_PORT/anything"
gateway_rows ""

echo "== observability on /plain: prometheus (all metrics), access log"
GWCTL_ADDR="http://$GW_LOG_ADMIN" "$BIN/gwctl" sync "$work/small.yaml" >/dev/null
run "gateway, no plugins (again)" "$GW_PID" "http://$GW_PROXY/plain"
prometheus_id=$(curl -s -X POST "http://$GW_ADMIN/plugins" -H 'Content-Type: application/json' \
  -d '{"name": "prometheus", "config": {"per_consumer": true, "status_code_metrics": true,
       "latency_metrics": true, "bandwidth_metrics": true, "upstream_health_metrics": true}}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
run "gateway, prometheus (all metrics)" "$GW_PID" "http://$GW_PROXY/plain"
curl -s -o /dev/null "http://$GW_ADMIN/metrics"
curl -s -o /dev/null -X DELETE "http://$GW_ADMIN/plugins/$prometheus_id"
run "gateway, access log (file)" "$GW_LOG_PID" "http://$GW_LOG_PROXY/plain"
access_lines=$(wc -l <"$work/access.log")
access_dropped=$(curl -s "http://$GW_LOG_ADMIN/metrics" | awk '/^gateway_access_log_dropped_total/ {print $2}')
kill "$GW_LOG_PID" 2>/dev/null || true
rm -f "$work/access.log"

echo "== ${LARGE_CONSUMERS:-10000} consumers and ${LARGE_ROUTES:-1000} routes"
"$BIN/gwctl" sync "$work/large.yaml" >/dev/null
gateway_rows " [large]"

rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$GW_PID/status")

baseline=$(printf '%s\n' "${results[@]}" | awk -F'|' '$1=="nginx proxy (baseline)" {print $2}')
baseline_cpu=$(printf '%s\n' "${results[@]}" | awk -F'|' '$1=="nginx proxy (baseline)" {print $6}')
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); wrk -t$THREADS -c$CONNECTIONS -d$DURATION; nginx workers: $NGINX_WORKERS each"
echo "load average before/after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| %-40s | %10s | %8s | %8s | %8s | %9s | %11s | %10s |\n' row "req/s" p50 p99 "vs nginx" "non-2xx" "CPU us/req" "CPU vs ngx"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..42})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..10})" "$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..13})" "$(printf -- '-%.0s' {1..12})"
for row in "${results[@]}"; do
  IFS='|' read -r label rps p50 p99 non2xx cpu <<<"$row"
  ratio=$(awk -v a="$rps" -v b="$baseline" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
  cpu_ratio=$(awk -v a="$cpu" -v b="$baseline_cpu" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "-" }')
  printf '| %-40s | %10s | %8s | %8s | %8s | %9s | %11s | %10s |\n' "$label" "$rps" "$p50" "$p99" "$ratio" "$non2xx" "$cpu" "$cpu_ratio"
done
echo
echo "gateway peak RSS: $((rss_kb / 1024)) MiB"
row() { printf '%s\n' "${results[@]}" | awk -F'|' -v label="$1" -v field="$2" '$1==label {print $field}'; }
loss() { # label: throughput and CPU per request against "no plugins (again)"
  awk -v off="$(row "gateway, no plugins (again)" 2)" -v on="$(row "$1" 2)" \
    -v off_cpu="$(row "gateway, no plugins (again)" 6)" -v on_cpu="$(row "$1" 6)" -v label="$1" \
    'BEGIN { if (off > 0 && off_cpu > 0) printf "%s vs no plugins: %+.1f%% req/s, %+.1f%% CPU per request\n", label, (on / off - 1) * 100, (on_cpu / off_cpu - 1) * 100 }'
}
loss "gateway, prometheus (all metrics)"
loss "gateway, access log (file)"
echo "access log: $access_lines lines written, ${access_dropped:-?} dropped"
