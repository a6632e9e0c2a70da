#!/usr/bin/env python3
"""Runs the analyst query corpus with DuckDB 1.5.5 on a lake and compares
each result with floe's (issue 14's differential SQL test).

floe's results come from tests/e2e/sql_differential.rs, which runs every
query through floe's DataFusion session (the one `floe sql` and the jobs
use) and writes each result as an Arrow IPC file, NNN.arrow, or its error,
NNN.error, into --results. Here every lake table becomes a DuckDB view over
`iceberg_scan` of its current metadata, each query runs (its `-- duckdb:`
spelling where it has one), and the two results are compared:

* the same number of columns and rows; rows in order when the query ends
  with an ORDER BY, else as multisets;
* integers, decimals, strings, booleans, dates, times and timestamps
  exactly (as values: a decimal(20,2) equals a decimal(38,2) of the same
  value; temporal values as their integer counts);
* floating point to a relative tolerance of 1e-9 (and NaN equal to NaN);
  where one engine gives floating point and the other a decimal (DuckDB
  averages decimals as doubles, DataFusion keeps 4 more decimal places),
  to within one unit of the decimal's last place;
* a date equal to the timestamp of its midnight (PostgreSQL and DuckDB
  add an interval to a date as a timestamp, DataFusion keeps a date).

Prints a JSON report and exits 1 when any query differs or either engine
fails one. Run with the python of scripts/lib/common.sh lake_readers_python.
"""
import argparse
import decimal
import glob
import json
import math
import os
import re
import sys

import pyarrow as pa
import pyarrow.ipc

TOLERANCE = 1e-9


def parse_corpus(path):
    queries = []
    name = duckdb_sql = None
    lines = []
    for line in open(path, encoding="utf-8"):
        if line.startswith("-- q: "):
            name, duckdb_sql, lines = line[6:].strip(), None, []
        elif line.startswith("-- duckdb: "):
            duckdb_sql = line[11:].strip()
        elif line.startswith("--") or not line.strip():
            continue
        else:
            lines.append(line.rstrip("\n"))
            if line.rstrip().endswith(";"):
                sql = "\n".join(lines).rstrip().rstrip(";")
                queries.append({"name": name, "sql": sql, "duckdb": duckdb_sql or sql})
                lines = []
    return queries


def substitute(sql, values):
    return re.sub(r"\{([a-z_]+:[^}]+)\}", lambda m: str(values[m.group(1)]), sql)


def plain(array):
    """Temporal values as integers (what both engines hold)."""
    t = array.type
    if pa.types.is_date32(t):
        return array.cast(pa.int32())
    if pa.types.is_timestamp(t):
        return array.cast(pa.timestamp("us", t.tz)).cast(pa.int64())
    if pa.types.is_time(t):
        return array.cast(pa.time64("us")).cast(pa.int64())
    if pa.types.is_duration(t):
        return array.cast(pa.duration("us")).cast(pa.int64())
    if pa.types.is_dictionary(t):
        return plain(array.cast(t.value_type))
    return array


def rows(table):
    columns = []
    for column in table.columns:
        array = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
        values = plain(array).to_pylist()
        if pa.types.is_date32(array.type):
            # as the microseconds of its midnight, to compare with timestamps
            values = [None if d is None else d * 86_400_000_000 for d in values]
        columns.append(values)
    return [tuple(c[i] for c in columns) for i in range(table.num_rows)]


def is_number(v):
    return isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)


def equal(a, b):
    if a is None or b is None:
        return a is None and b is None
    if is_number(a) and is_number(b):
        if isinstance(a, float) or isinstance(b, float):
            exact = a if isinstance(a, decimal.Decimal) else b if isinstance(b, decimal.Decimal) else None
            a, b = float(a), float(b)
            if math.isnan(a) or math.isnan(b):
                return math.isnan(a) and math.isnan(b)
            if math.isinf(a) or math.isinf(b):
                return a == b
            tolerance = TOLERANCE * max(1.0, abs(a), abs(b))
            if exact is not None and exact.is_finite():
                tolerance = max(tolerance, 10.0 ** exact.as_tuple().exponent)
            return abs(a - b) <= tolerance
        return decimal.Decimal(a) == decimal.Decimal(b)
    if isinstance(a, (bytes, bytearray)) and isinstance(b, (bytes, bytearray)):
        return bytes(a) == bytes(b)
    return a == b


def sort_key(row):
    """A total order over rows of mixed types (multiset comparison)."""
    def key(v):
        if v is None:
            return (0, "")
        if is_number(v):
            f = float(v)
            return (1, -math.inf if math.isnan(f) else f)
        return (2, repr(v))
    return tuple(key(v) for v in row)


def ordered(sql):
    """Whether the query's result order is defined: its last clause is an
    ORDER BY (possibly followed by LIMIT/OFFSET)."""
    tail = re.sub(r"\s+", " ", sql.upper())
    depth = 0
    last_order = -1
    for i, c in enumerate(tail):
        depth += c == "("
        depth -= c == ")"
        if depth == 0 and tail.startswith("ORDER BY", i):
            last_order = i
    return last_order >= 0


def compare(sql, floe, duck):
    if len(floe.columns) != len(duck.columns):
        return f"{len(floe.columns)} columns from floe, {len(duck.columns)} from DuckDB"
    a, b = rows(floe), rows(duck)
    if len(a) != len(b):
        return f"{len(a)} rows from floe, {len(b)} from DuckDB"
    if not ordered(sql):
        a, b = sorted(a, key=sort_key), sorted(b, key=sort_key)
    for i, (x, y) in enumerate(zip(a, b)):
        if not all(equal(p, q) for p, q in zip(x, y)):
            return f"row {i}: floe {x!r}, DuckDB {y!r}"
    return None


def duckdb_over(args):
    import duckdb
    from pyiceberg.catalog.sql import SqlCatalog

    con = duckdb.connect(config={"autoload_known_extensions": "false"})
    for package in ("duckdb_extension_httpfs", "duckdb_extension_avro", "duckdb_extension_iceberg"):
        module = __import__(package)
        found = glob.glob(os.path.join(os.path.dirname(module.__file__), "**", "*.duckdb_extension"), recursive=True)
        con.execute(f"LOAD '{found[0]}'")
    catalog = SqlCatalog("floe", uri=args.catalog_uri, warehouse=args.warehouse)
    for ns in catalog.list_namespaces():
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{ns[0]}"')
        for ident in catalog.list_tables(ns):
            table = catalog.load_table(ident)
            con.execute(f'CREATE VIEW "{ident[0]}"."{ident[1]}" AS SELECT * FROM iceberg_scan(\'{table.metadata_location}\')')
    return con


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--results", required=True, help="floe's NNN.arrow / NNN.error files")
    parser.add_argument("--substitutions", required=True, help="JSON: placeholder -> value")
    parser.add_argument("--catalog-uri", required=True)
    parser.add_argument("--warehouse", required=True)
    args = parser.parse_args()
    queries = parse_corpus(args.corpus)
    values = json.load(open(args.substitutions, encoding="utf-8"))
    con = duckdb_over(args)
    report = {"queries": len(queries), "equal": 0, "differences": []}
    for i, q in enumerate(queries, 1):
        base = os.path.join(args.results, f"{i:03d}")
        problem = None
        try:
            duck = con.execute(substitute(q["duckdb"], values)).to_arrow_table()
        except Exception as e:  # noqa: BLE001: any DuckDB failure is reported
            duck, problem = None, f"DuckDB failed: {e}"
        if os.path.exists(base + ".error"):
            floe_error = open(base + ".error", encoding="utf-8").read().strip()
            problem = f"floe failed: {floe_error}" + (f"; {problem}" if problem else "")
        elif duck is not None:
            with pa.ipc.open_file(base + ".arrow") as reader:
                floe = reader.read_all()
            problem = compare(q["sql"], floe, duck)
        if problem:
            report["differences"].append({"query": q["name"], "sql": q["sql"], "problem": problem})
        else:
            report["equal"] += 1
    json.dump(report, sys.stdout, indent=1, default=str)
    print()
    sys.exit(1 if report["differences"] else 0)


if __name__ == "__main__":
    main()
