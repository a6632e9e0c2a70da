#!/usr/bin/env bash
# Apply benchmark (issue 3): one million trips change events applied in
# batches of 10k and 100k, then the read cost of 10% position deletes and
# the cost of a lost commit race (issue 15; FLOE_BENCH_CODEC=uncompressed
# or zstd:1 sets the table's Parquet codec), then
# the peer on the same events: pyiceberg's Table.upsert (and Table.delete),
# which stops after FLOE_BENCH_PEER_SECONDS (default 300) per batch size
# and reports its rate over the events it applied.
# Each run is its own process so peak memory is per configuration.
# Results go in docs/benchmarks.md. FLOE_BENCH_EVENTS changes the count;
# FLOE_BENCH_ONLY=floe or =pyiceberg runs one side.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/lib/common.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe/target}"
# the read run scans in-process: without backtraces for errors, as
# the floe binary reads it (src/main.rs, `library_backtraces`)
export RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}"
only="${FLOE_BENCH_ONLY:-all}"
cargo bench -p lakehouse --bench apply --no-run --locked >&2
if [ "$only" != pyiceberg ]; then
  for run in 10000 100000 read conflict; do
    cargo bench -p lakehouse --bench apply --locked -q -- "$run"
  done
fi
if [ "$only" != floe ]; then
  python="$(lake_readers_python)"
  for batch in 10000 100000; do
    dir="$(mktemp -d)"
    cargo bench -p lakehouse --bench apply --locked -q -- export "$batch" "$dir"
    printf 'batch=%s: ' "$batch"
    "$python" scripts/bench-pyiceberg.py "$dir" --seconds "${FLOE_BENCH_PEER_SECONDS:-300}"
    rm -rf "$dir"
  done
fi
