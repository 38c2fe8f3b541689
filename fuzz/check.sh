#!/usr/bin/env bash
# CI's check of the fuzz targets: build them with the stable toolchain (no
# sanitizer, no nightly flags; the main workspace's target/ is reused for
# the shared dependencies), then run each once over its seed corpus, so a
# target that no longer compiles or a seed that now crashes fails the run.
# Fuzzing itself is fuzz/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --manifest-path fuzz/Cargo.toml --locked
for target in session_cookie declarative_file router http1_request; do
  echo "fuzz/$target: $(find "fuzz/corpus/$target" -type f | wc -l) seeds"
  "$CARGO_TARGET_DIR/debug/$target" -runs=0 "fuzz/corpus/$target" 2>&1 | tail -1
done
