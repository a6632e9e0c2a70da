#!/usr/bin/env python3
"""Times the Iceberg readers floe interoperates with on given tables:
pyiceberg 0.12 (StaticTable over the metadata file) and DuckDB 1.5.5's
iceberg extension (iceberg_scan of the metadata file).

Usage: bench-read-peers.py [--runs N] LABEL=METADATA_LOCATION ...

For each table and reader it times, in-process (start-up and extension
loading excluded), RUNS times:
  rows       every column of every live row, materialised
  aggregate  vendor_id, sum(total_amount), avg(trip_distance) by vendor_id
and prints one line per table, reader and query with the median, the
runs and the row count, so two layouts of the same rows compare per
reader. S3 settings come from FLOE_S3_ENDPOINT, AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY when the tables are on S3. Run with the python of
scripts/lib/common.sh lake_readers_python.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib  # noqa: E402

peers = importlib.import_module("read-with-peers")


def local(location):
    """DuckDB names local files without a scheme."""
    return location[len("file://"):] if location.startswith("file://") else location


def pyiceberg_table(metadata):
    from pyiceberg.table import StaticTable

    props = {}
    if os.environ.get("FLOE_S3_ENDPOINT"):
        s3 = peers.s3_settings()
        props = {
            "s3.endpoint": s3["endpoint"],
            "s3.access-key-id": s3["key"],
            "s3.secret-access-key": s3["secret"],
            "s3.region": s3["region"],
            "s3.force-virtual-addressing": "false",
        }
    return StaticTable.from_metadata(metadata, properties=props)


def pyiceberg_queries(metadata):
    table = pyiceberg_table(metadata)

    def rows():
        return table.scan().to_arrow().num_rows

    def aggregate():
        t = table.scan(selected_fields=("vendor_id", "total_amount", "trip_distance")).to_arrow()
        out = t.group_by("vendor_id").aggregate(
            [("total_amount", "sum"), ("trip_distance", "mean")]
        )
        return out.num_rows

    return {"rows": rows, "aggregate": aggregate}


def duckdb_queries(metadata):
    import duckdb

    con = duckdb.connect(config={"autoload_known_extensions": "false"})
    for package in ("duckdb_extension_httpfs", "duckdb_extension_avro", "duckdb_extension_iceberg"):
        peers.load_duckdb_extension(con, package)
    if os.environ.get("FLOE_S3_ENDPOINT"):
        s3 = peers.s3_settings()
        host = s3["endpoint"].split("://", 1)[1]
        con.execute(
            "CREATE SECRET lake (TYPE s3, KEY_ID '{}', SECRET '{}', REGION '{}', ENDPOINT '{}', "
            "URL_STYLE 'path', USE_SSL false)".format(s3["key"], s3["secret"], s3["region"], host)
        )
    m = local(metadata)

    def rows():
        return len(con.execute("SELECT * FROM iceberg_scan(?)", [m]).to_arrow_table())

    def aggregate():
        return len(
            con.execute(
                "SELECT vendor_id, sum(total_amount), avg(trip_distance) "
                "FROM iceberg_scan(?) GROUP BY 1",
                [m],
            ).fetchall()
        )

    return {"rows": rows, "aggregate": aggregate}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("tables", nargs="+", help="LABEL=METADATA_LOCATION")
    args = parser.parse_args()
    for spec in args.tables:
        label, metadata = spec.split("=", 1)
        for reader, make in (("pyiceberg", pyiceberg_queries), ("duckdb", duckdb_queries)):
            queries = make(metadata)
            for name, query in queries.items():
                query()  # warm: metadata, manifests, page cache
                times, n = [], None
                for _ in range(args.runs):
                    start = time.perf_counter()
                    n = query()
                    times.append(time.perf_counter() - start)
                print(
                    "%-24s %-9s %-9s median %.3f s  runs %s  (%d rows out)"
                    % (
                        label,
                        reader,
                        name,
                        statistics.median(times),
                        " ".join("%.3f" % t for t in times),
                        n,
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
