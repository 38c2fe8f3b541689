# Sourced by bench/proxy.sh and bench/ab.sh: installs the tools they need,
# makes a work directory removed on exit (with every pid in `pids` and both
# nginx instances stopped), and starts two nginx instances with
# NGINX_WORKERS workers each (default 1): the upstream on UPSTREAM_PORT (a
# fixed 200 `{"ok":true}`) and the baseline reverse proxy to it on
# NGINX_PROXY_PORT (`proxy_pass` with upstream keep-alive).
# shellcheck shell=bash

for tool in wrk nginx curl python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "installing $tool"
    apt-get update -qq && apt-get install -y -qq wrk nginx curl python3 >/dev/null
    break
  fi
done

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for name in upstream proxy; do
    [ -f "$work/$name.pid" ] && kill "$(cat "$work/$name.pid")" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

nginx_conf() { # name, server block
  mkdir -p "$work/$1"
  cat >"$work/$1.conf" <<CONF
worker_processes ${NGINX_WORKERS:-1};
pid $work/$1.pid;
error_log $work/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/$1;
  proxy_temp_path $work/$1;
  fastcgi_temp_path $work/$1;
  uwsgi_temp_path $work/$1;
  scgi_temp_path $work/$1;
  keepalive_requests 1000000;
  $2
}
CONF
  nginx -c "$work/$1.conf"
}

nginx_pids() { # name: the master and its workers
  local master
  master=$(cat "$work/$1.pid")
  echo "$master $(awk -v master="$master" '$4 == master {printf "%s ", $1}' /proc/[0-9]*/stat 2>/dev/null)"
}

echo "== starting nginx (upstream :$UPSTREAM_PORT, proxy :$NGINX_PROXY_PORT)"
nginx_conf upstream "server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    location / { default_type application/json; return 200 '{\"ok\":true}'; }
  }"
nginx_conf proxy "upstream backend { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PROXY_PORT;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
    }
  }"
sleep 0.2
