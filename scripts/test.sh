#!/usr/bin/env bash
# Runs floe's whole test suite: unit tests, the recorded-Debezium fixture
# tests, the one-million-message fuzz test, the registry client over real
# HTTP/TLS, the lakehouse schema tests and the end-to-end CLI tests.
#
# The build folder lives in $CARGO_TARGET_DIR (default ~/.cache/floe/target)
# so it outlives any one clone; the first build takes about 10 minutes on
# 2 cores, later ones seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe/target}"
bash scripts/install-deps.sh
cargo test --workspace --locked "$@"
