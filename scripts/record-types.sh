#!/usr/bin/env bash
# Records the type test's Debezium output (issue 14): a private PostgreSQL
# 15, the workload in tests/fixtures/types (setup.sql is captured by
# Debezium's initial snapshot, stream.sql as streamed changes: every type
# with its edge values, TOASTed values left unchanged, key shapes, a
# partitioned table published through its root, every kind of schema
# change), captured through Debezium 3.6.3's Postgres connector with
# default settings and the Confluent AvroConverter by
# scripts/capture/Capture.java. Writes, in OUT_DIR (default
# tests/fixtures/types):
#
#   recording.jsonl, schemas.json   topics types.*: what the lake must hold
#   refused/recording.jsonl,        topics bad.*: what it cannot (a column
#   refused/schemas.json            turned from text into integer, and
#                                   timestamps past Iceberg's range), which
#                                   must stop floe or be dead-lettered
#   final_state.json                the final state as Postgres prints it
#                                   (final_state.sql), which the type test
#                                   compares the lake with
#
# Usage: scripts/record-types.sh [OUT_DIR]
# Needs: PostgreSQL 15 server binaries (with contrib: hstore, citext,
# ltree), Java 17, python3, curl; run as root.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib/common.sh"

OUT="${1:-$ROOT/tests/fixtures/types}"
FIX="$ROOT/tests/fixtures/types"
PG_PORT="${PG_PORT:-55434}"
REGISTRY_PORT="${REGISTRY_PORT:-58083}"
capture_prepare floe-types-capture

log "postgres on 127.0.0.1:$PG_PORT"
pg_start "$WORK/pg" "$PG_PORT"
"${PSQL[@]}" -d postgres -c "CREATE DATABASE taxi"
"${PSQL[@]}" -d taxi -f "$FIX/setup.sql"

python3 "$ROOT/scripts/schema-registry-standin.py" --port "$REGISTRY_PORT" \
  --state-file "$WORK/schemas.json" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
wait_http "http://127.0.0.1:$REGISTRY_PORT/subjects" 20 || die "registry stand-in did not start"

# the publications are setup.sql's own (the partitioned table is published
# through its root), so Debezium must not create them
engine_props types "public.wide,public.composite_key,public.text_key,public.uuid_key,public.keyless,public.readings,public.evolving" \
  publication.name=floe_types publication.autocreate.mode=disabled >"$WORK/types.properties"
engine_props bad "public.incompatible,public.out_of_range" \
  publication.name=floe_types_bad publication.autocreate.mode=disabled >"$WORK/bad.properties"

log "starting Debezium (2 embedded engines)"
java -cp "$LIBS/*" "$ROOT/scripts/capture/Capture.java" --out "$WORK/recording.jsonl" \
  --registry "http://127.0.0.1:$REGISTRY_PORT" --stop "$WORK/stop" \
  "$WORK/types.properties" "$WORK/bad.properties" >"$WORK/capture.log" 2>&1 &
CAPTURE_PID=$!

# the snapshot: 9 + 3 + 4 + 2 + 4 + 3 + 2 rows, and 3 of the bad.* tables
wait_lines 30 300
log "snapshot recorded ($(wc -l <"$WORK/recording.jsonl") records); streaming the workload"
"${PSQL[@]}" -d taxi -f "$FIX/stream.sql"
# every record: 102 of types.*, 10 of bad.*
wait_lines "${TYPES_STREAM_RECORDS:-112}" 600
touch "$WORK/stop"
wait "$CAPTURE_PID" || true
CAPTURE_PID=

mkdir -p "$OUT/refused"
python3 - "$WORK/recording.jsonl" "$WORK/schemas.json" "$OUT" <<'PY'
import json, sys
records, schemas, out = sys.argv[1:]
lines = open(records, encoding="utf-8").read().splitlines()
good = [l for l in lines if json.loads(l)["topic"].startswith("types.")]
bad = [l for l in lines if json.loads(l)["topic"].startswith("bad.")]
assert len(good) + len(bad) == len(lines), "a record of neither prefix"
for path, part in ((f"{out}/recording.jsonl", good), (f"{out}/refused/recording.jsonl", bad)):
    open(path, "w", encoding="utf-8").write("".join(l + "\n" for l in part))
state = json.load(open(schemas, encoding="utf-8"))
for path in (f"{out}/schemas.json", f"{out}/refused/schemas.json"):
    json.dump(state, open(path, "w", encoding="utf-8"), indent=1, sort_keys=True)
print(f"{len(good)} records of types.*, {len(bad)} of bad.*", file=sys.stderr)
PY
(cd "$OUT" && "${PSQL[@]}" -d taxi -f "$FIX/final_state.sql")
log "wrote the recordings and final_state.json to $OUT"
