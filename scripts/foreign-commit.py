#!/usr/bin/env python3
"""Commits to a floe table as another engine would: pyiceberg's
copy-on-write delete of rows by key, and/or an overwrite of the table
with its own rows (a rewrite, as Spark's rewrite_data_files or Trino's
OPTIMIZE leave it). Neither snapshot carries floe's state; floe must
find its offsets and lineage past them. Prints one JSON object: the
operations of the snapshots committed and the table's row count.

Run with the python of scripts/lib/common.sh lake_readers_python.
"""
import argparse
import json
import sys

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import In


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog-uri", required=True, help="SQLAlchemy URL of the SQL catalog")
    parser.add_argument("--warehouse", required=True, help="file:///... or s3://bucket/prefix")
    parser.add_argument("--table", required=True, help="namespace.name")
    parser.add_argument("--delete-column", help="delete the rows whose column ...")
    parser.add_argument("--delete-values", help="... holds one of these (comma-separated integers)")
    parser.add_argument("--rewrite", action="store_true", help="overwrite the table with its own rows")
    args = parser.parse_args()

    catalog = SqlCatalog("floe", uri=args.catalog_uri, warehouse=args.warehouse)
    table = catalog.load_table(args.table)
    before = {s.snapshot_id for s in table.snapshots()}
    if args.delete_column:
        values = [int(v) for v in args.delete_values.split(",") if v]
        table.delete(In(args.delete_column, values))
        table = catalog.load_table(args.table)
    if args.rewrite:
        rows = table.scan().to_arrow()
        table.overwrite(rows)
        table = catalog.load_table(args.table)
    ops = [
        s.summary.operation.value
        for s in table.snapshots()
        if s.snapshot_id not in before
    ]
    json.dump({"operations": ops, "rows": table.scan().to_arrow().num_rows}, sys.stdout)


if __name__ == "__main__":
    main()
