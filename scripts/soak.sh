#!/usr/bin/env bash
# The soak (issue 18): floe ingest under a steady load on many tables for
# a long while, on the local stack (Postgres, Kafka Connect with Debezium,
# tansu, the registry stand-in, Garage). Every 10 s it samples floe's
# resident memory, open file descriptors and threads, and the size of each
# table's current metadata file (what every commit reads and writes
# again); at the end it draws them as a PNG and checks that the lake
# equals Postgres.
#
#   scripts/soak.sh [--minutes M] [--tables T] [--rate R] [--chart PNG]
#
# Defaults: 30 minutes, 20 tables, 400 changes/s over them (inserts,
# updates, deletes), 1 s commits, and ingest expiring its tables' snapshots
# itself, keeping 10 minutes of them (`[lake.tables.expire]`; without
# expiry a table's snapshot list, and its metadata file, grows with every
# commit). Samples go to FLOE_SOAK_DIR/samples.csv
# (default a temporary folder), the chart to --chart (default
# FLOE_SOAK_DIR/soak.png). Builds floe in release mode the first time.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/lib/common.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe/target}"
minutes=30 tables=20 rate=400 chart=""
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="${2:?}"; shift 2 ;;
    --tables) tables="${2:?}"; shift 2 ;;
    --rate) rate="${2:?}"; shift 2 ;;
    --chart) chart="${2:?}"; shift 2 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
for n in "$minutes" "$tables" "$rate"; do
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ] || die "positive numbers only: $n"
done
dir="${FLOE_SOAK_DIR:-$(mktemp -d /tmp/floe-soak.XXXXXX)}"
mkdir -p "$dir"
chmod 755 "$dir"
chart="$(realpath -m "${chart:-$dir/soak.png}")"

log "building floe (release)"
cargo build --release --locked --bin floe >&2
floe="$CARGO_TARGET_DIR/release/floe"
python="$(lake_readers_python)"

floe_pid="" driver_pid=""
cleanup() {
  [ -n "$driver_pid" ] && kill "$driver_pid" 2>/dev/null
  [ -n "$floe_pid" ] && kill "$floe_pid" 2>/dev/null && wait "$floe_pid" 2>/dev/null
  bash scripts/stack.sh down "$dir/stack" >/dev/null 2>&1 || true
}
trap cleanup EXIT

log "stack up in $dir/stack"
bash scripts/stack.sh up "$dir/stack" | grep = >"$dir/stack.out"
set -a
# shellcheck disable=SC1091
source "$dir/stack.out"
set +a
psql=(psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d taxi -q -v ON_ERROR_STOP=1)
for ((t = 1; t <= tables; t++)); do
  "${psql[@]}" -c "CREATE TABLE IF NOT EXISTS soak_$t (id bigint PRIMARY KEY, v integer NOT NULL,
                   note text, at timestamptz NOT NULL DEFAULT now());
                   INSERT INTO soak_$t SELECT i, 0, 'seed', now() FROM generate_series(1, 1000) AS i
                   ON CONFLICT DO NOTHING"
done
python3 -c 'import json, sys
doc = json.load(open(sys.argv[1]))
doc["name"] = "soak"
c = doc["config"]
c.update({"topic.prefix": "soak", "slot.name": "floe_soak", "publication.name": "floe_soak",
          "table.include.list": "public.soak_.*"})
json.dump(doc, open(sys.argv[2], "w"))' connectors/taxi-postgres.json "$dir/connector.json"
bash scripts/setup-connectors.sh --connect-url "$CONNECT_URL" --config "$dir/connector.json" \
  --set "database.port=$PGPORT" \
  --set "key.converter.schema.registry.url=$SCHEMA_REGISTRY_URL" \
  --set "value.converter.schema.registry.url=$SCHEMA_REGISTRY_URL" >&2

cat >"$dir/floe.toml" <<TOML
[kafka]
bootstrap_servers = "$KAFKA_BOOTSTRAP"
group_id = "floe-soak"
topic_regex = 'soak\.public\..*'
properties = { "session.timeout.ms" = "6000", "max.poll.interval.ms" = "20000" }

[registry]
url = "$SCHEMA_REGISTRY_URL"

[lake]
warehouse = "s3://lake/soak-$(date +%s)"

[lake.catalog]
type = "sqlite"
path = "$dir/catalog.db"

[lake.s3]
endpoint = "$FLOE_S3_ENDPOINT"

[ingest]
commit_interval_ms = 1000

[lake.tables.expire]
keep_minutes = 10
keep_last = 10
TOML
FLOE_LOG=info "$floe" ingest --config "$dir/floe.toml" 2>"$dir/floe.log" &
floe_pid=$!

# the load: every second, rate/3 inserts, rate/3 updates and rate/3
# deletes of rows inserted earlier, spread over the tables
per=$(((rate + 3 * tables - 1) / (3 * tables)))
(
  second=0
  while :; do
    started=$(date +%s%N)
    sql=""
    for ((t = 1; t <= tables; t++)); do
      base=$((1000000 + second * per))
      sql+="INSERT INTO soak_$t SELECT i, $second, 'row ' || i, now() FROM generate_series($base, $((base + per - 1))) AS i;"
      sql+="UPDATE soak_$t SET v = v + 1, at = now() WHERE id IN (SELECT id FROM soak_$t ORDER BY random() LIMIT $per);"
      sql+="DELETE FROM soak_$t WHERE id IN (SELECT id FROM soak_$t WHERE id < $base ORDER BY random() LIMIT $per);"
    done
    "${psql[@]}" -c "$sql" || exit 1
    second=$((second + 1))
    left=$((1000000000 - ($(date +%s%N) - started)))
    [ "$left" -gt 0 ] && sleep "0.$(printf '%09d' "$left")"
  done
) &
driver_pid=$!

log "soak: $minutes min, $tables tables, about $((per * 3 * tables)) changes/s; samples to $dir/samples.csv"
"$python" scripts/soak-sample.py sample --pid "$floe_pid" --catalog "$dir/catalog.db" \
  --endpoint "$FLOE_S3_ENDPOINT" --seconds $((minutes * 60)) --every 10 \
  --out "$dir/samples.csv"
kill "$driver_pid" 2>/dev/null || true
wait "$driver_pid" 2>/dev/null || true
driver_pid=""
kill -0 "$floe_pid" 2>/dev/null || { tail -20 "$dir/floe.log" >&2; die "floe ingest stopped"; }

# the lake catches up and equals Postgres, table by table (row count and
# the sum of v)
log "waiting for the lake to catch up"
deadline=$((SECONDS + 300))
while :; do
  differing=0
  for ((t = 1; t <= tables; t++)); do
    source_side="$("${psql[@]}" -At -c "SELECT count(*), coalesce(sum(v), 0) FROM soak_$t")"
    lake_side="$("$floe" sql --config "$dir/floe.toml" --format csv \
      -e "SELECT count(*), coalesce(sum(v), 0) FROM soak_cdc.soak_$t" 2>/dev/null | tail -1 | tr ',' '|')"
    [ "$source_side" = "$lake_side" ] || differing=$((differing + 1))
  done
  [ "$differing" = 0 ] && break
  [ "$SECONDS" -lt "$deadline" ] || die "$differing tables still differ from Postgres after 5 minutes"
  sleep 5
done
log "every table equals Postgres (row count and sum)"
charts="${FLOE_TOOLS:-$FLOE_CACHE/tools}/bench-charts"
if ! "$charts/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$charts" && "$charts/bin/pip" install -q 'matplotlib>=3.8,<4'
fi
"$charts/bin/python" scripts/soak-sample.py chart --samples "$dir/samples.csv" --out "$chart"
"$python" scripts/soak-sample.py summary --samples "$dir/samples.csv"
echo "floe: $(grep -c ' committed' "$dir/floe.log" || true) commits; chart: $chart"
