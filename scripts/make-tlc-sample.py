#!/usr/bin/env python3
"""Writes the small TLC-format trip files shipped for tests and the
quickstart (analytics/data/tlc): January 2024 as Parquet and February 2024
as CSV, in the columns and types of the NYC TLC yellow-taxi files.
Deterministic: the same files every run. Prints each file's row count and
fare total (the expectations the batch-load test uses).

Usage: scripts/make-tlc-sample.py [OUT_DIR]   (needs pyarrow)
"""
import csv
import datetime as dt
import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS = [
    ("VendorID", pa.int32()),
    ("tpep_pickup_datetime", pa.timestamp("us")),
    ("tpep_dropoff_datetime", pa.timestamp("us")),
    ("passenger_count", pa.int64()),
    ("trip_distance", pa.float64()),
    ("RatecodeID", pa.int64()),
    ("store_and_fwd_flag", pa.string()),
    ("PULocationID", pa.int32()),
    ("DOLocationID", pa.int32()),
    ("payment_type", pa.int64()),
    ("fare_amount", pa.float64()),
    ("extra", pa.float64()),
    ("mta_tax", pa.float64()),
    ("tip_amount", pa.float64()),
    ("tolls_amount", pa.float64()),
    ("improvement_surcharge", pa.float64()),
    ("total_amount", pa.float64()),
    ("congestion_surcharge", pa.float64()),
    ("Airport_fee", pa.float64()),
]
ZONES = [132, 138, 161, 162, 186, 230, 236, 237, 48, 142, 163, 170, 68, 79, 107]


def trips(seed, year, month, n):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        pickup = dt.datetime(year, month, rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))
        distance = round(rng.uniform(0.4, 18.0), 2)
        minutes = max(2, int(distance * rng.uniform(2.5, 5.0)))
        fare = round(3.0 + 2.5 * distance + 0.3 * minutes, 2)
        tip = round(fare * rng.choice([0.0, 0.15, 0.2, 0.25]), 2)
        airport = 1.75 if rng.random() < 0.1 else 0.0
        total = round(fare + 1.0 + 0.5 + tip + 1.0 + 2.5 + airport, 2)
        rows.append([
            rng.choice([1, 2]), pickup, pickup + dt.timedelta(minutes=minutes),
            rng.choice([1, 1, 1, 2, 3]), distance, 1, "N",
            rng.choice(ZONES), rng.choice(ZONES), rng.choice([1, 1, 2]),
            fare, 1.0, 0.5, tip, 0.0, 1.0, total, 2.5, airport,
        ])
    rows.sort(key=lambda r: r[1])
    return rows


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "analytics/data/tlc")
    out.mkdir(parents=True, exist_ok=True)
    jan = trips(2024_01, 2024, 1, 40)
    table = pa.table({name: [r[i] for r in jan] for i, (name, _) in enumerate(COLUMNS)},
                     schema=pa.schema(COLUMNS))
    pq.write_table(table, out / "yellow_tripdata_2024-01.parquet")
    feb = trips(2024_02, 2024, 2, 40)
    with open(out / "yellow_tripdata_2024-02.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([name for name, _ in COLUMNS])
        for r in feb:
            w.writerow([v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, dt.datetime) else v for v in r])
    for name, rows in [("2024-01.parquet", jan), ("2024-02.csv", feb)]:
        print(f"yellow_tripdata_{name}: {len(rows)} rows, fares {round(sum(r[10] for r in rows), 2)}")


if __name__ == "__main__":
    main()
