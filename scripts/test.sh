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
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# --lib --bins --tests: every test target, without running the benchmarks
set +e
cargo test --workspace --locked --lib --bins --tests "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# one closing line over all test binaries
awk '/^test result:/ { for (i = 2; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
