#!/usr/bin/env bash
# Maintenance benchmark (issue 7): the apply benchmark's workload (one
# million trips change events: 70% inserts, 25% updates, 5% deletes, a
# table partitioned by day over 30 days) in 1,000 commits of 1,000 events,
# twice. Alone: live files, bytes and a full scan every 100 commits and at
# the end, then one compaction (its MiB/s), the scan again, and an expiry
# to the current snapshot (bytes on disk before and after). Then with
# compaction and expiry (retain 10) running beside ingest every
# FLOE_BENCH_MAINTAIN_SECONDS (default 10) s, as `floe jobs schedule`
# would, ingest committing at most every FLOE_BENCH_COMMIT_MS (default 250):
# the live file count every 100 commits. Results go in
# docs/benchmarks.md. FLOE_BENCH_EVENTS changes the count; an argument
# `alone` or `scheduled` runs one half.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe/target}"
cargo bench -p lakehouse --bench apply --no-run --locked >&2
cargo bench -p lakehouse --bench apply --locked -q -- maintain ${1:-}
