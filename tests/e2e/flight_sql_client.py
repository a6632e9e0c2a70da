"""floe serve's Flight SQL endpoint through the ADBC Flight SQL driver (a
client nobody here wrote): a query, a prepared statement with
parameters, metadata calls, a large result read batch by batch, a
result past the row limit, a cancelled query, a bad token. Prints what
it saw as JSON.

    python flight_sql_client.py URI TOKEN SERVER_PID
"""
import json
import os
import sys
import threading
import time

import adbc_driver_flightsql.dbapi as flightsql

uri, token, server = sys.argv[1:4]


def cpu_seconds(pid):
    """CPU time the server process has used (user and system)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect(with_token):
    return flightsql.connect(
        uri, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {with_token}"}
    )


seen = {}
with connect(token) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) AS trips, sum(total_amount) AS revenue FROM taxi_cdc.trips")
        trips, revenue = cur.fetchone()
        seen["query"] = [trips, str(revenue)]

        # a prepared statement, bound twice
        sql = "SELECT count(*) FROM taxi_cdc.trips WHERE payment_type = $1 AND fare_amount >= $2"
        cur.execute(sql, parameters=(1, 40))
        first = cur.fetchone()[0]
        cur.execute(sql, parameters=(2, 10))
        second = cur.fetchone()[0]
        seen["prepared"] = [first, second]

        # a large result, read as it streams
        cur.execute("SELECT value FROM range(1000000)")
        reader = cur.fetch_record_batch()
        batches = rows = 0
        for batch in reader:
            batches += 1
            rows += batch.num_rows
        seen["large"] = {"rows": rows, "batches": batches}

        # past flight_max_rows: an error, not a silent cut
        try:
            cur.execute("SELECT value FROM range(5000000)")
            cur.fetch_arrow_table()
            seen["over_limit"] = "no error"
        except Exception as e:
            seen["over_limit"] = str(e)

        # a statement that would write
        try:
            cur.execute("DROP TABLE taxi_cdc.trips")
            seen["ddl"] = "no error"
        except Exception as e:
            seen["ddl"] = str(e)

    # metadata
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    seen["catalogs"] = [c["catalog_name"] for c in objects]
    seen["tables"] = sorted(
        f'{s["db_schema_name"]}.{t["table_name"]}'
        for c in objects
        for s in c["catalog_db_schemas"] or []
        for t in s["db_schema_tables"] or []
    )
    schema = conn.adbc_get_table_schema("trips", db_schema_filter="taxi_cdc")
    seen["trips_columns"] = schema.names
    info = conn.adbc_get_info()
    seen["vendor"] = info.get("vendor_name")

    # a query cancelled while it runs
    with conn.cursor() as cur:
        outcome = {}

        def run():
            started = time.monotonic()
            try:
                cur.execute("SELECT count(*) FROM range(100000000000)")
                cur.fetchall()
                outcome["result"] = "finished"
            except Exception as e:
                outcome["result"] = str(e)
            outcome["seconds"] = time.monotonic() - started

        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(0.7)
        cur.adbc_cancel()
        worker.join(30)
        seen["cancelled"] = outcome if not worker.is_alive() else {"result": "still running"}
        # the server stopped working on it: no CPU spent in the 2 s after
        time.sleep(0.5)
        before = cpu_seconds(server)
        time.sleep(2)
        seen["cpu_after_cancel"] = cpu_seconds(server) - before

# a wrong token
try:
    with connect(token + "x") as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchall()
    seen["bad_token"] = "no error"
except Exception as e:
    seen["bad_token"] = str(e)

print(json.dumps(seen, default=str))
