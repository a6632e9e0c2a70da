#!/usr/bin/env python3
"""Reads one Iceberg table with the readers floe must interoperate with:
pyiceberg (through the SQL catalog floe commits to) and DuckDB's iceberg
extension (through the table's current metadata file). Prints one JSON
object: {"pyiceberg": rows, "duckdb": rows}, each row a {column: value}
map in a canonical form (see canonical()), so that floe's own reading of
the table can be compared with them exactly.

S3 settings come from the environment: FLOE_S3_ENDPOINT, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION. Run with the python of
scripts/lib/common.sh lake_readers_python.
"""
import argparse
import datetime
import decimal
import glob
import json
import os
import sys

EPOCH = datetime.datetime(1970, 1, 1)


def canonical(value):
    """Integers and decimals as their decimal text, timestamps as
    microseconds since the epoch (naive, as Iceberg `timestamp`), strings
    as themselves, null as None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, decimal.Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return str((value - EPOCH) // datetime.timedelta(microseconds=1))
    if isinstance(value, datetime.date):
        return str((value - EPOCH.date()).days)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def rows(records):
    return [{k: canonical(v) for k, v in r.items()} for r in records]


def s3_settings():
    endpoint = os.environ["FLOE_S3_ENDPOINT"]
    return {
        "endpoint": endpoint,
        "key": os.environ["AWS_ACCESS_KEY_ID"],
        "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
        "region": os.environ.get("AWS_REGION", "us-east-1"),
    }


def read_pyiceberg(args, s3):
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog(
        "floe",  # the catalog_name floe registers its tables under
        uri=args.catalog_uri,
        warehouse=args.warehouse,
        **{
            "s3.endpoint": s3["endpoint"],
            "s3.access-key-id": s3["key"],
            "s3.secret-access-key": s3["secret"],
            "s3.region": s3["region"],
            "s3.force-virtual-addressing": "false",
        },
    )
    table = catalog.load_table(args.table)
    if table.metadata_location != args.metadata:
        sys.exit(
            f"pyiceberg sees metadata {table.metadata_location}, floe committed {args.metadata}"
        )
    return rows(table.scan().to_arrow().to_pylist())


def load_duckdb_extension(con, package):
    module = __import__(package)
    found = glob.glob(
        os.path.join(os.path.dirname(module.__file__), "**", "*.duckdb_extension"),
        recursive=True,
    )
    if not found:
        sys.exit(f"no DuckDB extension file in package {package}")
    con.execute(f"LOAD '{found[0]}'")


def read_duckdb(args, s3):
    import duckdb

    con = duckdb.connect(config={"autoload_known_extensions": "false"})
    for package in (
        "duckdb_extension_httpfs",
        "duckdb_extension_avro",
        "duckdb_extension_iceberg",
    ):
        load_duckdb_extension(con, package)
    host = s3["endpoint"].split("://", 1)[1]
    con.execute(
        "CREATE SECRET lake (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, "
        "URL_STYLE 'path', USE_SSL false)".replace("?", "'{}'").format(
            s3["key"], s3["secret"], s3["region"], host
        )
    )
    cur = con.execute("SELECT * FROM iceberg_scan(?)", [args.metadata])
    names = [d[0] for d in cur.description]
    return rows(dict(zip(names, r)) for r in cur.fetchall())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalog-uri", required=True, help="SQLAlchemy URL of the SQL catalog")
    parser.add_argument("--warehouse", required=True, help="s3://bucket/prefix")
    parser.add_argument("--table", required=True, help="namespace.name")
    parser.add_argument("--metadata", required=True, help="the metadata file floe committed")
    args = parser.parse_args()
    s3 = s3_settings()
    json.dump({"pyiceberg": read_pyiceberg(args, s3), "duckdb": read_duckdb(args, s3)}, sys.stdout)


if __name__ == "__main__":
    main()
