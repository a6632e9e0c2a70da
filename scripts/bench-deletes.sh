#!/usr/bin/env bash
# What readers pay for each position-delete layout (issue 16, item 2):
# `write.delete.granularity` = partition (one delete file per partition a
# commit deletes from) against file (one per data file it deletes from,
# `referenced_data_file` set), on Garage (S3) started by scripts/stack.sh.
#
# Each lake: the quickstart recording replayed in commits of 200 messages
# into trips by day, with ingest's merging off (every commit's files stay:
# the most delete files a reader can meet) and on (the default). Each
# table is then read by floe (iceberg-rust's scan, whole `floe sql -e`
# commands, start-up included), pyiceberg and DuckDB
# (scripts/bench-read-peers.py, in-process): every row, and an aggregate
# of three columns. One line per reading with the median of RUNS.
#
# Usage: scripts/bench-deletes.sh [FLOE_BINARY]   (default: the release build)
# Env:   BENCH_DELETES_RUNS (5), BENCH_DELETES_MERGE ("off on")
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib/common.sh"
cd "$ROOT"
floe="${1:-${CARGO_TARGET_DIR:-$FLOE_CACHE/target}/release/floe}"
[ -x "$floe" ] || die "no floe binary at $floe (cargo build --release first)"
runs="${BENCH_DELETES_RUNS:-5}"
merges="${BENCH_DELETES_MERGE:-off on}"
python="$(lake_readers_python)"
dir="$(mktemp -d "${TMPDIR:-/tmp}/floe-bench-deletes.XXXXXX")"
trap 'bash scripts/stack.sh stop s3 "$dir/stack" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
bash scripts/stack.sh start s3 "$dir/stack" >/dev/null
eval "$(bash scripts/stack.sh env "$dir/stack" | grep -E '^(FLOE_S3_ENDPOINT|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY)=')"
export FLOE_S3_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY

median() {
  local sorted
  mapfile -t sorted < <(sort -n)
  echo "${sorted[$(((${#sorted[@]} - 1) / 2))]}"
}
queries=("SELECT * FROM taxi_cdc.trips"
  "SELECT vendor_id, sum(total_amount), avg(trip_distance) FROM taxi_cdc.trips GROUP BY 1")
names=(rows aggregate)

for merge in $merges; do
  enabled=false
  [ "$merge" = on ] && enabled=true
  for granularity in partition file; do
    label="merge-$merge/$granularity"
    lake="$dir/$merge-$granularity"
    mkdir -p "$lake"
    cat >"$lake/floe.toml" <<TOML
[lake]
warehouse = "s3://lake/bench-deletes-$merge-$granularity"
[lake.catalog]
type = "sqlite"
path = "$lake/catalog.db"
[lake.s3]
endpoint = "$FLOE_S3_ENDPOINT"
access_key_id = "$AWS_ACCESS_KEY_ID"
secret_access_key = "$AWS_SECRET_ACCESS_KEY"
path_style = true
[lake.tables]
"public.trips" = { partition = ["day(pickup_datetime)"], merge = { enabled = $enabled }, properties = { "write.delete.granularity" = "$granularity" } }
TOML
    "$floe" replay --input tests/fixtures/quickstart --config "$lake/floe.toml" --batch-messages 200 >/dev/null
    "$floe" sql --config "$lake/floe.toml" -e '\dt' | grep ' trips ' |
      awk -F'|' -v l="$label" '{gsub(/ /, "", $5); gsub(/ /, "", $6); print l ": trips in " $5 " data files, " $6 " delete files"}'
    for i in 0 1; do
      times=()
      for _ in $(seq "$runs"); do
        times+=("$( { /usr/bin/time -f %e "$floe" sql --config "$lake/floe.toml" --quiet \
          -e "${queries[$i]}" >/dev/null; } 2>&1 | tail -1)")
      done
      printf '%-24s %-9s %-9s median %s s  runs %s\n' "$label" floe "${names[$i]}" \
        "$(printf '%s\n' "${times[@]}" | median)" "${times[*]}"
    done
    metadata="$("$python" -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute(
    "SELECT metadata_location FROM iceberg_tables WHERE table_name = ?", ("trips",)).fetchone()[0])' \
      "$lake/catalog.db")"
    "$python" scripts/bench-read-peers.py --runs "$runs" "$label=$metadata"
  done
done
