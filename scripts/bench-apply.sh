#!/usr/bin/env bash
# Apply benchmark (issue 3): one million trips change events applied in
# batches of 10k and 100k, then the read cost of 10% position deletes.
# Each run is its own process so peak memory is per configuration.
# Results go in docs/benchmarks.md. FLOE_BENCH_EVENTS changes the count.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe/target}"
cargo bench -p lakehouse --bench apply --no-run --locked >&2
for run in 10000 100000 read; do
  cargo bench -p lakehouse --bench apply --locked -q -- "$run"
done
