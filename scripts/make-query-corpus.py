#!/usr/bin/env python3
"""Writes tests/fixtures/queries/corpus.sql: the analyst queries the
differential SQL test (tests/e2e/sql_differential.rs) runs with floe's
DataFusion session and with DuckDB 1.5.5 on the same lake (the quickstart's
tables, the jobs' tables and the type test's tables), expecting equal
results.

Generated: every column family (integers, decimals, floating point, text,
booleans, dates, timestamps, timestamps with zone, times, binary) compared
with literals of every family an analyst would compare it with, through
each comparison operator. Written out below: casts, NULL tests, IN lists,
BETWEEN, LIKE, date and time arithmetic, joins with the zones table,
windows, aggregates and time travel.

Format: each query starts with `-- q: NAME`; `-- duckdb: SQL` (one line)
gives DuckDB's spelling where the dialects differ (time travel, bytes as
hex); queries end
with `;`. `{metadata:ns.table}` and `{first_snapshot:ns.table}` are filled
in by the test. A query's rows are compared in order when it ends with an
ORDER BY, else as a multiset.

Usage: scripts/make-query-corpus.py > tests/fixtures/queries/corpus.sql
"""

# (table, column, family)
COLUMNS = [
    ("taxi_cdc.trips", "trip_id", "int"),
    ("taxi_cdc.trips", "passenger_count", "int"),
    ("taxi_cdc.trips", "pickup_zone_id", "int"),
    ("taxi_cdc.trips", "fare_amount", "decimal"),
    ("taxi_cdc.trips", "trip_distance", "decimal"),
    ("taxi_cdc.trips", "congestion_surcharge", "decimal"),
    ("ml.fare_prediction_features", "fare_amount", "float"),
    ("ml.demand_prediction_features", "temperature_c", "float"),
    ("types_cdc.wide", "c_real", "float"),
    ("types_cdc.wide", "c_smallint", "int"),
    ("types_cdc.wide", "c_numeric", "decimal"),
    ("taxi_cdc.trips", "notes", "text"),
    ("reference.taxi_zones", "zone", "text"),
    ("types_cdc.wide", "c_text", "text"),
    ("ml.demand_prediction_features", "is_holiday", "bool"),
    ("quality.check_results", "passed", "bool"),
    ("analytics.zone_performance_metrics", "day", "date"),
    ("types_cdc.wide", "c_date", "date"),
    ("taxi_cdc.trips", "pickup_datetime", "timestamp"),
    ("types_cdc.wide", "c_timestamp", "timestamp"),
    ("types_cdc.wide", "c_timestamptz", "timestamptz"),
    ("floe_meta.job_runs", "started_at", "timestamptz"),
    ("types_cdc.wide", "c_time", "time"),
]

# literals of each family an analyst compares a column family with. Not
# here: a quoted fraction beside an integer (PostgreSQL and floe refuse
# '10.5' as an integer, DuckDB rounds it; tests/e2e/sql.rs checks floe's
# error), and an infinite date beside a timestamp (neither DuckDB nor
# DataFusion can widen it; PostgreSQL can).
LITERALS = {
    "int": ["10", "9007199254740993", "10.5", "2.5e1", "'10'", "CAST(10 AS DECIMAL(5,1))", "-1"],
    "decimal": ["10", "10.5", "2.5e1", "'10.5'", "'10'", "CAST(10.25 AS DECIMAL(6,2))", "0"],
    "float": ["10", "10.5", "2.5e1", "'10.5'", "-1", "0"],
    "text": ["'Airport'", "''", "'a'", "'JFK Airport'"],
    "bool": ["true", "false"],
    "date": ["DATE '2024-03-05'", "'2024-03-05'", "TIMESTAMP '2024-03-05 00:00:00'", "DATE '2000-01-01'"],
    "timestamp": ["TIMESTAMP '2024-03-05 12:00:00'", "DATE '2024-03-05'", "'2024-03-05 12:00:00'", "'2024-03-05'"],
    "timestamptz": ["TIMESTAMPTZ '2024-03-05 12:00:00+00'", "TIMESTAMPTZ '2024-02-29 08:15:10.654321+00'", "'2024-03-05 12:00:00+00'"],
    "time": ["TIME '12:00:00'", "'12:00:00'", "TIME '23:59:59.999999'"],
}

OPS = {
    "int": ["=", "<", ">=", "<>"],
    "decimal": ["=", "<", ">="],
    "float": ["<", ">="],
    "text": ["=", "<", "<>"],
    "bool": ["=", "<>"],
    "date": ["=", "<", ">="],
    "timestamp": ["<", ">="],
    "timestamptz": ["<", "="],
    "time": ["<", "="],
}


def generated():
    n = 0
    for table, column, family in COLUMNS:
        for literal in LITERALS[family]:
            if column == "c_date" and literal.startswith("TIMESTAMP"):
                continue
            for op in OPS[family]:
                n += 1
                short = table.split(".")[1]
                yield (f"compare {short}.{column} {op} {literal}",
                       f"SELECT count(*) FROM {table} WHERE {column} {op} {literal}")
    # BETWEEN and IN for each numeric and temporal family
    for table, column, family in COLUMNS:
        lits = LITERALS[family]
        if family in ("int", "decimal", "float", "date", "timestamp"):
            yield (f"between {column}", f"SELECT count(*) FROM {table} WHERE {column} BETWEEN {lits[-1] if family != 'date' else lits[3]} AND {lits[0]}")
        if family in ("int", "decimal", "text"):
            yield (f"in list {column}", f"SELECT count(*) FROM {table} WHERE {column} IN ({', '.join(lits[:3])})")


WRITTEN = [
    # casts, where and in the select list
    ("cast decimal to int in where", "SELECT count(*) FROM taxi_cdc.trips WHERE CAST(fare_amount AS INT) = 10"),
    ("cast decimal to bigint in where", "SELECT count(*) FROM taxi_cdc.trips WHERE CAST(total_amount AS BIGINT) = 20"),
    ("cast decimal to double below zero", "SELECT count(*) FROM taxi_cdc.trips WHERE CAST(fare_amount AS DOUBLE) < 0"),
    ("cast decimal to double compared", "SELECT count(*) FROM taxi_cdc.trips WHERE CAST(fare_amount AS DOUBLE) >= 30.25"),
    ("cast decimal to fewer places", "SELECT count(*) FROM taxi_cdc.trips WHERE CAST(fare_amount AS DECIMAL(10,1)) = 12.5"),
    ("cast decimal to text", "SELECT count(*) FROM taxi_cdc.trips WHERE CAST(fare_amount AS VARCHAR) LIKE '1_.5%'"),
    ("cast int to text", "SELECT count(*) FROM taxi_cdc.trips WHERE CAST(passenger_count AS VARCHAR) = '2'"),
    ("cast timestamp to date", "SELECT count(*) FROM taxi_cdc.trips WHERE CAST(pickup_datetime AS DATE) = DATE '2024-03-05'"),
    ("cast text to int", "SELECT count(*) FROM taxi_cdc.payment_types WHERE CAST(CAST(payment_type_id AS VARCHAR) AS INT) = 2"),
    ("cast double to int", "SELECT count(*) FROM ml.fare_prediction_features WHERE CAST(fare_amount AS INT) = 12"),
    ("cast values decimal to int", "SELECT trip_id, CAST(fare_amount AS INT) AS fare FROM taxi_cdc.trips WHERE trip_id <= 50 ORDER BY trip_id"),
    ("cast values negative decimal", "SELECT CAST(CAST(-10.5 AS DECIMAL(5,2)) AS INT), CAST(CAST(-10.49 AS DECIMAL(5,2)) AS INT), CAST(CAST(10.5 AS DECIMAL(5,2)) AS INT)"),
    ("cast values decimal scale", "SELECT trip_id, CAST(fare_amount AS DECIMAL(10,1)) FROM taxi_cdc.trips WHERE trip_id BETWEEN 100 AND 140 ORDER BY trip_id"),
    ("cast values timestamp to date", "SELECT CAST(pickup_datetime AS DATE) AS d, count(*) FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1"),
    ("cast values int to double", "SELECT sum(CAST(passenger_count AS DOUBLE)) FROM taxi_cdc.trips"),
    ("cast in group by", "SELECT CAST(total_amount AS BIGINT) AS t, count(*) FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1"),
    ("cast in having", "SELECT pickup_zone_id, count(*) FROM taxi_cdc.trips GROUP BY 1 HAVING CAST(sum(fare_amount) AS INT) > 2000 ORDER BY 1"),
    ("try cast text", "SELECT count(*) FROM taxi_cdc.trips WHERE TRY_CAST(notes AS INT) IS NULL"),
    # NULL tests
    ("is null added column", "SELECT count(*) FROM taxi_cdc.trips WHERE congestion_surcharge IS NULL"),
    ("is not null added column", "SELECT count(*) FROM taxi_cdc.trips WHERE congestion_surcharge IS NOT NULL"),
    ("is null notes", "SELECT count(*) FROM taxi_cdc.trips WHERE notes IS NULL"),
    ("is null and", "SELECT count(*) FROM taxi_cdc.trips WHERE notes IS NULL AND congestion_surcharge IS NOT NULL"),
    ("is null or", "SELECT count(*) FROM taxi_cdc.trips WHERE notes IS NOT NULL OR fare_amount > 50"),
    ("coalesce", "SELECT sum(coalesce(congestion_surcharge, 0)) FROM taxi_cdc.trips"),
    ("nullif", "SELECT count(nullif(passenger_count, 1)) FROM taxi_cdc.trips"),
    ("count column vs star", "SELECT count(*), count(congestion_surcharge), count(notes) FROM taxi_cdc.trips"),
    ("is distinct from", "SELECT count(*) FROM taxi_cdc.trips WHERE congestion_surcharge IS DISTINCT FROM 2.50"),
    ("null in wide", "SELECT count(*) FROM types_cdc.wide WHERE c_int IS NULL"),
    # IN lists
    ("in ints", "SELECT count(*) FROM taxi_cdc.trips WHERE payment_type IN (1, 2)"),
    ("not in ints", "SELECT count(*) FROM taxi_cdc.trips WHERE payment_type NOT IN (1, 2)"),
    ("in decimals", "SELECT count(*) FROM taxi_cdc.trips WHERE fare_amount IN (10.5, 12.25, 40.00)"),
    ("in strings", "SELECT count(*) FROM reference.taxi_zones WHERE borough IN ('Queens', 'Bronx')"),
    ("in quoted numbers", "SELECT count(*) FROM taxi_cdc.trips WHERE vendor_id IN ('1', '3')"),
    ("in subquery", "SELECT count(*) FROM taxi_cdc.trips WHERE pickup_zone_id IN (SELECT location_id FROM reference.taxi_zones WHERE borough = 'Manhattan')"),
    ("not in subquery", "SELECT count(*) FROM taxi_cdc.trips WHERE pickup_zone_id NOT IN (SELECT location_id FROM reference.taxi_zones WHERE borough = 'Manhattan')"),
    ("exists", "SELECT count(*) FROM taxi_cdc.vendors v WHERE EXISTS (SELECT 1 FROM taxi_cdc.trips t WHERE t.vendor_id = v.vendor_id)"),
    # BETWEEN
    ("between decimals", "SELECT count(*) FROM taxi_cdc.trips WHERE fare_amount BETWEEN 10 AND 11"),
    ("between quoted", "SELECT count(*) FROM taxi_cdc.trips WHERE fare_amount BETWEEN '10' AND '10.99'"),
    ("not between", "SELECT count(*) FROM taxi_cdc.trips WHERE trip_distance NOT BETWEEN 1 AND 5"),
    ("between timestamps", "SELECT count(*) FROM taxi_cdc.trips WHERE pickup_datetime BETWEEN TIMESTAMP '2024-03-03 00:00:00' AND TIMESTAMP '2024-03-04 23:59:59'"),
    ("between dates", "SELECT count(*) FROM analytics.zone_performance_metrics WHERE day BETWEEN DATE '2024-03-02' AND DATE '2024-03-04'"),
    # LIKE
    ("like prefix", "SELECT count(*) FROM reference.taxi_zones WHERE zone LIKE 'East%'"),
    ("like suffix", "SELECT count(*) FROM reference.taxi_zones WHERE zone LIKE '%Park'"),
    ("like inner", "SELECT count(*) FROM reference.taxi_zones WHERE zone LIKE '%Airport%'"),
    ("like underscore", "SELECT count(*) FROM reference.taxi_zones WHERE zone LIKE 'J_K%'"),
    ("not like", "SELECT count(*) FROM reference.taxi_zones WHERE zone NOT LIKE '%a%'"),
    ("ilike", "SELECT count(*) FROM reference.taxi_zones WHERE zone ILIKE '%PARK%'"),
    ("like on notes", "SELECT count(*) FROM taxi_cdc.trips WHERE notes LIKE 'note%'"),
    ("like unicode", "SELECT count(*) FROM types_cdc.wide WHERE c_text LIKE '%wörld%'"),
    ("string functions", "SELECT location_id, upper(zone), lower(borough), length(zone) FROM reference.taxi_zones WHERE location_id <= 20 ORDER BY location_id"),
    ("substr and concat", "SELECT location_id, substr(zone, 1, 4) || '/' || service_zone FROM reference.taxi_zones WHERE location_id BETWEEN 100 AND 130 ORDER BY location_id"),
    ("trim and replace", "SELECT location_id, trim(replace(zone, '/', ' ')) FROM reference.taxi_zones WHERE zone LIKE '%/%' ORDER BY location_id"),
    # date and time arithmetic
    ("date_trunc hour", "SELECT date_trunc('hour', pickup_datetime) AS h, count(*) FROM taxi_cdc.trips WHERE pickup_datetime < TIMESTAMP '2024-03-02 00:00:00' GROUP BY 1 ORDER BY 1"),
    ("date_trunc day", "SELECT date_trunc('day', pickup_datetime) AS d, sum(total_amount) FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1"),
    ("date_trunc month", "SELECT date_trunc('month', pickup_datetime) AS m, count(*) FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1"),
    ("extract hour", "SELECT extract(hour FROM pickup_datetime) AS h, count(*) FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1"),
    ("extract dow", "SELECT extract(dow FROM pickup_datetime) AS d, count(*) FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1"),
    ("date_part year", "SELECT date_part('year', pickup_datetime) AS y, count(*) FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1"),
    ("interval add", "SELECT count(*) FROM taxi_cdc.trips WHERE dropoff_datetime > pickup_datetime + INTERVAL '30 minutes'"),
    ("interval subtract", "SELECT count(*) FROM taxi_cdc.trips WHERE pickup_datetime - INTERVAL '1 day' >= TIMESTAMP '2024-03-04 00:00:00'"),
    ("trip minutes", "SELECT trip_id, extract(epoch FROM dropoff_datetime - pickup_datetime) / 60 AS minutes FROM taxi_cdc.trips WHERE trip_id <= 30 ORDER BY trip_id"),
    ("epoch seconds", "SELECT trip_id, extract(epoch FROM pickup_datetime) FROM taxi_cdc.trips WHERE trip_id <= 10 ORDER BY trip_id"),
    ("date add days", "SELECT day + INTERVAL '1 day' AS next_day, count(*) FROM analytics.zone_performance_metrics GROUP BY 1 ORDER BY 1"),
    ("dates compared to timestamps", "SELECT count(*) FROM analytics.zone_performance_metrics WHERE day < TIMESTAMP '2024-03-03 12:00:00'"),
    ("timestamp to date range", "SELECT count(*) FROM taxi_cdc.trips WHERE pickup_datetime >= DATE '2024-03-03' AND pickup_datetime < DATE '2024-03-04'"),
    ("hour window", "SELECT date_trunc('hour', window_start) AS h, sum(trips) FROM realtime.trip_aggregations GROUP BY 1 ORDER BY 1 LIMIT 24"),
    ("infinite dates sort last", "SELECT id, c_date FROM types_cdc.wide WHERE c_date IS NOT NULL ORDER BY c_date, id"),
    ("infinite timestamps compared", "SELECT count(*) FROM types_cdc.wide WHERE c_timestamp > TIMESTAMP '3000-01-01 00:00:00'"),
    ("minus infinity compared", "SELECT count(*) FROM types_cdc.wide WHERE c_timestamptz < TIMESTAMPTZ '0001-01-01 00:00:00+00'"),
    ("times of day", "SELECT id, c_time FROM types_cdc.wide WHERE c_time IS NOT NULL ORDER BY c_time, id"),
    # joins with the zones table and lookups
    ("join zones", "SELECT z.borough, count(*) FROM taxi_cdc.trips t JOIN reference.taxi_zones z ON t.pickup_zone_id = z.location_id GROUP BY 1 ORDER BY 1"),
    ("join zones revenue", "SELECT z.borough, sum(t.total_amount) FROM taxi_cdc.trips t JOIN reference.taxi_zones z ON t.pickup_zone_id = z.location_id GROUP BY 1 ORDER BY 1"),
    ("left join zones", "SELECT count(*) FROM taxi_cdc.trips t LEFT JOIN reference.taxi_zones z ON t.dropoff_zone_id = z.location_id WHERE z.location_id IS NULL"),
    ("join two zones", "SELECT p.borough AS from_borough, d.borough AS to_borough, count(*) FROM taxi_cdc.trips t JOIN reference.taxi_zones p ON t.pickup_zone_id = p.location_id JOIN reference.taxi_zones d ON t.dropoff_zone_id = d.location_id GROUP BY 1, 2 ORDER BY 1, 2"),
    ("join vendors", "SELECT v.name, count(*) FROM taxi_cdc.trips t JOIN taxi_cdc.vendors v ON t.vendor_id = v.vendor_id GROUP BY 1 ORDER BY 1"),
    ("join payment types", "SELECT p.description, avg(t.tip_amount) FROM taxi_cdc.trips t JOIN taxi_cdc.payment_types p ON t.payment_type = p.payment_type_id GROUP BY 1 ORDER BY 1"),
    ("join metrics to zones", "SELECT z.zone, m.day, m.pickups FROM analytics.zone_performance_metrics m JOIN reference.taxi_zones z ON m.zone_id = z.location_id WHERE m.pickups > 20 ORDER BY m.day, z.zone"),
    ("semi join weather", "SELECT count(*) FROM taxi_cdc.trips t WHERE date_trunc('hour', t.pickup_datetime) IN (SELECT hour FROM weather.hourly_weather WHERE temperature_c > 5)"),
    ("cross join small", "SELECT v.vendor_id, p.payment_type_id FROM taxi_cdc.vendors v CROSS JOIN taxi_cdc.payment_types p ORDER BY 1, 2"),
    ("union", "SELECT vendor_id AS id FROM taxi_cdc.vendors UNION SELECT payment_type_id FROM taxi_cdc.payment_types ORDER BY 1"),
    ("union all", "SELECT count(*) FROM (SELECT trip_id FROM taxi_cdc.trips WHERE fare_amount > 40 UNION ALL SELECT trip_id FROM taxi_cdc.trips WHERE tip_amount > 8) u"),
    ("except", "SELECT location_id FROM reference.taxi_zones WHERE location_id < 20 EXCEPT SELECT pickup_zone_id FROM taxi_cdc.trips ORDER BY 1"),
    ("intersect", "SELECT location_id FROM reference.taxi_zones WHERE location_id < 30 INTERSECT SELECT dropoff_zone_id FROM taxi_cdc.trips ORDER BY 1"),
    # windows
    ("row_number", "SELECT trip_id, row_number() OVER (PARTITION BY vendor_id ORDER BY pickup_datetime, trip_id) AS n FROM taxi_cdc.trips WHERE trip_id <= 40 ORDER BY trip_id"),
    ("rank fares", "SELECT trip_id, rank() OVER (ORDER BY fare_amount DESC) AS r FROM taxi_cdc.trips WHERE trip_id <= 60 ORDER BY trip_id"),
    ("dense_rank", "SELECT trip_id, dense_rank() OVER (PARTITION BY payment_type ORDER BY passenger_count) FROM taxi_cdc.trips WHERE trip_id <= 60 ORDER BY trip_id"),
    ("lag", "SELECT trip_id, lag(fare_amount) OVER (ORDER BY trip_id) FROM taxi_cdc.trips WHERE trip_id <= 30 ORDER BY trip_id"),
    ("lead", "SELECT trip_id, lead(pickup_datetime, 2) OVER (ORDER BY trip_id) FROM taxi_cdc.trips WHERE trip_id <= 30 ORDER BY trip_id"),
    ("running sum", "SELECT day, zone_id, sum(pickups) OVER (PARTITION BY zone_id ORDER BY day ROWS UNBOUNDED PRECEDING) FROM analytics.zone_performance_metrics WHERE zone_id < 50 ORDER BY zone_id, day"),
    ("moving average", "SELECT window_start, avg(trips) OVER (ORDER BY window_start ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM realtime.trip_aggregations ORDER BY window_start LIMIT 50"),
    ("partition share", "SELECT trip_id, fare_amount / sum(fare_amount) OVER (PARTITION BY vendor_id) AS share FROM taxi_cdc.trips WHERE trip_id <= 25 ORDER BY trip_id"),
    ("first_value", "SELECT DISTINCT vendor_id, first_value(trip_id) OVER (PARTITION BY vendor_id ORDER BY pickup_datetime, trip_id) FROM taxi_cdc.trips ORDER BY 1"),
    ("ntile", "SELECT trip_id, ntile(4) OVER (ORDER BY trip_id) FROM taxi_cdc.trips WHERE trip_id <= 20 ORDER BY trip_id"),
    ("window count per zone", "SELECT pickup_zone_id, count(*) OVER (PARTITION BY pickup_zone_id) AS c FROM taxi_cdc.trips WHERE trip_id <= 100 ORDER BY trip_id"),
    ("top per group", "SELECT vendor_id, trip_id, fare_amount FROM (SELECT vendor_id, trip_id, fare_amount, row_number() OVER (PARTITION BY vendor_id ORDER BY fare_amount DESC, trip_id) AS n FROM taxi_cdc.trips) t WHERE n <= 3 ORDER BY vendor_id, n"),
    # aggregates
    ("count and sum", "SELECT count(*), sum(total_amount), sum(fare_amount), sum(tip_amount) FROM taxi_cdc.trips"),
    ("min max", "SELECT min(fare_amount), max(fare_amount), min(pickup_datetime), max(pickup_datetime) FROM taxi_cdc.trips"),
    ("avg decimal", "SELECT avg(fare_amount), avg(trip_distance) FROM taxi_cdc.trips"),
    ("avg by vendor", "SELECT vendor_id, avg(total_amount), count(*) FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1"),
    ("count distinct", "SELECT count(DISTINCT pickup_zone_id), count(DISTINCT dropoff_zone_id) FROM taxi_cdc.trips"),
    ("group by two", "SELECT vendor_id, payment_type, count(*), sum(fare_amount) FROM taxi_cdc.trips GROUP BY 1, 2 ORDER BY 1, 2"),
    ("having count", "SELECT pickup_zone_id, count(*) FROM taxi_cdc.trips GROUP BY 1 HAVING count(*) > 100 ORDER BY 1"),
    ("having sum", "SELECT dropoff_zone_id, sum(total_amount) FROM taxi_cdc.trips GROUP BY 1 HAVING sum(total_amount) > 3000 ORDER BY 1"),
    ("stddev", "SELECT vendor_id, stddev(CAST(fare_amount AS DOUBLE)) FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1"),
    ("filtered aggregate", "SELECT count(*) FILTER (WHERE payment_type = 1), count(*) FILTER (WHERE payment_type = 2) FROM taxi_cdc.trips"),
    ("case when", "SELECT CASE WHEN fare_amount < 10 THEN 'low' WHEN fare_amount < 30 THEN 'mid' ELSE 'high' END AS band, count(*) FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1"),
    ("round money", "SELECT vendor_id, round(sum(total_amount), 1) FROM taxi_cdc.trips GROUP BY 1 ORDER BY 1"),
    ("arithmetic on decimals", "SELECT trip_id, fare_amount + tip_amount, total_amount - fare_amount, fare_amount * 2, tip_amount / 2 FROM taxi_cdc.trips WHERE trip_id <= 20 ORDER BY trip_id"),
    ("percent tip", "SELECT trip_id, round(tip_amount * 100 / fare_amount, 2) FROM taxi_cdc.trips WHERE trip_id <= 20 AND fare_amount > 0 ORDER BY trip_id"),
    ("abs floor ceil", "SELECT trip_id, abs(fare_amount - 20), floor(fare_amount), ceil(fare_amount) FROM taxi_cdc.trips WHERE trip_id <= 20 ORDER BY trip_id"),
    ("float aggregates", "SELECT avg(temperature_c), min(temperature_c), max(temperature_c), sum(precipitation_mm) FROM weather.hourly_weather"),
    ("bool aggregates", "SELECT is_holiday, count(*), avg(pickups) FROM ml.demand_prediction_features GROUP BY 1 ORDER BY 1"),
    ("bool filter", "SELECT count(*) FROM ml.demand_prediction_features WHERE is_holiday"),
    ("bool not", "SELECT count(*) FROM ml.demand_prediction_features WHERE NOT is_holiday"),
    ("quality checks", "SELECT check_name, passed, failed_count FROM quality.check_results ORDER BY check_name"),
    ("job metrics", "SELECT zone_id, day, pickups, revenue FROM analytics.zone_performance_metrics ORDER BY pickups DESC, zone_id, day LIMIT 10"),
    ("windows table", "SELECT window_start, trips, revenue FROM realtime.trip_aggregations ORDER BY trips DESC, window_start LIMIT 10"),
    ("features lags", "SELECT zone_id, hour, pickups, pickups_lag_1h, pickups_lag_24h FROM ml.demand_prediction_features WHERE zone_id = 132 ORDER BY hour LIMIT 30"),
    ("distinct", "SELECT DISTINCT passenger_count FROM taxi_cdc.trips ORDER BY 1"),
    ("limit offset", "SELECT trip_id FROM taxi_cdc.trips ORDER BY trip_id LIMIT 5 OFFSET 100"),
    ("order by desc nulls", "SELECT trip_id, congestion_surcharge FROM taxi_cdc.trips WHERE trip_id <= 30 ORDER BY congestion_surcharge DESC NULLS LAST, trip_id"),
    ("subquery scalar", "SELECT count(*) FROM taxi_cdc.trips WHERE fare_amount > (SELECT avg(fare_amount) FROM taxi_cdc.trips)"),
    ("cte", "WITH daily AS (SELECT CAST(pickup_datetime AS DATE) AS d, count(*) AS n FROM taxi_cdc.trips GROUP BY 1) SELECT d, n FROM daily WHERE n > 1000 ORDER BY d"),
    ("wide values", "SELECT id, c_smallint, c_int, c_bigint, c_numeric, c_text, c_varchar FROM types_cdc.wide ORDER BY id"),
    ("wide floats", "SELECT id, c_real, c_double FROM types_cdc.wide WHERE c_real IS NOT NULL AND NOT isnan(c_real) ORDER BY id"),
    ("wide nan counted", "SELECT count(*) FROM types_cdc.wide WHERE isnan(c_double)"),
    ("wide binary", "SELECT id, encode(c_bytea, 'hex') FROM types_cdc.wide WHERE c_bytea IS NOT NULL ORDER BY id",
     "SELECT id, lower(hex(c_bytea)) FROM types_cdc.wide WHERE c_bytea IS NOT NULL ORDER BY id"),
    ("wide decimals", "SELECT id, c_numeric, c_money FROM types_cdc.wide ORDER BY id"),
    ("keyless duplicates", "SELECT name, qty, count(*) FROM types_cdc.keyless GROUP BY 1, 2 ORDER BY 1, 2"),
    ("composite key", "SELECT region, seq, label FROM types_cdc.composite_key ORDER BY region, seq"),
    ("evolved columns", "SELECT id, a, e_renamed, n_default, n_required, n_plain FROM types_cdc.evolving ORDER BY id"),
    # time travel: floe's as_of and DuckDB's snapshot parameter
    ("time travel first snapshot", "SELECT count(*) FROM as_of('taxi_cdc.trips', {first_snapshot:taxi_cdc.trips})",
     "SELECT count(*) FROM iceberg_scan('{metadata:taxi_cdc.trips}', snapshot_from_id => {first_snapshot:taxi_cdc.trips})"),
    ("time travel sum", "SELECT sum(fare_amount) FROM as_of('taxi_cdc.trips', {first_snapshot:taxi_cdc.trips})",
     "SELECT sum(fare_amount) FROM iceberg_scan('{metadata:taxi_cdc.trips}', snapshot_from_id => {first_snapshot:taxi_cdc.trips})"),
    ("time travel filtered", "SELECT count(*) FROM as_of('taxi_cdc.trips', {first_snapshot:taxi_cdc.trips}) WHERE fare_amount > 20",
     "SELECT count(*) FROM iceberg_scan('{metadata:taxi_cdc.trips}', snapshot_from_id => {first_snapshot:taxi_cdc.trips}) WHERE fare_amount > 20"),
    ("time travel vendors", "SELECT vendor_id, name FROM as_of('taxi_cdc.vendors', {first_snapshot:taxi_cdc.vendors}) ORDER BY vendor_id",
     "SELECT vendor_id, name FROM iceberg_scan('{metadata:taxi_cdc.vendors}', snapshot_from_id => {first_snapshot:taxi_cdc.vendors}) ORDER BY vendor_id"),
    ("time travel evolving", "SELECT id, a FROM as_of('types_cdc.evolving', {first_snapshot:types_cdc.evolving}) ORDER BY id",
     "SELECT id, a FROM iceberg_scan('{metadata:types_cdc.evolving}', snapshot_from_id => {first_snapshot:types_cdc.evolving}) ORDER BY id"),
]


def main():
    print("-- Analyst queries for the differential SQL test; written by")
    print("-- scripts/make-query-corpus.py (edit that, not this file).")
    n = 0
    for entry in list(generated()) + WRITTEN:
        name, sql = entry[0], entry[1]
        n += 1
        print(f"\n-- q: {n:03d} {name}")
        if len(entry) > 2:
            print(f"-- duckdb: {entry[2]}")
        print(f"{sql};")


if __name__ == "__main__":
    main()
