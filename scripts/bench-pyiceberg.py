#!/usr/bin/env python3
"""The peer in floe's apply benchmark: pyiceberg's Table.upsert (and
Table.delete for deleted keys) applying the same trips change events,
batch by batch, to a day-partitioned table with a local SQLite catalog.

Input: a folder written by `cargo bench -p lakehouse --bench apply --
export BATCH DIR` (each batch's final state per key as Parquet, and
batches.json). pyiceberg slows as the table grows, so it stops after
--seconds and reports the rate over the events it applied. Run with the
python of scripts/lib/common.sh lake_readers_python.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import tempfile
import time

import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import In
from pyiceberg.transforms import DayTransform


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="the exported batches")
    parser.add_argument("--seconds", type=float, default=600, help="time budget")
    args = parser.parse_args()
    with open(os.path.join(args.dir, "batches.json")) as f:
        batches = json.load(f)

    work = tempfile.mkdtemp(prefix="floe-bench-pyiceberg-")
    catalog = SqlCatalog(
        "bench", uri=f"sqlite:///{work}/catalog.db", warehouse=f"file://{work}"
    )
    catalog.create_namespace("taxi")
    first = pq.read_table(os.path.join(args.dir, batches[0]["upsert"]))
    table = catalog.create_table("taxi.trips", schema=first.schema)
    with table.update_spec() as spec:
        spec.add_field("pickup_datetime", DayTransform(), "pickup_datetime_day")
    with table.update_schema() as schema:
        schema.set_identifier_fields("trip_id")
    target = table.schema().as_arrow()

    events, latencies = 0, []
    started = time.monotonic()
    for batch in batches:
        upserts = pq.read_table(os.path.join(args.dir, batch["upsert"]))
        deletes = pq.read_table(os.path.join(args.dir, batch["delete"]))
        t = time.monotonic()
        if upserts.num_rows:
            table.upsert(upserts.cast(target), join_cols=["trip_id"])
        if deletes.num_rows:
            table.delete(In("trip_id", deletes.column("trip_id").to_pylist()))
        latencies.append((time.monotonic() - t) * 1e3)
        events += batch["events"]
        if time.monotonic() - started > args.seconds:
            break
    total = time.monotonic() - started
    live = table.scan(selected_fields=("trip_id",)).to_arrow().num_rows
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round((len(latencies) - 1) * 0.99))]
    print(
        f"pyiceberg upsert: {events} events ({len(latencies)} of {len(batches)} batches) "
        f"in {total:.1f} s = {events / total:.0f} events/s; "
        f"batch p50 {statistics.median(latencies):.0f} ms, p99 {p99:.0f} ms; "
        f"{live} live rows; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
