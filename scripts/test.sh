#!/usr/bin/env bash
# The whole test suite: unit, property and end-to-end tests (the e2e tests
# start the real gateway, echo upstream and gwctl on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins
cargo test --workspace
