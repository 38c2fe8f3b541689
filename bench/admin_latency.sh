#!/usr/bin/env bash
# Admin API write visibility and start-up time with a big store.
#
#   bench/admin_latency.sh                 # 100,000 consumers, each with a key
#   CONSUMERS=50000 bench/admin_latency.sh # 100,003 entities in all
#
# See bench/admin_latency.py for what is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== building release binaries"
cargo build --release --bin gateway --quiet
echo "== $(nproc) cores; load: $(uptime | sed 's/.*load average/load average/')"
python3 bench/admin_latency.py --bin "${CARGO_TARGET_DIR:-target}/release/gateway" --consumers "${CONSUMERS:-100000}" --rounds "${ROUNDS:-20}"
