#!/usr/bin/env bash
# Records real Debezium output for floe's decoder tests.
#
# Starts a private PostgreSQL 15 with logical decoding, the schema-registry
# test stand-in, and Debezium 3.6.3's Postgres connector (embedded engine,
# Confluent AvroConverter), runs the fixture workload, and writes:
#
#   tests/fixtures/debezium/recording.jsonl  one JSON line per Kafka record
#   tests/fixtures/debezium/schemas.json     every schema the converter registered
#
# Three connector configurations record side by side on one database:
#   taxi   defaults (precise decimals, adaptive time, json hstore), all tables
#   alt1   decimal.handling.mode=double, time.precision.mode=connect,
#          hstore.handling.mode=map, interval.handling.mode=string,
#          binary.handling.mode=hex, provide.transaction.metadata=true (all_types)
#   alt2   decimal.handling.mode=string,
#          time.precision.mode=adaptive_time_microseconds,
#          binary.handling.mode=base64 (all_types)
#
# Usage: scripts/record-fixtures.sh [OUT_DIR]   (default tests/fixtures/debezium)
# Needs: PostgreSQL 15 server binaries, Java 17, python3, curl. Run as root
# (Postgres runs as the postgres user). Uses loopback ports 55432 and 58081.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib/common.sh"

OUT="${1:-$ROOT/tests/fixtures/debezium}"
PG_PORT="${PG_PORT:-55432}"
REGISTRY_PORT="${REGISTRY_PORT:-58081}"
capture_prepare floe-capture

log "postgres on 127.0.0.1:$PG_PORT ($WORK/pg)"
pg_start "$WORK/pg" "$PG_PORT"
"${PSQL[@]}" -d postgres -c "CREATE DATABASE taxi"
"${PSQL[@]}" -d taxi -f "$ROOT/connectors/taxi_schema.sql"
"${PSQL[@]}" -d taxi -f "$ROOT/tests/fixtures/debezium/setup.sql"

log "schema registry stand-in on 127.0.0.1:$REGISTRY_PORT"
python3 "$ROOT/scripts/schema-registry-standin.py" --port "$REGISTRY_PORT" \
  --state-file "$WORK/schemas.json" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
wait_http "http://127.0.0.1:$REGISTRY_PORT/subjects" 20 || die "registry stand-in did not start"

engine_props taxi "public.vendors,public.payment_types,public.trips,public.all_types,public.event_log" >"$WORK/taxi.properties"
engine_props alt1 "public.all_types" decimal.handling.mode=double time.precision.mode=connect \
  hstore.handling.mode=map interval.handling.mode=string binary.handling.mode=hex \
  provide.transaction.metadata=true >"$WORK/alt1.properties"
engine_props alt2 "public.all_types" decimal.handling.mode=string \
  time.precision.mode=adaptive_time_microseconds binary.handling.mode=base64 >"$WORK/alt2.properties"

log "starting Debezium (3 embedded engines)"
java -cp "$LIBS/*" "$ROOT/scripts/capture/Capture.java" --out "$WORK/recording.jsonl" \
  --registry "http://127.0.0.1:$REGISTRY_PORT" --stop "$WORK/stop" \
  "$WORK/taxi.properties" "$WORK/alt1.properties" "$WORK/alt2.properties" >"$WORK/capture.log" 2>&1 &
CAPTURE_PID=$!

# lines: 10 snapshot rows for taxi, 2 each for alt1 and alt2
wait_lines 14 180
log "snapshot recorded ($(wc -l <"$WORK/recording.jsonl") records); running the streaming workload"
"${PSQL[@]}" -d taxi -f "$ROOT/tests/fixtures/debezium/stream.sql"
wait_lines 30 120
touch "$WORK/stop"
wait "$CAPTURE_PID" || true
CAPTURE_PID=

mkdir -p "$OUT"
cp "$WORK/recording.jsonl" "$OUT/recording.jsonl"
python3 -c 'import json,sys; json.dump(json.load(open(sys.argv[1])), open(sys.argv[2],"w"), indent=1, sort_keys=True)' \
  "$WORK/schemas.json" "$OUT/schemas.json"
log "wrote $(wc -l <"$OUT/recording.jsonl") records and $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["schemas"]))' "$OUT/schemas.json") schemas to $OUT"
