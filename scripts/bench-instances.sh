#!/usr/bin/env bash
# Scaling benchmark (issue 17): how fast floe ingest applies a backlog
# with 1, 2 and 3 instances in one consumer group on a three-partition
# trips topic, and with one instance on a one-partition topic holding the
# same changes.
#
# Two Debezium connectors on the local stack capture the same Postgres
# workload (FLOE_BENCH_ROWS inserts, an update of every row, a delete of
# every tenth: about 2.2 x ROWS messages with the tombstones): one into
# taxi.public.trips, created beforehand with three partitions, one into
# one.public.trips with one. Once both hold everything (each replication
# slot has passed a sentinel change), each configuration runs its
# instances from the start of the topic into its own warehouse and
# Postgres catalog database until they are idle for 10 s, and prints
# events applied per second between the first partition assignment and
# the last commit, with the rows the table ends with (which must equal
# Postgres). The source-order rule of a multi-partition topic is measured
# here too: 1 instance on 3 partitions against 1 on 1.
#
# Builds floe in release mode (the first time, a while), runs on a
# private stack in FLOE_BENCH_DIR (default a temporary directory).
# FLOE_BENCH_CONFIGS (default "3:1 3:2 3:3 1:1", partitions:instances)
# picks the runs. Results go in docs/benchmarks.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/lib/common.sh
source scripts/lib/stack.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe/target}"
dir="${FLOE_BENCH_DIR:-$(mktemp -d /tmp/floe-instances.XXXXXX)}"
mkdir -p "$dir"
chmod 755 "$dir"
rows="${FLOE_BENCH_ROWS:-100000}"
configs="${FLOE_BENCH_CONFIGS:-3:1 3:2 3:3 1:1}"

log "building floe (release)"
cargo bench --bench freshness --no-run --locked >/dev/null
floe="$CARGO_TARGET_DIR/release/floe"
[ -x "$floe" ] || die "the release floe did not build"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
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

"$(tansu_bin)" topic create taxi.public.trips --partitions 3 \
  --broker "tcp://$KAFKA_BOOTSTRAP" >&2 || die "cannot create the three-partition topic"
for prefix in taxi one; do
  # a connector of its own name, slot and publication per topic prefix
  python3 -c 'import json, sys
doc = json.load(open(sys.argv[1])); doc["name"] = sys.argv[2]
json.dump(doc, open(sys.argv[3], "w"))' connectors/taxi-postgres.json "bench-$prefix" "$dir/bench-$prefix.json"
  bash scripts/setup-connectors.sh --connect-url "$CONNECT_URL" --config "$dir/bench-$prefix.json" \
    --set "database.port=$PGPORT" \
    --set "key.converter.schema.registry.url=$SCHEMA_REGISTRY_URL" \
    --set "value.converter.schema.registry.url=$SCHEMA_REGISTRY_URL" \
    --set "topic.prefix=$prefix" --set "slot.name=bench_$prefix" \
    --set "publication.name=bench_$prefix" >&2
done
log "workload: $rows inserts, $rows updates, $((rows / 10)) deletes"
"${psql[@]}" -c "INSERT INTO trips SELECT i, 1 + i % 2,
    timestamp '2024-03-01' + (i % 7) * interval '1 day' + i * interval '1 second',
    timestamp '2024-03-01 00:20' + (i % 7) * interval '1 day' + i * interval '1 second',
    1 + i % 265, 1 + (i * 7) % 265, 1, 2.5, 10 + i % 50, 1, 15, 1, NULL
  FROM generate_series(1, $rows) AS i"
"${psql[@]}" -c "UPDATE trips SET fare_amount = fare_amount + 1"
"${psql[@]}" -c "DELETE FROM trips WHERE trip_id % 10 = 0"
sentinel="$("${psql[@]}" -At -c "SELECT pg_current_wal_lsn()")"
"${psql[@]}" -c "INSERT INTO vendors VALUES (99, 'sentinel') ON CONFLICT DO NOTHING"
log "waiting for both connectors to pass the sentinel"
for _ in $(seq 600); do
  behind="$("${psql[@]}" -At -c "SELECT count(*) FROM pg_replication_slots
    WHERE slot_name LIKE 'bench_%' AND (confirmed_flush_lsn IS NULL OR confirmed_flush_lsn < '$sentinel')")"
  [ "$behind" = 0 ] && break
  sleep 1
done
[ "$behind" = 0 ] || die "the connectors did not capture the workload within 10 minutes"
expected="$("${psql[@]}" -At -c "SELECT count(*) FROM trips")"

for config in $configs; do
  partitions="${config%%:*}"
  instances="${config##*:}"
  case "$partitions" in 3) prefix=taxi ;; 1) prefix=one ;; *) die "partitions are 1 or 3: $config" ;; esac
  db="bench_${partitions}p_${instances}i"
  "${psql[@]}" -c "CREATE DATABASE $db"
  cat >"$dir/$db.toml" <<TOML
[kafka]
bootstrap_servers = "$KAFKA_BOOTSTRAP"
group_id = "floe-$db"
topics = ["$prefix.public.trips"]
properties = { "session.timeout.ms" = "6000", "max.poll.interval.ms" = "20000" }

[registry]
url = "$SCHEMA_REGISTRY_URL"

[lake]
warehouse = "s3://lake/$db"

[lake.catalog]
type = "sql"
uri = "postgres://postgres@127.0.0.1:$PGPORT/$db?sslmode=disable"

[lake.s3]
endpoint = "$FLOE_S3_ENDPOINT"

[lake.tables]
"public.trips" = { partition = ["day(pickup_datetime)"] }

[ingest]
commit_interval_ms = 1000
TOML
  log "$partitions partition(s), $instances instance(s)"
  # the machine's busy cores, and the broker's and S3's CPU, twice a second:
  # the stack shares floe's two cores
  python3 - "$dir/stack/broker.pid" "$dir/stack/garage/garage.pid" >"$dir/$db.machine" <<'PY' &
import sys, time
def ticks(pid_file):
    try:
        pid = open(pid_file).read().strip()
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0
while True:
    cpu = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = cpu[3] + cpu[4]
    print(f"{time.time():.3f} {sum(cpu) - idle} {idle} {ticks(sys.argv[1])} {ticks(sys.argv[2])}", flush=True)
    time.sleep(0.5)
PY
  sampler=$!
  pids=()
  for i in $(seq "$instances"); do
    # CPU seconds per instance (user, system), for the cores it kept busy
    FLOE_LOG=info NO_COLOR=1 /usr/bin/time -f "%U %S" -o "$dir/$db-$i.cpu" \
      "$floe" ingest --config "$dir/$db.toml" --stop-when-idle 10 \
      2>"$dir/$db-$i.log" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || die "an instance failed: see $dir/$db-*.log"; done
  kill "$sampler" 2>/dev/null || true
  pids=()
  held="$("$floe" sql --config "$dir/$db.toml" --format csv --quiet \
    -e "SELECT count(*) AS n FROM ${prefix}_cdc.trips" | tail -1)"
  python3 - "$partitions" "$instances" "$held" "$expected" "$dir/$db.machine" "$dir/$db"-*.log "$dir/$db"-*.cpu <<'PY'
import os, re, sys
from datetime import datetime, timezone
partitions, instances, held, expected, machine = sys.argv[1:6]
stamp = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")
def at(line):
    m = stamp.match(line)
    return datetime.fromisoformat(m.group(1)) if m else None
start, end, events, commits, cpu = None, None, 0, 0, 0
logs = [p for p in sys.argv[6:] if p.endswith(".log")]
for path in (p for p in sys.argv[6:] if p.endswith(".cpu")):
    user, system = open(path).read().split()[-2:]
    cpu += float(user) + float(system)
for path in logs:
    for line in open(path):
        t = at(line)
        if t is None:
            continue
        if "partitions assigned" in line and (start is None or t < start):
            start = t
        if " committed" in line and "_cdc.trips" in line:
            m = re.search(r"events=(\d+)", line)
            s = re.search(r"skipped=(\d+)", line)
            events += int(m.group(1)) - (int(s.group(1)) if s else 0)
            commits += 1
            end = t if end is None or t > end else end
seconds = (end - start).total_seconds()
# over the apply (first assignment to last commit): the machine's busy
# cores, and the broker's and Garage's share (clock ticks of 1/100 s)
samples = [[float(x) for x in l.split()] for l in open(machine) if len(l.split()) == 5]
utc = lambda t: t.replace(tzinfo=timezone.utc).timestamp()
inside = [s for s in samples if utc(start) <= s[0] <= utc(end)]
if len(inside) >= 2:
    a, b = inside[0], inside[-1]
    busy = (b[1] - a[1]) / ((b[1] - a[1]) + (b[2] - a[2])) * (os.cpu_count() or 1)
    broker, garage = ((b[i] - a[i]) / 100 / (b[0] - a[0]) for i in (3, 4))
    machine_line = f"; machine {busy:.2f} of {os.cpu_count()} cores busy (broker {broker:.2f}, Garage {garage:.2f})"
else:
    machine_line = ""

ok = "" if held == expected else f"  WRONG: the lake holds {held} rows, Postgres {expected}"
# the CPU counts the instances' start and their 10 s idle tail too (both
# nearly nothing); cores = CPU seconds over the apply's seconds
print(f"{partitions} partition(s), {instances} instance(s): {events} events in {seconds:.1f} s = "
      f"{events / seconds:,.0f} events/s, {commits} commits, {held} rows, "
      f"CPU {cpu:.1f} s = {cpu / seconds:.2f} cores{machine_line}{ok}")
PY
done
