#!/usr/bin/env bash
# What a full scan of a table in many small files costs `floe sql`, by
# how many file reads are kept in flight (FLOE_SCAN_FILES_AT_ONCE), and
# the same rows compacted, on Garage (S3) started by scripts/stack.sh.
#
# The lake: the quickstart recording replayed in commits of 200 messages
# with merging off, so trips is left in ~1,400 data and ~400 delete files
# (what a lake without merges or compaction holds after minutes of
# one-second commits). Each query runs RUNS times as a whole `floe sql -e`
# command (start-up included); the script prints one line per run and a
# median per setting.
#
# Usage: scripts/bench-scan.sh [FLOE_BINARY]   (default: the debug build)
# Env:   BENCH_SCAN_SETTINGS (default "2 default": 2 is what
#        iceberg-datafusion uses on two cores), BENCH_SCAN_RUNS (5)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib/common.sh"
cd "$ROOT"
floe="${1:-${CARGO_TARGET_DIR:-$FLOE_CACHE/target}/debug/floe}"
[ -x "$floe" ] || die "no floe binary at $floe (cargo build first)"
settings="${BENCH_SCAN_SETTINGS:-2 default}"
runs="${BENCH_SCAN_RUNS:-5}"
dir="$(mktemp -d "${TMPDIR:-/tmp}/floe-bench-scan.XXXXXX")"
trap 'bash scripts/stack.sh stop s3 "$dir/stack" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
bash scripts/stack.sh start s3 "$dir/stack" >/dev/null
eval "$(bash scripts/stack.sh env "$dir/stack" | grep -E '^(FLOE_S3_ENDPOINT|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY)=')"
cat >"$dir/floe.toml" <<TOML
[lake]
warehouse = "s3://lake/bench-scan"
[lake.catalog]
type = "sqlite"
path = "$dir/catalog.db"
[lake.s3]
endpoint = "$FLOE_S3_ENDPOINT"
access_key_id = "$AWS_ACCESS_KEY_ID"
secret_access_key = "$AWS_SECRET_ACCESS_KEY"
path_style = true
[lake.tables]
"public.trips" = { partition = ["day(pickup_datetime)"], merge = { enabled = false } }
TOML
"$floe" replay --input tests/fixtures/quickstart --config "$dir/floe.toml" --batch-messages 200 >/dev/null

queries=("SELECT count(*) FROM taxi_cdc.trips"
  "SELECT vendor_id, sum(total_amount), avg(trip_distance) FROM taxi_cdc.trips GROUP BY 1")
measure() {
  local label="$1" setting times t envs
  "$floe" sql --config "$dir/floe.toml" -e '\dt' | grep ' trips ' | awk -F'|' '{gsub(/ /, "", $5); gsub(/ /, "", $6); print "trips: " $5 " data files, " $6 " delete files"}'
  for setting in $settings; do
    for q in "${queries[@]}"; do
      times=()
      envs=()
      [ "$setting" = default ] || envs=("FLOE_SCAN_FILES_AT_ONCE=$setting")
      for _ in $(seq "$runs"); do
        t=$( { /usr/bin/time -f %e env "${envs[@]}" \
          "$floe" sql --config "$dir/floe.toml" --quiet -e "$q" >/dev/null; } 2>&1 | tail -1)
        times+=("$t")
      done
      printf '%-10s files_at_once=%-8s %-45.45s runs: %s  median %s s\n' "$label" "$setting" "$q" \
        "${times[*]}" "$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")"
    done
  done
}
measure "small files"
"$floe" maintain --config "$dir/floe.toml" compact taxi_cdc.trips --small-file-mb 64 --min-small-files 2 | tail -1
measure "compacted"
