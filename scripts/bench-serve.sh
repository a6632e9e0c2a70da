#!/usr/bin/env bash
# Load on `floe serve` over loopback: N concurrent clients, each with its
# own keep-alive connection, for S seconds, sending a mix of what the
# dashboard and applications ask (the table list, a filtered table read, a
# grouped SQL aggregate, the demand and fare features, zone activity, the
# health page). Prints and writes (FLOE_BENCH_OUT, default a temporary
# folder) latency p50/p99 per request kind, requests per second, errors,
# and the server's peak resident memory.
#
#   scripts/bench-serve.sh [--clients "8 32"] [--seconds 30]
#
# Builds floe in release mode and the quickstart's lake (in a temporary
# folder) the first time.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/lib/common.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe/target}"
clients="8 32" seconds=30
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients="${2:?}"; shift 2 ;;
    --seconds) seconds="${2:?}"; shift 2 ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
out="${FLOE_BENCH_OUT:-$(mktemp -d /tmp/floe-bench-serve.XXXXXX)}"
mkdir -p "$out"

log "building floe (release)"
cargo build --release --locked --bin floe >&2
floe="$CARGO_TARGET_DIR/release/floe"
log "the quickstart's lake in $out/lake"
"$floe" quickstart --dir "$out/lake" >"$out/quickstart.log" 2>&1 || die "quickstart failed: $out/quickstart.log"

port="$(free_port)"
"$floe" serve --config "$out/lake/floe.toml" --listen "127.0.0.1:$port" >"$out/serve.log" 2>&1 &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null; wait $serve_pid 2>/dev/null' EXIT
wait_http "http://127.0.0.1:$port/api/openapi.json" 30 || die "floe serve did not start: $out/serve.log"

for n in $clients; do
  log "$n clients for $seconds s"
  python3 - "$port" "$n" "$seconds" "$serve_pid" >"$out/clients-$n.json" <<'PY'
import http.client, json, sys, threading, time

port, clients, seconds, pid = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
KINDS = [
    ("tables", "GET", "/api/tables", None),
    ("rows", "GET", "/api/tables/taxi_cdc.trips/rows?columns=trip_id,fare_amount&filter=fare_amount:ge:40&order=-fare_amount&limit=50", None),
    ("sql", "POST", "/api/sql", "SELECT payment_type, count(*), sum(total_amount) FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1"),
    ("demand", "GET", "/api/features/demand?zone=132", None),
    ("fare", "GET", "/api/features/fare?pickup_zone=132&dropoff_zone=230&pickup_time=2024-03-15%2008:30", None),
    ("activity", "GET", "/api/zones/activity?limit=10", None),
    ("dashboard", "GET", "/", None),
]
results = {k[0]: [] for k in KINDS}
errors = []
lock = threading.Lock()
stop = time.monotonic() + seconds
peak = [0]

def rss():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0

def sampler():
    while time.monotonic() < stop:
        peak[0] = max(peak[0], rss())
        time.sleep(0.2)

def client(i):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    n = i
    while time.monotonic() < stop:
        kind, method, path, body = KINDS[n % len(KINDS)]
        n += 1
        started = time.monotonic()
        try:
            conn.request(method, path, body=body)
            response = conn.getresponse()
            response.read()
            ok = response.status == 200
        except Exception as e:  # a dropped connection counts, then reconnect
            ok = False
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        took = time.monotonic() - started
        with lock:
            (results[kind] if ok else errors).append(took if ok else f"{kind}")

threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)] + [threading.Thread(target=sampler)]
for t in threads: t.start()
for t in threads: t.join()

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else None

total = sum(len(v) for v in results.values())
summary = {
    "clients": clients, "seconds": seconds, "requests": total, "per_second": round(total / seconds, 1),
    "errors": len(errors), "peak_rss_mib": peak[0],
    "all_p50_ms": round(1000 * pct(sum(results.values(), []), 50), 1),
    "all_p99_ms": round(1000 * pct(sum(results.values(), []), 99), 1),
    "kinds": {k: {"n": len(v), "p50_ms": round(1000 * pct(v, 50), 1), "p99_ms": round(1000 * pct(v, 99), 1)} for k, v in results.items() if v},
}
print(json.dumps(summary))
PY
  python3 - "$out/clients-$n.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"{s['clients']} clients, {s['seconds']:.0f} s: {s['requests']} requests ({s['per_second']}/s), "
      f"{s['errors']} errors, p50 {s['all_p50_ms']} ms, p99 {s['all_p99_ms']} ms, server peak RSS {s['peak_rss_mib']} MiB")
for k, v in s["kinds"].items():
    print(f"  {k:10} n={v['n']:6}  p50 {v['p50_ms']:8} ms  p99 {v['p99_ms']:8} ms")
PY
done
log "results in $out"
