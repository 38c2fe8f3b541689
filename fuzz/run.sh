#!/usr/bin/env bash
# Run the fuzz targets with cargo fuzz (libFuzzer), in parallel, at low
# priority, each for SECONDS (default 600), growing fuzz/corpus/<target>/.
#
#   fuzz/run.sh                     # every target, 10 min each
#   SECONDS_PER_TARGET=60 fuzz/run.sh router
#
# cargo fuzz needs nightly features (-Zsanitizer=address). With only a
# stable toolchain, RUSTC_BOOTSTRAP=1 unlocks them; with a nightly
# toolchain installed, `cargo +nightly fuzz` works as well. cargo-fuzz is
# installed from crates.io when missing. Crashes land in
# fuzz/artifacts/<target>/; the logs in fuzz/logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-600}
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(session_cookie declarative_file router http1_request)
fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

for target in "${TARGETS[@]}"; do cargo fuzz build -O "$target"; done
mkdir -p logs
pids=()
for target in "${TARGETS[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  dict=()
  [ -f "$target.dict" ] && dict=(-dict="$target.dict")
  nice -n 19 cargo fuzz run -O "$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "${dict[@]}" >"logs/$target.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then
    echo "${TARGETS[$i]}: no crash in ${SECONDS_PER_TARGET}s"
  else
    echo "${TARGETS[$i]}: FAILED, see fuzz/logs/${TARGETS[$i]}.log and fuzz/artifacts/${TARGETS[$i]}/"
    status=1
  fi
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|cov: ' "logs/${TARGETS[$i]}.log" | tail -n 3 || true
done
exit $status
