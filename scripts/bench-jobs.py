#!/usr/bin/env python3
"""The jobs benchmark (issue 5), driven by scripts/bench-jobs.sh: the full
job set over N trips (default one million, January 2024) and a month of
weather, each job run by the release floe under /usr/bin/time for wall
time and peak memory; then the zone-performance query run by floe sql and
by DuckDB's iceberg extension on the same Iceberg tables, for a ratio.

Prints a Markdown table (and JSON lines with --json) for docs/benchmarks.md.
"""
import argparse
import glob
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
ZONES = list(range(1, 264))


def generate_trips(path: Path, n: int, seed: int = 5):
    """n TLC-format trips in January 2024 (with a trip_id column the CDC
    seed uses), zones skewed like Manhattan's."""
    rng = random.Random(seed)
    weights = [1.0 / (1 + (z % 40)) for z in ZONES]
    start = 1704067200  # 2024-01-01 UTC, used as local time
    pickups = sorted(start + rng.randrange(31 * 86400) for _ in range(n))
    distance = [round(rng.lognormvariate(0.7, 0.8), 2) for _ in range(n)]
    minutes = [max(1, int(d * rng.uniform(2.5, 5.0))) for d in distance]
    fare = [round(3.0 + 2.5 * d + 0.3 * m, 2) for d, m in zip(distance, minutes)]
    tip = [round(f * rng.choice((0.0, 0.15, 0.2)), 2) for f in fare]
    cols = {
        "trip_id": pa.array(range(1, n + 1), pa.int64()),
        "VendorID": pa.array([rng.choice((1, 2)) for _ in range(n)], pa.int32()),
        "tpep_pickup_datetime": pa.array([p * 1_000_000 for p in pickups], pa.timestamp("us")),
        "tpep_dropoff_datetime": pa.array(
            [(p + 60 * m) * 1_000_000 for p, m in zip(pickups, minutes)], pa.timestamp("us")),
        "passenger_count": pa.array([rng.choice((1, 1, 1, 2, 3)) for _ in range(n)], pa.int64()),
        "trip_distance": pa.array(distance, pa.float64()),
        "RatecodeID": pa.array([1] * n, pa.int64()),
        "store_and_fwd_flag": pa.array(["N"] * n, pa.string()),
        "PULocationID": pa.array(rng.choices(ZONES, weights, k=n), pa.int32()),
        "DOLocationID": pa.array(rng.choices(ZONES, weights, k=n), pa.int32()),
        "payment_type": pa.array([rng.choice((1, 1, 2)) for _ in range(n)], pa.int64()),
        "fare_amount": pa.array(fare, pa.float64()),
        "extra": pa.array([1.0] * n, pa.float64()),
        "mta_tax": pa.array([0.5] * n, pa.float64()),
        "tip_amount": pa.array(tip, pa.float64()),
        "tolls_amount": pa.array([0.0] * n, pa.float64()),
        "improvement_surcharge": pa.array([1.0] * n, pa.float64()),
        "total_amount": pa.array([round(f + t + 5.0, 2) for f, t in zip(fare, tip)], pa.float64()),
        "congestion_surcharge": pa.array([2.5] * n, pa.float64()),
        "Airport_fee": pa.array([0.0] * n, pa.float64()),
    }
    pq.write_table(pa.table(cols), path, row_group_size=256 * 1024)


# the CDC-shaped taxi tables the jobs read, loaded by floe's batch load
SEED_TRIPS_SQL = """
SELECT trip_id,
       "VendorID" AS vendor_id,
       tpep_pickup_datetime AS pickup_datetime,
       tpep_dropoff_datetime AS dropoff_datetime,
       CAST("PULocationID" AS INT) AS pickup_zone_id,
       CAST("DOLocationID" AS INT) AS dropoff_zone_id,
       CAST(passenger_count AS SMALLINT) AS passenger_count,
       CAST(trip_distance AS DECIMAL(8, 2)) AS trip_distance,
       CAST(fare_amount AS DECIMAL(10, 2)) AS fare_amount,
       CAST(tip_amount AS DECIMAL(10, 2)) AS tip_amount,
       CAST(total_amount AS DECIMAL(10, 2)) AS total_amount,
       CAST(payment_type AS SMALLINT) AS payment_type
FROM job.sources.file
"""

# the jobs in the order a day's schedule would run them
JOBS = [
    "reference_taxi_zones",
    "weather_hourly",
    "nyc_taxi_trips",
    "zone_performance_metrics",
    "trip_weather_correlation",
    "demand_prediction_features",
    "fare_prediction_features",
    "trip_aggregations",
    "trip_aggregations",  # again: incremental, nothing changed
    "zone_activity",
    "data_quality",
]


def setup(work: Path, n: int):
    data = work / "data"
    jobs = work / "jobs"
    (data / "trips").mkdir(parents=True)
    jobs.mkdir()
    generate_trips(data / "trips" / "trips.parquet", n)
    (data / "vendors.csv").write_text("vendor_id,name\n1,Creative Mobile\n2,VeriFone\n")
    (data / "payment_types.csv").write_text(
        "payment_type_id,description\n1,Credit card\n2,Cash\n3,No charge\n4,Dispute\n")
    shipped = ROOT / "analytics" / "jobs"
    for f in shipped.iterdir():
        shutil.copy(f, jobs / f.name)
    shutil.copytree(ROOT / "analytics" / "data", work / "shipped-data")
    for f in jobs.glob("*.toml"):
        text = f.read_text().replace('"../data/', '"../shipped-data/')
        f.write_text(text)
    # a month of weather; the TLC load reads the million trips
    w = jobs / "weather_hourly.toml"
    w.write_text(w.read_text().replace("days = 366", "days = 31"))
    t = jobs / "nyc_taxi_trips.toml"
    t.write_text(t.read_text().replace('path = "../shipped-data/tlc"', 'path = "../data/trips"'))
    bench = work / "bench-jobs"
    bench.mkdir()
    (bench / "seed_trips.toml").write_text(
        'target = "taxi_cdc.trips"\npartition = ["day(pickup_datetime)"]\nmode = "append"\n'
        'sql = "seed_trips.sql"\n[load]\npath = "../data/trips"\n')
    (bench / "seed_trips.sql").write_text(SEED_TRIPS_SQL)
    for name, key in (("vendors", "vendor_id"), ("payment_types", "payment_type_id")):
        (bench / f"seed_{name}.toml").write_text(
            f'target = "taxi_cdc.{name}"\nmode = "overwrite"\nsql = "seed_{name}.sql"\n'
            f'[sources.rows]\nformat = "csv"\npath = "../data/{name}.csv"\n')
        (bench / f"seed_{name}.sql").write_text(f"SELECT * FROM job.sources.rows ORDER BY {key}")
    (work / "floe.toml").write_text(f'[lake]\nwarehouse = "{work / "lake"}"\n')


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time: (seconds, peak RSS MiB, stdout)."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M", *cmd], capture_output=True,
                         text=True, env=env)
    if out.returncode != 0 and "data_quality" not in cmd:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    seconds, kib = out.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kib) / 1024, out.stdout


def floe_cmd(floe, work, jobs_dir, *args):
    return [floe, *args, "--config", str(work / "floe.toml"), "--jobs-dir", str(jobs_dir)]


def zone_performance_duckdb(work: Path, repeat: int):
    import duckdb

    con = duckdb.connect(config={"autoload_known_extensions": "false"})
    for package in ("duckdb_extension_avro", "duckdb_extension_iceberg"):
        module = __import__(package)
        found = glob.glob(os.path.join(os.path.dirname(module.__file__), "**", "*.duckdb_extension"),
                          recursive=True)
        con.execute(f"LOAD '{found[0]}'")
    catalog = sqlite3.connect(work / "lake" / "catalog.db")
    location = dict(
        ((ns, name), loc) for ns, name, loc in catalog.execute(
            "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables"))
    trips = location[("taxi_cdc", "trips")].removeprefix("file://")
    zones = location[("reference", "taxi_zones")].removeprefix("file://")
    sql = (ROOT / "analytics" / "jobs" / "zone_performance_metrics.sql").read_text()
    sql = sql.replace("taxi_cdc.trips", f"iceberg_scan('{trips}')")
    sql = sql.replace("reference.taxi_zones", f"iceberg_scan('{zones}')")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        rows = con.execute(sql).fetchall()
        times.append(time.perf_counter() - started)
    return min(times), len(rows)


def zone_performance_floe(floe, work: Path, repeat: int):
    sql = ROOT / "analytics" / "jobs" / "zone_performance_metrics.sql"
    times = []
    rows = 0
    for _ in range(repeat):
        out = subprocess.run([floe, "sql", "--config", str(work / "floe.toml"), "--format", "csv",
                              "-f", str(sql)], capture_output=True, text=True, check=True)
        # the shell's own timing line: "(N rows, X s)"
        line = [l for l in out.stderr.splitlines() if l.startswith("(") and " s)" in l][-1]
        rows = int(line[1:].split()[0])
        times.append(float(line.rsplit(",", 1)[1].strip().rstrip(" s)")))
    return min(times), rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--floe", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--trips", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    started = time.perf_counter()
    setup(work, args.trips)
    print(f"generated {args.trips} trips in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    results = []
    for job in ("seed_vendors", "seed_payment_types", "seed_trips"):
        s, mib, out = timed(floe_cmd(args.floe, work, work / "bench-jobs", "jobs", "run", job))
        print(f"setup {job}: {s:.1f} s, {mib:.0f} MiB: {out.strip().splitlines()[0]}", file=sys.stderr)
        results.append(("(seed) " + job, s, mib, out))
    seen = set()
    for job in JOBS:
        s, mib, out = timed(floe_cmd(args.floe, work, work / "jobs", "jobs", "run", job))
        first = out.strip().splitlines()[0] if out.strip() else "(failed)"
        print(f"{job}: {s:.1f} s, {mib:.0f} MiB: {first}", file=sys.stderr)
        label = f"{job} (rerun, incremental)" if job in seen else job
        seen.add(job)
        results.append((label, s, mib, out))
    duck_s, duck_rows = zone_performance_duckdb(work, args.repeat)
    floe_s, floe_rows = zone_performance_floe(args.floe, work, args.repeat)
    print("| job | wall s | peak RSS MiB | rows written |")
    print("|---|---:|---:|---:|")
    for job, s, mib, out in results:
        written = "-"
        for line in out.splitlines():
            if " rows written" in line:
                written = f"{int(line.split(': ', 1)[1].split()[0]):,}"
        print(f"| {job} | {s:.1f} | {mib:.0f} | {written} |")
    print()
    print(f"zone performance query (best of {args.repeat}): floe sql {floe_s:.2f} s "
          f"({floe_rows} rows), DuckDB {duck_s:.2f} s ({duck_rows} rows), "
          f"floe / DuckDB = {floe_s / duck_s:.2f}")


if __name__ == "__main__":
    main()
