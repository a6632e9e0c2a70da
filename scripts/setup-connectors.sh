#!/usr/bin/env bash
# Registers (or updates) the Debezium Postgres connector with a Kafka
# Connect worker over its REST API, then waits until the connector and all
# its tasks are RUNNING. Idempotent: the config is PUT, so running it again
# with the same file changes nothing, and with a changed file updates it.
#
# Usage: scripts/setup-connectors.sh [--connect-url URL] [--config FILE]
#                                    [--set key=value]... [--timeout SECONDS]
#
#   --connect-url  Kafka Connect REST URL (default $CONNECT_URL, else
#                  http://127.0.0.1:58083, the local stack's worker)
#   --config       connector file: {"name": ..., "config": {...}}
#                  (default connectors/taxi-postgres.json)
#   --set k=v      override one config key (e.g. database.port=5432,
#                  value.converter.schema.registry.url=http://registry:8081);
#                  repeatable
#   --timeout      seconds to wait for RUNNING (default 120)
#
# Exits 0 when RUNNING; non-zero with the failed task's stack trace when the
# connector or a task is FAILED, or when the worker cannot be reached.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib/common.sh"

connect_url="${CONNECT_URL:-http://127.0.0.1:58083}"
config_file="$ROOT/connectors/taxi-postgres.json"
timeout=120
overrides=()
while (($#)); do
  case "$1" in
    --connect-url) connect_url="$2"; shift 2 ;;
    --config) config_file="$2"; shift 2 ;;
    --set) overrides+=("$2"); shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
connect_url="${connect_url%/}"
[ -f "$config_file" ] || die "connector config $config_file not found"

# name and config (with overrides) from the file
read -r name < <(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["name"])' "$config_file") \
  || die "$config_file is not {\"name\": ..., \"config\": {...}}"
body="$(python3 - "$config_file" "${overrides[@]}" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
config = doc["config"]
for kv in sys.argv[2:]:
    if "=" not in kv:
        sys.exit(f"--set {kv}: expected key=value")
    k, v = kv.split("=", 1)
    config[k] = v
print(json.dumps(config))
PY
)"

curl -fsS -o /dev/null "$connect_url/" 2>/dev/null || die "Kafka Connect is not reachable at $connect_url"

log "PUT $connect_url/connectors/$name/config"
response="$(curl -sS -w '\n%{http_code}' -X PUT -H 'Content-Type: application/json' \
  --data "$body" "$connect_url/connectors/$name/config")"
code="${response##*$'\n'}"
case "$code" in
  200) log "connector $name updated" ;;
  201) log "connector $name created" ;;
  *) die "Connect refused the config of $name (HTTP $code): ${response%$'\n'*}" ;;
esac

deadline=$((SECONDS + timeout))
while :; do
  status="$(curl -fsS "$connect_url/connectors/$name/status" 2>/dev/null || true)"
  state="$(python3 - "$status" <<'PY'
import json, sys
try:
    s = json.loads(sys.argv[1])
except ValueError:
    print("UNKNOWN"); sys.exit()
tasks = s.get("tasks", [])
states = [s["connector"]["state"]] + [t["state"] for t in tasks]
if "FAILED" in states:
    print("FAILED")
    for t in [s["connector"]] + tasks:
        if t.get("state") == "FAILED":
            print(t.get("trace", "(no trace)"), file=sys.stderr)
elif tasks and all(x == "RUNNING" for x in states):
    print("RUNNING")
else:
    print("WAITING " + ",".join(states))
PY
)"
  case "$state" in
    RUNNING) log "connector $name and its tasks are RUNNING"; exit 0 ;;
    FAILED) die "connector $name FAILED (trace above)" ;;
  esac
  ((SECONDS < deadline)) || die "connector $name not RUNNING after ${timeout}s (last: $state)"
  sleep 1
done
