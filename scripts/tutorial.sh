#!/usr/bin/env bash
# The key-auth + session tutorial (../shared/seed/key-auth-session-tutorial.md)
# end to end: start the echo upstream and the gateway on a fresh embedded
# store, apply the tutorial's blocks one at a time as the tutorial does
# (`gwctl sync --no-deletes`, decK's `apply`), then run its three checks.
# Afterwards the same session check over TLS with cookie_secure: true, and
# with storage: cookie.
set -euo pipefail
cd "$(dirname "$0")/.."

PROXY=127.0.0.1:8000
PROXY_TLS=127.0.0.1:8443
ADMIN=http://127.0.0.1:8001
ECHO=127.0.0.1:9000

echo "== building"
cargo build --bins --quiet
BIN=target/debug
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
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

step "certificate for the TLS listener (self-signed, localhost)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

step "starting the echo upstream on $ECHO and the gateway (store: $work/data)"
"$BIN/gateway" echo --listen "$ECHO" >"$work/echo.log" 2>&1 &
pids+=($!)
"$BIN/gateway" serve --data-dir "$work/data" --proxy-listen "$PROXY" --admin-listen "${ADMIN#http://}" \
  --proxy-tls-listen "$PROXY_TLS" --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" \
  >"$work/gateway.log" 2>&1 &
pids+=($!)
wait_for "$ADMIN/status"
wait_for "http://$ECHO/anything"

export GWCTL_ADDR=$ADMIN
step "prerequisites: example-service and example-route"
"$BIN/gwctl" sync fixtures/tutorial/00-prerequisites.yaml
for block in fixtures/tutorial/0[1-9]-*.yaml; do
  step "applying $(basename "$block")"
  "$BIN/gwctl" sync --no-deletes "$block"
done

# request METHOD-less GET: prints the status line, headers and body into files
get() { # url, extra curl args...
  local url=$1; shift
  curl -s -D "$work/headers" -o "$work/body" -w '%{http_code}' "$@" "$url"
}
session_cookie() { grep -i '^set-cookie: session=' "$work/headers" | sed -E 's/^[Ss]et-[Cc]ookie: (session=[^;]*).*/\1/' | tr -d '\r'; }

step "validate 1: an anonymous request is refused"
status=$(get "http://$PROXY/anything")
echo "GET /anything -> $status $(cat "$work/body")"
[ "$status" = 403 ] || fail "expected 403, got $status"
grep -q '"message":"Forbidden"' "$work/body" || fail "expected message Forbidden"

step "validate 2: apikey: hello_world authenticates and sets a session cookie"
status=$(get "http://$PROXY/anything" -H 'apikey: hello_world')
echo "GET /anything (apikey) -> $status"
[ "$status" = 200 ] || fail "expected 200, got $status"
COOKIE_HEADER=$(session_cookie)
[ -n "$COOKIE_HEADER" ] || fail "no Set-Cookie: session=... in the response"
grep -i '^set-cookie: session=' "$work/headers"

step "validate 3: the session cookie alone authenticates"
status=$(get "http://$PROXY/anything" -H "cookie: $COOKIE_HEADER")
echo "GET /anything (cookie) -> $status"
[ "$status" = 200 ] || fail "expected 200, got $status"
grep -q '"X-Consumer-Username": *"alex"' "$work/body" || fail "upstream did not see X-Consumer-Username: alex"
echo "the upstream saw X-Consumer-Username: alex"

step "TLS: cookie_secure: true over https://$PROXY_TLS"
sed 's/cookie_secure: false/cookie_secure: true/' fixtures/tutorial/03-session.yaml >"$work/session-secure.yaml"
"$BIN/gwctl" sync --no-deletes "$work/session-secure.yaml"
status=$(get "https://localhost:${PROXY_TLS#*:}/anything" --cacert "$work/cert.pem" --resolve "localhost:${PROXY_TLS#*:}:127.0.0.1" -H 'apikey: hello_world')
[ "$status" = 200 ] || fail "expected 200 over TLS, got $status"
grep -i '^set-cookie: session=' "$work/headers" | grep -q '; Secure' || fail "the cookie lacks Secure"
grep -i '^set-cookie: session=' "$work/headers"
COOKIE_HEADER=$(session_cookie)
status=$(get "https://localhost:${PROXY_TLS#*:}/anything" --cacert "$work/cert.pem" --resolve "localhost:${PROXY_TLS#*:}:127.0.0.1" -H "cookie: $COOKIE_HEADER")
[ "$status" = 200 ] || fail "expected 200 with the cookie over TLS, got $status"
echo "the Secure cookie works over HTTPS"

step "storage: cookie (no server-side session)"
sed 's/storage: kong/storage: cookie/' fixtures/tutorial/03-session.yaml >"$work/session-cookie.yaml"
"$BIN/gwctl" sync --no-deletes "$work/session-cookie.yaml"
status=$(get "http://$PROXY/anything" -H 'apikey: hello_world')
[ "$status" = 200 ] || fail "expected 200, got $status"
COOKIE_HEADER=$(session_cookie)
status=$(get "http://$PROXY/anything" -H "cookie: $COOKIE_HEADER")
[ "$status" = 200 ] || fail "expected 200 with a cookie-storage session, got $status"
grep -q '"X-Consumer-Username": *"alex"' "$work/body" || fail "upstream did not see alex"
echo "a storage: cookie session authenticates alex"

printf '\nThe tutorial works end to end.\n'
