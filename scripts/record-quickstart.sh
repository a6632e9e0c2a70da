#!/usr/bin/env bash
# Records the quickstart's bundled Debezium output (issue 6): a private
# PostgreSQL 15, the taxi schema, the workload in tests/fixtures/quickstart
# (setup.sql is captured by Debezium's initial snapshot, stream.sql as
# streamed changes: inserts, updates with unchanged TOASTed notes, rows
# moved between days, deletes with tombstones, an added column, a
# truncate), captured through Debezium 3.6.3's Postgres connector and the
# Confluent AvroConverter by scripts/capture/Capture.java. Writes, in
# OUT_DIR (default tests/fixtures/quickstart):
#
#   recording.jsonl.gz  the Kafka records (docs/recording-format.md), gzipped
#   schemas.json        the registry's schemas for them
#   expected/*.csv(.gz) the tables' final state in Postgres (final_state.sql),
#                       which the quickstart test compares the lake with
#
# Usage: scripts/record-quickstart.sh [OUT_DIR]
# Needs: PostgreSQL 15 server binaries, Java 17, python3, curl; run as root.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib/common.sh"

OUT="${1:-$ROOT/tests/fixtures/quickstart}"
FIX="$ROOT/tests/fixtures/quickstart"
PG_PORT="${PG_PORT:-55433}"
REGISTRY_PORT="${REGISTRY_PORT:-58082}"
capture_prepare floe-quickstart-capture

log "postgres on 127.0.0.1:$PG_PORT"
pg_start "$WORK/pg" "$PG_PORT"
"${PSQL[@]}" -d postgres -c "CREATE DATABASE taxi"
"${PSQL[@]}" -d taxi -f "$ROOT/connectors/taxi_schema.sql"
"${PSQL[@]}" -d taxi -f "$FIX/setup.sql"

python3 "$ROOT/scripts/schema-registry-standin.py" --port "$REGISTRY_PORT" \
  --state-file "$WORK/schemas.json" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
wait_http "http://127.0.0.1:$REGISTRY_PORT/subjects" 20 || die "registry stand-in did not start"

engine_props taxi "public.vendors,public.payment_types,public.trips" \
  max.batch.size=4096 max.queue.size=16384 >"$WORK/taxi.properties"

log "starting Debezium"
java -cp "$LIBS/*" "$ROOT/scripts/capture/Capture.java" --out "$WORK/recording.jsonl" \
  --registry "http://127.0.0.1:$REGISTRY_PORT" --stop "$WORK/stop" \
  "$WORK/taxi.properties" >"$WORK/capture.log" 2>&1 &
CAPTURE_PID=$!

# the snapshot: 4 vendors, 7 payment types, 5,000 trips
wait_lines 5011 300
log "snapshot recorded ($(wc -l <"$WORK/recording.jsonl") records); streaming the workload"
"${PSQL[@]}" -d taxi -f "$FIX/stream.sql"
# inserts, tips, moves, deletes and tombstones, inserts with the new column,
# the surcharge set on multiples of 7 not deleted (1,000 - 58 multiples of 119),
# the truncate, the reload, the renamed vendor
expected=$(( 5011 + 12000 + 3400 + 548 + 2000 + 3000 + 942 + 1 + 7 + 1 ))
wait_lines "$expected" 600
touch "$WORK/stop"
wait "$CAPTURE_PID" || true
CAPTURE_PID=

mkdir -p "$OUT/expected"
gzip -9 -n -c "$WORK/recording.jsonl" >"$OUT/recording.jsonl.gz"
python3 -c 'import json,sys; json.dump(json.load(open(sys.argv[1])), open(sys.argv[2],"w"), indent=1, sort_keys=True)' \
  "$WORK/schemas.json" "$OUT/schemas.json"
(cd "$OUT/expected" && "${PSQL[@]}" -d taxi -f "$FIX/final_state.sql" && gzip -9 -n -f trips.csv)
log "wrote $(wc -l <"$WORK/recording.jsonl") records to $OUT/recording.jsonl.gz and the final state to $OUT/expected"
