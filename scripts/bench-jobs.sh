#!/usr/bin/env bash
# Jobs benchmark (issue 5): the whole job set over a million trips and a
# month of weather, wall time and peak memory per job, and the
# zone-performance query in floe sql against DuckDB on the same Iceberg
# tables. Builds floe in release mode (the first time, a while), works in
# FLOE_BENCH_DIR (default a temporary directory). Results go in
# docs/benchmarks.md.
#
#   scripts/bench-jobs.sh [--trips N] [--repeat N]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/lib/common.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe/target}"
dir="${FLOE_BENCH_DIR:-$(mktemp -d /tmp/floe-bench-jobs.XXXXXX)}"
log "building floe (release)"
cargo build --release --locked --bin floe >&2
python="$(lake_readers_python)"
log "running in $dir"
"$python" scripts/bench-jobs.py --floe "$CARGO_TARGET_DIR/release/floe" --work "$dir/work" "$@"
