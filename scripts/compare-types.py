#!/usr/bin/env python3
"""Compares floe's tables with what Postgres itself printed for the same
source tables (issue 14's type test).

The expected side is final_state.json (tests/fixtures/types, written by
psql at recording time through final_state.sql: each value in Postgres' own
text output, or null). The lake side is read twice, by pyiceberg (through
the SQL catalog floe commits to) and by DuckDB's iceberg extension (through
the table's current metadata file); each value is turned into the text
Postgres prints for the source column's type (pg_text), so the two sides
compare as strings.

Where the lake deliberately holds something else than Postgres prints, the
expected text is first put through the rule docs/types.md states for it
(RULES below, each naming its reason); such a cell counts as a divergence,
not a mismatch. Every other difference is a mismatch: the script prints a
JSON report and exits 1.

Usage (with the python of scripts/lib/common.sh lake_readers_python):
  compare-types.py --expected F --catalog-uri sqlite:///…/catalog.db
                   --warehouse file:///… --namespace types_cdc [--tables a,b]
S3 settings, when the warehouse is on S3, come from FLOE_S3_ENDPOINT,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION.
"""
import argparse
import decimal
import glob
import json
import math
import os
import re
import struct
import sys

import pyarrow as pa
import pyarrow.compute as pc

I64_MAX = 2**63 - 1
I32_MAX = 2**31 - 1
MICROS_PER_DAY = 86_400_000_000

# --- Postgres text output -------------------------------------------------


def civil_from_days(z):
    """Proleptic Gregorian (year, month, day) of a day count from 1970-01-01
    (Howard Hinnant's algorithm); years <= 0 are astronomical."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def pg_date_parts(days):
    y, m, d = civil_from_days(days)
    if y <= 0:
        return f"{1 - y:04d}-{m:02d}-{d:02d}", " BC"
    return f"{y:04d}-{m:02d}-{d:02d}", ""


def pg_date(days):
    if days == I32_MAX:
        return "infinity"
    if days == -I32_MAX:
        return "-infinity"
    text, bc = pg_date_parts(days)
    return text + bc


def pg_time(us):
    s, frac = divmod(us, 1_000_000)
    h, rem = divmod(s, 3600)
    mi, sec = divmod(rem, 60)
    out = f"{h:02d}:{mi:02d}:{sec:02d}"
    if frac:
        out += "." + f"{frac:06d}".rstrip("0")
    return out


def pg_timestamp(us, zone=""):
    if us == I64_MAX:
        return "infinity"
    if us == -I64_MAX:
        return "-infinity"
    days, rem = divmod(us, MICROS_PER_DAY)
    text, bc = pg_date_parts(days)
    return f"{text} {pg_time(rem)}{zone}{bc}"


def shortest_digits(x, bits):
    """The shortest decimal digits and exponent that read back as x (a
    float64, or for bits=32 a float32)."""
    for precision in range(1, 18):
        text = f"{x:.{precision - 1}e}"
        back = float(text)
        if bits == 32:
            back = struct.unpack("f", struct.pack("f", back))[0]
        if back == x:
            mantissa, exp = text.split("e")
            return mantissa.replace(".", "").replace("-", "").rstrip("0") or "0", int(exp)
    raise ValueError(f"no shortest form for {x!r}")


def pg_float(x, bits):
    """Postgres' float4out/float8out (shortest exact digits; exponent form
    below 1e-4 and from 1e15, or 1e6 for real)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0" if math.copysign(1, x) < 0 else "0"
    sign = "-" if x < 0 else ""
    digits, exp = shortest_digits(abs(x), bits)
    if exp < -4 or exp >= (6 if bits == 32 else 15):
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    whole = digits[: exp + 1].ljust(exp + 1, "0")
    frac = digits[exp + 1 :]
    return f"{sign}{whole}{'.' + frac if frac else ''}"


def pg_array_element(text):
    if text is None:
        return "NULL"
    if text == "" or text.upper() == "NULL" or re.search(r'[{},"\\\s]', text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def base_type(pg_type):
    """`numeric(6,2)[]` -> (`numeric(6,2)`, True)."""
    if pg_type.endswith("[]"):
        return pg_type[:-2], True
    return pg_type, False


def pg_text(value, pg_type):
    """The text Postgres prints for `value` (as read from the lake, temporal
    types as integers) of a column of `pg_type` (format_type's spelling)."""
    if value is None:
        return None
    base, is_array = base_type(pg_type)
    if is_array:
        return "{" + ",".join(pg_array_element(pg_text(v, base)) for v in value) + "}"
    if base == "boolean":
        return "t" if value else "f"
    if base == "real":
        return pg_float(value, 32)
    if base == "double precision":
        return pg_float(value, 64)
    if base.startswith("numeric") or base == "money":
        if isinstance(value, decimal.Decimal):
            return format(value, "f")
        return str(value)
    if base == "date":
        return pg_date(value)
    if base.startswith("timestamp") and "with time zone" in base:
        return pg_timestamp(value, "+00")
    if base.startswith("timestamp"):
        return pg_timestamp(value)
    if base.startswith("time"):
        return pg_time(value)
    if base == "bytea":
        return "\\x" + value.hex()
    if base == "bit varying":
        return value.hex()
    if base == "point":
        return f"({pg_float(value['x'], 64)},{pg_float(value['y'], 64)})"
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


# --- deliberate divergences (docs/types.md) -------------------------------


def rule_time_24(text, _):
    return "23:59:59.999999" if text == "24:00:00" else text


def rule_timetz_utc(text, _):
    m = re.fullmatch(r"(\d\d):(\d\d):(\d\d)(\.\d+)?([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?", text)
    h, mi, s, frac, sign, oh, om, os_ = m.groups()
    us = ((int(h) * 60 + int(mi)) * 60 + int(s)) * 1_000_000
    if frac:
        us += int(frac[1:].ljust(6, "0"))
    offset = (int(oh) * 3600 + int(om or 0) * 60 + int(os_ or 0)) * 1_000_000
    us = (us - offset if sign == "+" else us + offset) % MICROS_PER_DAY
    return pg_time(us)


INTERVAL_PART = re.compile(r"([+-]?\d+) (year|mon|day)s?")
INTERVAL_TIME = re.compile(r"([+-])?(\d+):(\d+):(\d+)(\.\d+)?")


def rule_interval_micros(text, _):
    """Debezium's MicroDuration: months of 365.25/12 days, in doubles,
    saturated to 64 bits."""
    years = months = days = 0
    for n, unit in INTERVAL_PART.findall(text):
        if unit == "year":
            years = int(n)
        elif unit == "mon":
            months = int(n)
        else:
            days = int(n)
    hours = minutes = seconds = micros = 0
    t = INTERVAL_TIME.search(text)
    if t:
        sign = -1 if t.group(1) == "-" else 1
        hours, minutes, seconds = (sign * int(t.group(i)) for i in (2, 3, 4))
        if t.group(5):
            micros = sign * int(t.group(5)[1:].ljust(6, "0"))
    number_of_days = (365.25 / 12.0) * (12 * years + months) + days
    total = (((number_of_days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1e6 + micros
    return str(max(-(2**63), min(I64_MAX, int(total)))) if math.isfinite(total) else text


def rule_money_number(text, _):
    return text.replace("$", "").replace(",", "")


def rule_numeric_special(text, _):
    return None if text in ("NaN", "Infinity", "-Infinity") else text


def rule_bit1_boolean(text, _):
    return {"1": "t", "0": "f"}.get(text, text)


def rule_numeric_zero_scale(text, _):
    try:
        return "0" if decimal.Decimal(text) == 0 else text
    except decimal.InvalidOperation:
        return text


def rule_varbit_bytes(text, _):
    value = int(text, 2) if text else 0
    return value.to_bytes((value.bit_length() + 7) // 8, "little").hex()


# (reason in docs/types.md, applies to the column's type, rule)
RULES = [
    ("time-24", lambda t: t.startswith("time") and not t.startswith("timestamp") and "with time zone" not in t, rule_time_24),
    ("timetz-utc", lambda t: t.startswith("time") and "with time zone" in t and not t.startswith("timestamp"), rule_timetz_utc),
    ("interval-micros", lambda t: t == "interval", rule_interval_micros),
    ("money-number", lambda t: t == "money", rule_money_number),
    ("numeric-special-null", lambda t: t.startswith("numeric") and not t.endswith("[]"), rule_numeric_special),
    ("varbit-bytes", lambda t: t == "bit varying", rule_varbit_bytes),
    ("bit1-boolean", lambda t: t == "bit(1)", rule_bit1_boolean),
    ("numeric-zero-scale", lambda t: t == "numeric", rule_numeric_zero_scale),
]


def hstore_pairs(text):
    pairs = {}
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"=>(NULL|"((?:[^"\\]|\\.)*)")', text):
        key = re.sub(r"\\(.)", r"\1", m.group(1))
        pairs[key] = None if m.group(2) == "NULL" else re.sub(r"\\(.)", r"\1", m.group(3))
    return pairs


def bc_date_era_dropped(expected, got, pg_type):
    """Debezium's snapshot reads (and arrays) lose a BC date's era."""
    if pg_type not in ("date", "date[]") or expected is None or got is None:
        return False
    return re.sub(r'"?(\d{4}-\d\d-\d\d) BC"?', r"\1", expected) == got


def multidimensional(expected, pg_type):
    """Debezium cannot capture multi-dimensional arrays (it sends nulls or
    Java object names for the inner arrays)."""
    return pg_type.endswith("[]") and expected is not None and expected.startswith("{{")


def compare_cell(expected, got, pg_type):
    """None when equal, else (kind, detail): kind is a divergence's name or
    'mismatch'."""
    if expected == got:
        return None
    if pg_type == "hstore" and expected is not None and got is not None:
        if hstore_pairs(expected) == json.loads(got):
            return ("hstore-json", None)
        return ("mismatch", None)
    for name, applies, rule in RULES:
        if applies(pg_type) and expected is not None and rule(expected, pg_type) == got:
            return (name, None)
    if bc_date_era_dropped(expected, got, pg_type):
        return ("bc-date-era", None)
    if multidimensional(expected, pg_type):
        return ("multidimensional-array", None)
    return ("mismatch", None)


# --- reading the lake -----------------------------------------------------


def as_plain(array):
    """Temporal values as integers (days, microseconds): Python's datetime
    cannot hold infinity or years past 9999."""
    t = array.type
    if pa.types.is_date32(t):
        return array.cast(pa.int32())
    if pa.types.is_timestamp(t) or pa.types.is_time64(t):
        if getattr(t, "unit", "us") != "us":
            array = array.cast(pa.timestamp("us", t.tz) if pa.types.is_timestamp(t) else pa.time64("us"))
        return array.view(pa.int64()) if hasattr(array, "view") else array.cast(pa.int64())
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        flat = as_plain(array.flatten())
        return pa.ListArray.from_arrays(array.offsets, flat, mask=array.is_null())
    if pa.types.is_struct(t):
        fields = [as_plain(array.field(i)) for i in range(t.num_fields)]
        return pa.StructArray.from_arrays(fields, names=[f.name for f in t], mask=array.is_null())
    return array


def rows_of(table):
    columns = {}
    for name in table.column_names:
        chunked = table.column(name)
        array = chunked.combine_chunks() if chunked.num_chunks else pa.array([], chunked.type)
        columns[name] = as_plain(array).to_pylist()
    return [{n: columns[n][i] for n in columns} for i in range(table.num_rows)]


def s3_properties():
    endpoint = os.environ.get("FLOE_S3_ENDPOINT")
    if not endpoint:
        return {}
    return {
        "s3.endpoint": endpoint,
        "s3.access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
        "s3.secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"],
        "s3.region": os.environ.get("AWS_REGION", "us-east-1"),
        "s3.force-virtual-addressing": "false",
    }


def open_catalog(args):
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog("floe", uri=args.catalog_uri, warehouse=args.warehouse, **s3_properties())


def duckdb_connection():
    import duckdb

    con = duckdb.connect(config={"autoload_known_extensions": "false"})
    for package in ("duckdb_extension_httpfs", "duckdb_extension_avro", "duckdb_extension_iceberg"):
        module = __import__(package)
        found = glob.glob(os.path.join(os.path.dirname(module.__file__), "**", "*.duckdb_extension"), recursive=True)
        con.execute(f"LOAD '{found[0]}'")
    endpoint = os.environ.get("FLOE_S3_ENDPOINT")
    if endpoint:
        con.execute(
            "CREATE SECRET lake (TYPE s3, KEY_ID '{}', SECRET '{}', REGION '{}', ENDPOINT '{}', "
            "URL_STYLE 'path', USE_SSL false)".format(
                os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
                os.environ.get("AWS_REGION", "us-east-1"), endpoint.split("://", 1)[1]))
    return con


# --- the comparison -------------------------------------------------------


def compare_table(name, expected, lake_rows, reader):
    """Matches lake rows to Postgres rows on their full text and reports the
    rest. Returns a per-table report."""
    columns = expected["columns"]
    want = [[r.get(c) for c, _ in columns] for r in (expected["rows"] or [])]
    got = []
    missing_columns = [c for c, _ in columns if lake_rows and c not in lake_rows[0]]
    for row in lake_rows:
        got.append([pg_text(row.get(c), t) for c, t in columns])
    report = {"reader": reader, "table": name, "rows_expected": len(want), "rows_read": len(got),
              "cells": 0, "divergences": {}, "mismatches": []}
    if missing_columns:
        report["mismatches"].append({"columns_missing_in_lake": missing_columns})
    # pair rows by their key text: the first column(s) of each row, else the
    # whole row (tables without a key)
    def cell_diffs(w, g):
        return [(i, compare_cell(w[i], g[i], columns[i][1])) for i in range(len(columns))]

    unmatched = list(range(len(got)))
    for w in want:
        best, best_bad = None, None
        for j in unmatched:
            diffs = cell_diffs(w, got[j])
            bad = sum(1 for _, d in diffs if d and d[0] == "mismatch")
            if best is None or bad < best_bad:
                best, best_bad = j, bad
                if bad == 0:
                    break
        if best is None:
            report["mismatches"].append({"row_missing_in_lake": dict(zip([c for c, _ in columns], w))})
            continue
        unmatched.remove(best)
        for i, d in cell_diffs(w, got[best]):
            report["cells"] += 1
            if d is None:
                continue
            kind = d[0]
            if kind == "mismatch":
                report["mismatches"].append({"row": w[0], "column": columns[i][0], "type": columns[i][1],
                                             "postgres": w[i], "lake": got[best][i]})
            else:
                report["divergences"][kind] = report["divergences"].get(kind, 0) + 1
    for j in unmatched:
        report["mismatches"].append({"row_not_in_postgres": dict(zip([c for c, _ in columns], got[j]))})
    return report


def infinity_check(con, metadata, expected):
    """DuckDB reads floe's encoding of infinite dates and timestamps as its
    own infinity: per column, the rows it prints as 'infinity' and
    '-infinity' must be the rows Postgres does."""
    out = {"columns": 0, "mismatches": []}
    for column, pg_type in expected["columns"]:
        if pg_type not in ("date",) and not pg_type.startswith("timestamp"):
            continue
        want = [sum(1 for r in expected["rows"] or [] if r.get(column) == v) for v in ("infinity", "-infinity")]
        got = list(con.execute(
            f'SELECT count(*) FILTER (WHERE CAST("{column}" AS VARCHAR) = \'infinity\'), '
            f'count(*) FILTER (WHERE CAST("{column}" AS VARCHAR) = \'-infinity\') FROM iceberg_scan(?)',
            [metadata]).fetchone())
        out["columns"] += 1
        if want != got:
            out["mismatches"].append({"column": column, "infinity_rows_postgres": want, "infinity_rows_duckdb": got})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expected", required=True)
    parser.add_argument("--catalog-uri", required=True)
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--tables", help="comma-separated; default: every table in --expected")
    args = parser.parse_args()
    expected = json.load(open(args.expected, encoding="utf-8"))
    tables = args.tables.split(",") if args.tables else sorted(expected)
    catalog = open_catalog(args)
    con = duckdb_connection()
    reports = []
    for name in tables:
        table = catalog.load_table(f"{args.namespace}.{name}")
        reports.append(compare_table(name, expected[name], rows_of(table.scan().to_arrow()), "pyiceberg"))
        duck = con.execute("SELECT * FROM iceberg_scan(?)", [table.metadata_location]).to_arrow_table()
        report = compare_table(name, expected[name], rows_of(duck), "duckdb")
        report["infinity"] = infinity_check(con, table.metadata_location, expected[name])
        report["mismatches"].extend(report["infinity"]["mismatches"])
        reports.append(report)
    bad = sum(len(r["mismatches"]) for r in reports)
    json.dump({"tables": reports, "mismatches": bad}, sys.stdout, indent=1, default=str)
    print()
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
