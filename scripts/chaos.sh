#!/usr/bin/env bash
# The chaos campaign (issue 18): the whole local stack (Postgres, Kafka
# Connect with Debezium, tansu, the registry stand-in, Garage, a Postgres
# catalog), a continuous workload on every table, and in each run one
# fault: floe killed with kill -9 or aborted at a crash point, Kafka
# Connect killed with kill -9, an outage of the broker, the registry, S3
# or the catalog database, S3 answering slowly or with 503s, a poison
# message. After each run the lake must catch up and equal Postgres row
# for row; the summary counts rows compared, lost, duplicated and wrong,
# dead letters, and recovery times by fault kind. The campaign itself is the e2e test
# `chaos::campaign` (tests/e2e/chaos.rs), which CI runs with its defaults.
#
#   scripts/chaos.sh [--runs N] [--seed S] [--outage-seconds D]
#                    [--workload-seconds W] [--summary FILE]
#
# Defaults: 10 runs (each fault kind once), seed 18, outages of 30 s, 10 s
# of workload per run; the summary (markdown) goes to FILE, default
# chaos-summary-<seed>.md in the current folder. A run of 100 takes about
# an hour on 2 cores.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/lib/common.sh"
runs=10 seed=18 outage=30 workload=10 summary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="${2:?--runs N}"; shift 2 ;;
    --seed) seed="${2:?--seed S}"; shift 2 ;;
    --outage-seconds) outage="${2:?--outage-seconds D}"; shift 2 ;;
    --workload-seconds) workload="${2:?--workload-seconds W}"; shift 2 ;;
    --summary) summary="${2:?--summary FILE}"; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
for n in "$runs" "$seed" "$outage" "$workload"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "numbers only: $n"
done
summary="$(realpath -m "${summary:-chaos-summary-$seed.md}")"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/floe/target}"
bash scripts/install-deps.sh >&2
log "chaos: $runs runs, seed $seed, outages of $outage s; summary to $summary"
FLOE_CHAOS_RUNS="$runs" FLOE_CHAOS_SEED="$seed" FLOE_CHAOS_OUTAGE_S="$outage" \
  FLOE_CHAOS_WORKLOAD_S="$workload" FLOE_CHAOS_SUMMARY="$summary" \
  cargo test --locked -p floe --test e2e chaos::campaign -- --exact --nocapture
