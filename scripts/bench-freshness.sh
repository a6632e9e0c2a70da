#!/usr/bin/env bash
# Freshness benchmark (issue 4): how long a Postgres change takes to be
# visible to floe SQL queries (committed in an Iceberg snapshot), through
# the whole local stack (Debezium in Kafka Connect, the registry stand-in,
# tansu, floe ingest with a 1 s commit interval, Iceberg on Garage), what a
# full-table query then costs, and the stack's throughput ceiling.
#
#   1. 2,000 row changes a second for 60 s: p50 / p99 / max latency
#   2. the ceiling: 20 s runs at rising rates (FLOE_BENCH_RATES, default
#      4000 8000 16000 32000; empty for none) until the lake falls behind;
#      CPU per process shows which part saturates first (2 cores in all)
#
# Run 1 is set by FLOE_BENCH_RATE (changes/s, default 2000),
# FLOE_BENCH_SECONDS (default 60) and FLOE_BENCH_INTERVAL_MS (ingest's
# commit_interval_ms, default 1000); FLOE_BENCH_MERGE=off turns ingest's
# merging off (`[lake.tables.merge] enabled = false`) for the side-by-side
# comparison, and FLOE_BENCH_MAX_FILES sets its bound (`max_files`, the
# live data files a partition may hold; default floe's) and
# FLOE_BENCH_CPU_SHARE the CPU merges in the background may take
# (`cpu_share`, a share of one core; 1 lifts the pacing) and
# FLOE_BENCH_TAIL_REWRITES its tails (`tail_rewrites`; 0 for none); FLOE_BENCH_PARTITIONS (default 1) creates the trips topic
# with that many partitions first, so the source-order rule (issue 17)
# is in the measured path. Run 1 prints the table's live files every 10 s, and every
# FLOE_BENCH_PROBE seconds (default 30; 0 for none) pins the table's
# snapshot and times a full count(*) and a three-column aggregate on it;
# after the run the same reads are timed on each pinned snapshot's rows
# written again compacted; FLOE_BENCH_COMPACT_DURING=1 also writes each
# probe's rows compacted at the probe and reads both then, under the same
# load, alternately, the fastest of FLOE_BENCH_PROBE_READS reads each
# (default 2) (the copies' writing takes CPU from the run: its freshness
# is not the plain run's). The probes go to FLOE_BENCH_CSV if set
# (scripts/bench-chart.py draws them); one count(*) of the table at the end.
#
# Builds floe and benches/freshness.rs in release mode (the first time, a
# while), runs on a private stack in FLOE_BENCH_DIR (default a temporary
# directory), and prints one line per run. Results go in docs/benchmarks.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/lib/common.sh
source scripts/lib/stack.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe/target}"
# the driver reads the lake in-process: without backtraces for errors, as
# the floe binary reads it (src/main.rs, `library_backtraces`)
export RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}"
dir="${FLOE_BENCH_DIR:-$(mktemp -d /tmp/floe-freshness.XXXXXX)}"
mkdir -p "$dir"
chmod 755 "$dir"
seconds="${FLOE_BENCH_SECONDS:-60}"
rate="${FLOE_BENCH_RATE:-2000}"
interval_ms="${FLOE_BENCH_INTERVAL_MS:-1000}"
probe_every="${FLOE_BENCH_PROBE:-30}"
csv="${FLOE_BENCH_CSV:-}"
rates="${FLOE_BENCH_RATES-4000 8000 16000 32000}"
merge="${FLOE_BENCH_MERGE:-on}"
partitions="${FLOE_BENCH_PARTITIONS:-1}"
max_files="${FLOE_BENCH_MAX_FILES:-}"
cpu_share="${FLOE_BENCH_CPU_SHARE:-}"
tail_rewrites="${FLOE_BENCH_TAIL_REWRITES:-}"
case "$merge" in on) merge_enabled=true ;; off) merge_enabled=false ;; *) die "FLOE_BENCH_MERGE is on or off" ;; esac

log "building floe and the freshness driver (release)"
# one build: cargo builds the floe binary for the benchmark too
# (target/release/floe), with the same dependency features
driver="$(cargo bench --bench freshness --no-run --locked --message-format=json |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "freshness" and m.get("executable"):
        print(m["executable"])')"
[ -x "$driver" ] || die "the freshness driver did not build"

floe_pid=""
cleanup() {
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
# a seed so the table exists in the lake before the clock starts
"${psql[@]}" -c "INSERT INTO trips SELECT i, 1, timestamp '2024-04-01', timestamp '2024-04-01 00:20', 1, 2, 1, 1.0, 5.0, 1.0, 7.0, 1, NULL
                 FROM generate_series(1, 10000) AS i ON CONFLICT DO NOTHING"
if [ "$partitions" != 1 ]; then
  # before Debezium creates it with one
  "$(tansu_bin)" topic create taxi.public.trips --partitions "$partitions" \
    --broker "tcp://$KAFKA_BOOTSTRAP" >&2 || die "cannot create trips with $partitions partitions"
fi
bash scripts/setup-connectors.sh --connect-url "$CONNECT_URL" \
  --set "database.port=$PGPORT" \
  --set "key.converter.schema.registry.url=$SCHEMA_REGISTRY_URL" \
  --set "value.converter.schema.registry.url=$SCHEMA_REGISTRY_URL" >&2

metrics_port="$(free_port)"
cat >"$dir/floe.toml" <<TOML
[kafka]
bootstrap_servers = "$KAFKA_BOOTSTRAP"
group_id = "floe-bench"
topic_regex = 'taxi\.public\..*'
# tansu completes a group join only after the rebalance timeout (this)
properties = { "session.timeout.ms" = "6000", "max.poll.interval.ms" = "20000" }

[registry]
url = "$SCHEMA_REGISTRY_URL"

[lake]
warehouse = "s3://lake/freshness-$(date +%s)"

[lake.catalog]
type = "sqlite"
path = "$dir/catalog.db"

[lake.s3]
endpoint = "$FLOE_S3_ENDPOINT"

[lake.tables]
"public.trips" = { partition = ["day(pickup_datetime)"] }

[lake.tables.merge]
enabled = $merge_enabled
${max_files:+max_files = $max_files}
${cpu_share:+cpu_share = $cpu_share}
${tail_rewrites:+tail_rewrites = $tail_rewrites}

[ingest]
commit_interval_ms = $interval_ms
metrics_listen = "127.0.0.1:$metrics_port"
TOML
FLOE_LOG=info "$CARGO_TARGET_DIR/release/floe" ingest --config "$dir/floe.toml" 2>"$dir/floe.log" &
floe_pid=$!
# floe's consumer lag on trips every 10 s: where a backlog queues (in
# Kafka, behind floe) when the lake falls behind
(
  while kill -0 "$floe_pid" 2>/dev/null; do
    # not listening yet, or busy: no sample this time (set -e would end
    # the sampler)
    if lag="$(curl -sf --max-time 2 "http://127.0.0.1:$metrics_port/metrics" |
      awk '/^floe_consumer_lag\{topic="taxi.public.trips"/ {s += $2} END {print s + 0}')"; then
      echo "$(date +%s) $lag" >>"$dir/lag.log"
    fi
    sleep 10
  done
) &

pids() {
  local s="$dir/stack" pg
  pg="$(pgrep -u postgres -d + postgres || true)"
  printf 'floe=%s,connect=%s,broker=%s,kafka-gate=%s,registry=%s,s3=%s,postgres=%s' \
    "$floe_pid" "$(cat "$s/connect.pid")" "$(cat "$s/broker.pid")" "$(cat "$s/kafka.pid")" \
    "$(cat "$s/registry.pid")" "$(cat "$s/garage/garage.pid")" "$pg"
}

run() { # FIRST_ID RATE SECONDS [QUERY_AFTER [DRIVER FLAGS...]]
  local first="$1" rate="$2" secs="$3" query="${4:-false}"
  shift 4 2>/dev/null || shift $#
  "$driver" --lake-config "$dir/floe.toml" --postgres "postgres://postgres:postgres@127.0.0.1:$PGPORT/taxi" \
    --first-id "$first" --rate "$rate" --seconds "$secs" --query-after "$query" --pids "$(pids)" "$@"
}

log "warm-up: 30 s at 500 changes/s (the group join, the seed, the first commits)"
run 1000000 500 30
log "freshness: $rate changes/s for $seconds s, commits every $interval_ms ms, merging $merge${max_files:+ (max_files $max_files)}${cpu_share:+ (cpu_share $cpu_share)}${tail_rewrites:+ (tail_rewrites $tail_rewrites)}, $partitions trips partition(s)"
probe=(--probe-every "$probe_every")
[ -n "$csv" ] && probe+=(--probe-csv "$csv")
[ "${FLOE_BENCH_COMPACT_DURING:-0}" = 1 ] && probe+=(--probe-compact-during true --probe-reads "${FLOE_BENCH_PROBE_READS:-2}")
run 11000000 "$rate" "$seconds" true "${probe[@]}"
first=21000000
for rate in $rates; do
  log "ceiling: $rate changes/s for 20 s"
  out="$(run "$first" "$rate" 20)" || true
  first=$((first + 10000000))
  echo "$out"
  case "$out" in *"did not catch up"* | *"no transaction"*) break ;; esac
done
kill -0 "$floe_pid" 2>/dev/null || { tail -20 "$dir/floe.log" >&2; die "floe ingest stopped"; }
# what ingest did, from its log (every run above together)
echo "floe: $(grep -c ' committed' "$dir/floe.log" || true) commits," \
  "$(grep -c 'merged small files' "$dir/floe.log" || true) merge rounds," \
  "$(grep -c 'past the merge bound' "$dir/floe.log" || true) commit rounds that waited for merges"
# the merges' own CPU and pauses (cpu_share), summed from their log lines
sum_field() { grep 'merged small files' "$dir/floe.log" | grep -o "$1=[0-9]*" | awk -F= '{s += $2} END {printf "%.1f", s / 1000}'; }
echo "merges: $(sum_field cpu_ms) s of CPU, $(sum_field paused_ms) s paused for cpu_share, $(sum_field rewrite_ms) s writing"
# every sample, the warm-up's too (its lag is small)
[ ! -s "$dir/lag.log" ] || awk '{if ($2 > max) max = $2; last = $2; n++} END {if (n) printf "floe consumer lag on trips (messages, every 10 s): max %d, last %d, %d samples\n", max, last, n}' "$dir/lag.log"

