#!/usr/bin/env bash
# Compare two builds of gwctl and the gateway byte for byte: stdout, stderr
# and exit code of the same commands on the benchmark file, a changed file,
# an invalid file and select tags (issue 18: a change of how gwctl or the
# gateway hold a configuration must not change a byte of what they print).
#
#   bench/compare.sh OLD_DIR NEW_DIR                 # 2,000 consumers, 200 services
#   CONSUMERS=100000 SERVICES=10000 bench/compare.sh OLD_DIR NEW_DIR
#
# Each directory holds a `gateway` and a `gwctl` (e.g. copies of
# target/release of two commits). Each build gets its own gateway on a
# fresh data directory. After the first sync the new build's gateway is
# restarted on a copy of the old one's data, so both then hold the same ids
# (ids of created entities are random) and every later output must be the
# same. Prints one line per command and exits 1 when any output differs
# (the differing files stay in KEEP=DIR when set).
set -euo pipefail
cd "$(dirname "$0")/.."

OLD=${1:?usage: bench/compare.sh OLD_DIR NEW_DIR}
NEW=${2:?usage: bench/compare.sh OLD_DIR NEW_DIR}
CONSUMERS=${CONSUMERS:-2000}
SERVICES=${SERVICES:-200}
PORT=${PORT:-28600}
for dir in "$OLD" "$NEW"; do
  for bin in gateway gwctl; do
    [ -x "$dir/$bin" ] || { echo "missing $dir/$bin" >&2; exit 1; }
  done
done

work=$(mktemp -d)
declare -A PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp -r "$work"/. "$KEEP"/; fi
  rm -rf "$work"
}
trap cleanup EXIT

# start SIDE: the side's gateway on its data directory.
start() {
  local side=$1 dir admin
  dir=$([ "$side" = old ] && echo "$OLD" || echo "$NEW")
  admin=$((PORT + $([ "$side" = old ] && echo 1 || echo 3)))
  "$dir/gateway" serve --data-dir "$work/$side-data" --proxy-listen "127.0.0.1:$((admin - 1))" \
    --admin-listen "127.0.0.1:$admin" >>"$work/$side-gateway.log" 2>&1 &
  PIDS[$side]=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$admin/status" && return; sleep 0.1; done
  echo "the $side gateway did not start" >&2
  cat "$work/$side-gateway.log" >&2
  exit 1
}

stop() {
  kill "${PIDS[$1]}" && wait "${PIDS[$1]}" 2>/dev/null || true
  unset "PIDS[$1]"
}

echo "== files: $CONSUMERS consumers, $SERVICES services"
python3 bench/gen_config.py --upstream "http://127.0.0.1:9" --consumers "$CONSUMERS" \
  --routes "$SERVICES" --services "$SERVICES" \
  --padding-plugins key-auth,session,request-termination >"$work/bench.yaml"
# Changed: every 97th consumer's key, every 10th 403 message, the last
# consumers left out (deletes) and new services (creates).
python3 - "$work/bench.yaml" "$work/changed.yaml" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"key: key-(\d*97)-benchmark", r"key: changed-\1", text)
count = [0]
def message(match):
    count[0] += 1
    return "message: Go away" if count[0] % 10 == 0 else match.group(0)
text = re.sub(r"message: Forbidden", message, text)
lines = text.split("\n")
consumers = [i for i, line in enumerate(lines) if line.startswith("  - username: consumer-")]
if len(consumers) > 20:
    cut = consumers[-20]
    end = next((i for i in range(cut, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    del lines[cut:end]
text = "\n".join(lines)
extra = "".join(
    f"  - name: added-service-{n}\n    url: http://127.0.0.1:9\n    routes:\n"
    f"      - name: added-route-{n}\n        paths: [/added/{n}]\n"
    for n in range(5))
text = text.replace("services:\n", "services:\n" + extra, 1)
open(sys.argv[2], "w").write(text)
EOF
# Invalid: an unknown field, a dangling reference and a duplicate name.
cat >"$work/invalid.yaml" <<'EOF'
_format_version: "3.0"
services:
  - name: svc
    url: http://127.0.0.1:9
    colour: blue
    routes:
      - name: r1
        paths: [/a]
  - name: svc
    url: http://127.0.0.1:9
routes:
  - name: r2
    service: nowhere
    paths: [/b]
consumers:
  - username: alice
    keyauth_credentials:
      - key: k1
EOF
# Select tags: a team's part of the configuration.
cat >"$work/tagged.yaml" <<'EOF'
_format_version: "3.0"
_info:
  select_tags: [team-a]
services:
  - name: team-a-service
    url: http://127.0.0.1:9
    routes:
      - name: team-a-route
        paths: [/team-a]
consumers:
  - username: team-a-user
    keyauth_credentials:
      - key: team-a-key
EOF
sed 's|/team-a]|/team-a, /team-a2]|; s|team-a-key|team-a-key2|' "$work/tagged.yaml" >"$work/tagged-changed.yaml"
grep -v -e '^_info' -e 'select_tags' "$work/tagged.yaml" >"$work/untagged.yaml"

different=0
step=0
# run NAME ARGS...: the command on both sides, compared.
run() {
  local name=$1; shift
  step=$((step + 1))
  local tag
  tag=$(printf '%02d-%s' "$step" "$name")
  for side in old new; do
    local dir admin status=0
    dir=$([ "$side" = old ] && echo "$OLD" || echo "$NEW")
    admin=$((PORT + $([ "$side" = old ] && echo 1 || echo 3)))
    (cd "$work" && GWCTL_ADDR="http://127.0.0.1:$admin" "$dir/gwctl" "$@" \
      >"$work/$side.$tag.out" 2>"$work/$side.$tag.err") || status=$?
    echo "$status" >"$work/$side.$tag.code"
  done
  local verdict=same
  for part in out err code; do
    cmp -s "$work/old.$tag.$part" "$work/new.$tag.$part" || verdict="DIFFERENT ($part)"
  done
  [ "$verdict" = same ] || different=1
  printf '   %-44s exit %s, %7s bytes out, %5s bytes err: %s\n' "$tag: gwctl $*" \
    "$(cat "$work/old.$tag.code")" "$(wc -c <"$work/old.$tag.out")" \
    "$(wc -c <"$work/old.$tag.err")" "$verdict"
}

echo "== fresh gateways"
start old
start new
run validate validate bench.yaml
run validate-invalid validate invalid.yaml
run validate-json validate --json-output invalid.yaml
run diff-empty diff bench.yaml
run sync-invalid sync invalid.yaml
run diff-invalid diff invalid.yaml
run first-sync sync bench.yaml

echo "== the new gateway on a copy of the old one's data"
stop old
stop new
rm -rf "$work/new-data"
cp -r "$work/old-data" "$work/new-data"
start old
start new
run noop-diff diff --non-zero-exit-code bench.yaml
run noop-diff-json diff --json-output bench.yaml
run noop-sync sync bench.yaml
run changed-diff diff changed.yaml
run changed-diff-json diff --json-output --show-secrets changed.yaml
run changed-diff-no-deletes diff --no-deletes changed.yaml
run tagged-diff diff tagged.yaml
run tagged-sync sync tagged.yaml
run tagged-flag-diff diff --select-tag team-a tagged-changed.yaml
run tagged-flag-sync sync --select-tag team-a tagged-changed.yaml
run tagged-disagree diff --select-tag team-b tagged.yaml
run whole-diff-after-tags diff changed.yaml
run untagged-diff diff untagged.yaml
run changed-sync sync changed.yaml
run changed-noop-diff diff --non-zero-exit-code changed.yaml
run back-sync sync --json-output bench.yaml
run dump dump -o -
run dump-tagged dump --select-tag team-a -o -

echo
if [ "$different" = 0 ]; then
  echo "every output is the same"
else
  echo "some outputs differ (KEEP=DIR keeps them)"
fi
exit "$different"
