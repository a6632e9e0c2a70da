-- One row per check and run. failed_count counts the offending rows (or
-- missing columns, hours, windows); sample_keys lists up to five of them.
-- Severity error fails the run (fail_when in the manifest); warning is
-- reported only. Keys are built as `... || ''` so every branch of the
-- union has a plain text column (a bare column would carry its Parquet
-- field id, which DataFusion 53 refuses to union with one that has none).
WITH trips AS (
    SELECT trip_id, vendor_id, payment_type, pickup_zone_id, dropoff_zone_id,
           pickup_datetime, dropoff_datetime,
           CAST(fare_amount AS DOUBLE) AS fare,
           CAST(trip_distance AS DOUBLE) AS distance,
           (date_part('epoch', dropoff_datetime) - date_part('epoch', pickup_datetime)) / 60.0
               AS minutes
    FROM taxi_cdc.trips
),
required_columns AS (
    SELECT column_name, data_type FROM (VALUES
        ('trip_id', 'Int64'), ('vendor_id', 'Int32'), ('pickup_datetime', 'Timestamp'),
        ('dropoff_datetime', 'Timestamp'), ('pickup_zone_id', 'Int32'),
        ('dropoff_zone_id', 'Int32'), ('fare_amount', 'Decimal'), ('total_amount', 'Decimal'),
        ('trip_distance', 'Decimal')
    ) AS r(column_name, data_type)
),
bounds AS (
    SELECT approx_percentile_cont(0.25) WITHIN GROUP (ORDER BY fare) AS fare_q1,
           approx_percentile_cont(0.75) WITHIN GROUP (ORDER BY fare) AS fare_q3,
           approx_percentile_cont(0.25) WITHIN GROUP (ORDER BY distance) AS distance_q1,
           approx_percentile_cont(0.75) WITHIN GROUP (ORDER BY distance) AS distance_q3,
           approx_percentile_cont(0.25) WITHIN GROUP (ORDER BY minutes) AS minutes_q1,
           approx_percentile_cont(0.75) WITHIN GROUP (ORDER BY minutes) AS minutes_q3
    FROM trips
),
weather_span AS (
    SELECT min(hour) AS first_hour, max(hour) AS last_hour FROM weather.hourly_weather
),
expected_hours AS (
    SELECT unnest(range(first_hour, last_hour + INTERVAL '1 hour', INTERVAL '1 hour')) AS hour
    FROM weather_span
),
window_span AS (
    SELECT min(window_start) AS first_window, max(window_start) AS last_window
    FROM realtime.trip_aggregations
),
expected_windows AS (
    SELECT unnest(range(first_window, last_window + INTERVAL '5 minutes', INTERVAL '5 minutes'))
           AS window_start
    FROM window_span
),
failures AS (
    SELECT 'schema.trips_required_columns' AS check_name, 'taxi_cdc.trips' AS table_name,
           'error' AS severity, r.column_name || '' AS sample_key
    FROM required_columns r
    LEFT JOIN information_schema.columns c
      ON c.table_schema = 'taxi_cdc' AND c.table_name = 'trips'
     AND c.column_name = r.column_name
    WHERE c.column_name IS NULL OR strpos(c.data_type, r.data_type) <> 1
    UNION ALL
    SELECT 'nulls.trips_required_columns', 'taxi_cdc.trips', 'error', CAST(trip_id AS VARCHAR) || ''
    FROM trips
    WHERE trip_id IS NULL OR vendor_id IS NULL OR pickup_datetime IS NULL
       OR dropoff_datetime IS NULL OR pickup_zone_id IS NULL OR dropoff_zone_id IS NULL
       OR fare IS NULL
    UNION ALL
    SELECT 'integrity.trips_vendor', 'taxi_cdc.trips', 'error', CAST(t.trip_id AS VARCHAR) || ''
    FROM trips t LEFT JOIN taxi_cdc.vendors v ON v.vendor_id = t.vendor_id
    WHERE v.vendor_id IS NULL
    UNION ALL
    SELECT 'integrity.trips_payment_type', 'taxi_cdc.trips', 'error', CAST(t.trip_id AS VARCHAR) || ''
    FROM trips t LEFT JOIN taxi_cdc.payment_types p ON p.payment_type_id = t.payment_type
    WHERE t.payment_type IS NOT NULL AND p.payment_type_id IS NULL
    UNION ALL
    SELECT 'integrity.trips_zones', 'taxi_cdc.trips', 'error', CAST(t.trip_id AS VARCHAR) || ''
    FROM trips t
    LEFT JOIN reference.taxi_zones pz ON pz.location_id = t.pickup_zone_id
    LEFT JOIN reference.taxi_zones dz ON dz.location_id = t.dropoff_zone_id
    WHERE pz.location_id IS NULL OR dz.location_id IS NULL
    UNION ALL
    SELECT 'continuity.weather_hours', 'weather.hourly_weather', 'error', CAST(e.hour AS VARCHAR) || ''
    FROM expected_hours e LEFT JOIN weather.hourly_weather w ON w.hour = e.hour
    WHERE w.hour IS NULL
    UNION ALL
    SELECT 'continuity.trip_windows', 'realtime.trip_aggregations', 'warning',
           CAST(e.window_start AS VARCHAR) || ''
    FROM expected_windows e
    LEFT JOIN realtime.trip_aggregations a ON a.window_start = e.window_start
    WHERE a.window_start IS NULL
    UNION ALL
    -- on the decimal column itself: iceberg-datafusion 0.10.1 cannot push
    -- down a double literal compared with a decimal column
    SELECT 'range.fare_non_negative', 'taxi_cdc.trips', 'error', CAST(trip_id AS VARCHAR) || ''
    FROM taxi_cdc.trips WHERE fare_amount < 0
    UNION ALL
    SELECT 'range.duration_non_negative', 'taxi_cdc.trips', 'error', CAST(trip_id AS VARCHAR) || ''
    FROM trips WHERE minutes < 0
    UNION ALL
    SELECT 'outliers.fare', 'taxi_cdc.trips', 'warning', CAST(t.trip_id AS VARCHAR) || ''
    FROM trips t CROSS JOIN bounds b
    WHERE t.fare > b.fare_q3 + 3 * (b.fare_q3 - b.fare_q1)
       OR t.fare < b.fare_q1 - 3 * (b.fare_q3 - b.fare_q1)
    UNION ALL
    SELECT 'outliers.distance', 'taxi_cdc.trips', 'warning', CAST(t.trip_id AS VARCHAR) || ''
    FROM trips t CROSS JOIN bounds b
    WHERE t.distance > b.distance_q3 + 3 * (b.distance_q3 - b.distance_q1)
    UNION ALL
    SELECT 'outliers.duration', 'taxi_cdc.trips', 'warning', CAST(t.trip_id AS VARCHAR) || ''
    FROM trips t CROSS JOIN bounds b
    WHERE t.minutes > b.minutes_q3 + 3 * (b.minutes_q3 - b.minutes_q1)
),
checks AS (
    SELECT * FROM (VALUES
        ('schema.trips_required_columns', 'taxi_cdc.trips', 'error'),
        ('nulls.trips_required_columns', 'taxi_cdc.trips', 'error'),
        ('integrity.trips_vendor', 'taxi_cdc.trips', 'error'),
        ('integrity.trips_payment_type', 'taxi_cdc.trips', 'error'),
        ('integrity.trips_zones', 'taxi_cdc.trips', 'error'),
        ('continuity.weather_hours', 'weather.hourly_weather', 'error'),
        ('continuity.trip_windows', 'realtime.trip_aggregations', 'warning'),
        ('range.fare_non_negative', 'taxi_cdc.trips', 'error'),
        ('range.duration_non_negative', 'taxi_cdc.trips', 'error'),
        ('outliers.fare', 'taxi_cdc.trips', 'warning'),
        ('outliers.distance', 'taxi_cdc.trips', 'warning'),
        ('outliers.duration', 'taxi_cdc.trips', 'warning')
    ) AS c(check_name, table_name, severity)
),
failed AS (
    SELECT check_name,
           count(*) AS failed_count,
           array_to_string(array_slice(array_agg(sample_key ORDER BY sample_key), 1, 5), ',')
               AS sample_keys
    FROM failures
    GROUP BY check_name
)
SELECT job_run_id() AS run_id,
       now() AS checked_at,
       c.check_name,
       c.table_name,
       c.severity,
       coalesce(f.failed_count, 0) = 0 AS passed,
       coalesce(f.failed_count, 0) AS failed_count,
       coalesce(f.sample_keys, '') AS sample_keys
FROM checks c
LEFT JOIN failed f ON f.check_name = c.check_name
ORDER BY c.check_name
