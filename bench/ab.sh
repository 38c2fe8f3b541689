#!/usr/bin/env bash
# Two gateway builds side by side with the nginx proxy, interleaved: each
# round runs wrk against nginx, build A and build B in turn on the same
# path, so load from other work on the machine hits all three alike. Prints
# each round and the medians of requests/s and of the server's CPU time per
# request (steadier than requests/s on a shared machine), with the ratios
# to nginx.
#
#   bench/ab.sh /tmp/gw-before /tmp/gw-after          # key-auth, 7 rounds
#   ROUNDS=9 ROW=plain bench/ab.sh A_DIR B_DIR        # ROW: plain, key, cookie, kong
#   ROW_A=key ROW_B=cookie bench/ab.sh DIR DIR        # two rows of one build
#
# A_DIR and B_DIR each hold a `gateway` and a `gwctl` binary.
set -euo pipefail
cd "$(dirname "$0")/.."

A=${1:?usage: bench/ab.sh A_DIR B_DIR}
B=${2:?usage: bench/ab.sh A_DIR B_DIR}
ROUNDS=${ROUNDS:-7}
ROW=${ROW:-key}
ROW_A=${ROW_A:-$ROW}
ROW_B=${ROW_B:-$ROW}
DURATION=${DURATION:-5s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
UPSTREAM_PORT=18180
NGINX_PROXY_PORT=18181

# shellcheck source=bench/nginx.sh
source bench/nginx.sh
python3 bench/gen_config.py --upstream "http://127.0.0.1:$UPSTREAM_PORT" >"$work/small.yaml"

start_gateway() { # name, bin dir, proxy port, admin port: prints the pid
  "$2/gateway" serve --data-dir "$work/$1-data" --proxy-listen "127.0.0.1:$3" \
    --admin-listen "127.0.0.1:$4" >"$work/$1.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$4/status" && break; sleep 0.1; done
  GWCTL_ADDR="http://127.0.0.1:$4" "$2/gwctl" sync "$work/small.yaml" >/dev/null
  echo "$pid"
}
A_PID=$(start_gateway a "$A" 18100 18101)
B_PID=$(start_gateway b "$B" 18110 18111)
pids+=("$A_PID" "$B_PID")
NGINX_PIDS=$(nginx_pids proxy)

cookie_for() { # port, path
  curl -s -o /dev/null -D - -H 'apikey: hello_world' "http://127.0.0.1:$1$2" |
    sed -nE 's/^[Ss]et-[Cc]ookie: (session=[^;]*).*/\1/p' | tr -d '\r'
}
# Sets ARGS to ROW's wrk arguments (a header, then the url) on a port.
row_args() { # row, port
  case $1 in
    plain) ARGS=(-H "Accept: */*" "http://127.0.0.1:$2/plain") ;;
    key) ARGS=(-H "apikey: hello_world" "http://127.0.0.1:$2/key") ;;
    cookie) ARGS=(-H "Cookie: $(cookie_for "$2" /cookie)" "http://127.0.0.1:$2/cookie") ;;
    kong) ARGS=(-H "Cookie: $(cookie_for "$2" /anything)" "http://127.0.0.1:$2/anything") ;;
    *) echo "unknown row $1" >&2; exit 2 ;;
  esac
}
# nginx has no route table: it proxies every path.
NGINX_ARGS=(-H "Accept: */*" "http://127.0.0.1:$NGINX_PROXY_PORT/anything")
row_args "$ROW_A" 18100; A_ARGS=("${ARGS[@]}")
row_args "$ROW_B" 18110; B_ARGS=("${ARGS[@]}")

check() { # wrk args: one request sent the same way must answer 200
  local status
  status=$(curl -s -o /dev/null -w '%{http_code}' "$1" "$2" "$3")
  [ "$status" = 200 ] || { echo "$3 answers $status, not 200" >&2; exit 1; }
}
check "${NGINX_ARGS[@]}"
check "${A_ARGS[@]}"
check "${B_ARGS[@]}"

cpu_ticks() { # pids...
  local total=0 pid
  for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  echo "$total"
}
measure() { # "pids", wrk args...: prints "req/s cpu-us-per-request"
  local server_pids=$1; shift
  local before after out
  # shellcheck disable=SC2086
  before=$(cpu_ticks $server_pids)
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$@")
  # shellcheck disable=SC2086
  after=$(cpu_ticks $server_pids)
  if grep -q "Non-2xx" <<<"$out"; then
    echo "non-2xx answers: $(grep Non-2xx <<<"$out")" >&2
    exit 1
  fi
  awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" \
    '/^Requests\/sec/ {rps=$2} /requests in/ {n=$1} END {printf "%.0f %.1f\n", rps, ticks / hz * 1e6 / n}' <<<"$out"
}

echo "rows A: $ROW_A, B: $ROW_B, $ROUNDS rounds of wrk -t$THREADS -c$CONNECTIONS -d$DURATION; A=$A B=$B"
printf '%-6s %10s %8s %10s %8s %10s %8s\n' round "nginx r/s" "us/req" "A r/s" "us/req" "B r/s" "us/req"
: >"$work/rounds"
for round in $(seq 1 "$ROUNDS"); do
  read -r n_rps n_cpu < <(measure "$NGINX_PIDS" "${NGINX_ARGS[@]}")
  read -r a_rps a_cpu < <(measure "$A_PID" "${A_ARGS[@]}")
  read -r b_rps b_cpu < <(measure "$B_PID" "${B_ARGS[@]}")
  printf '%-6s %10s %8s %10s %8s %10s %8s\n' "$round" "$n_rps" "$n_cpu" "$a_rps" "$a_cpu" "$b_rps" "$b_cpu"
  echo "$n_rps $n_cpu $a_rps $a_cpu $b_rps $b_cpu" >>"$work/rounds"
done
python3 - "$work/rounds" <<'PY'
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1])]
med = [statistics.median(column) for column in zip(*rows)]
n_rps, n_cpu, a_rps, a_cpu, b_rps, b_cpu = med
print(f"median  nginx {n_rps:.0f} r/s {n_cpu:.1f} us/req | "
      f"A {a_rps:.0f} r/s ({a_rps / n_rps:.2f}x nginx) {a_cpu:.1f} us/req ({a_cpu / n_cpu:.2f}x) | "
      f"B {b_rps:.0f} r/s ({b_rps / n_rps:.2f}x nginx) {b_cpu:.1f} us/req ({b_cpu / n_cpu:.2f}x)")
per_round = [(r[4] / r[0]) / (r[2] / r[0]) for r in rows]
print(f"B/A requests/s per round: median {statistics.median(per_round):.2f}x")
PY
