-- Incremental: job.changes.trips holds the trips inserted, updated (both
-- images) or deleted since the last run. Every day with a touched window
-- is recomputed whole from taxi_cdc.trips, so its partition is replaced
-- and a rerun gives the same rows. A touched window left with no trips
-- reports 0 trips rather than keeping its old figures. Money stays
-- decimal (exact sums, averages rounded to cents).
WITH touched AS (
    SELECT DISTINCT date_bin(INTERVAL '5 minutes', pickup_datetime, TIMESTAMP '2000-01-01 00:00:00')
           AS window_start
    FROM job.changes.trips
    WHERE pickup_datetime IS NOT NULL
),
touched_days AS (
    SELECT DISTINCT date_trunc('day', window_start) AS day FROM touched
),
windows AS (
    SELECT date_bin(INTERVAL '5 minutes', pickup_datetime, TIMESTAMP '2000-01-01 00:00:00')
               AS window_start,
           count(*) AS trips,
           sum(total_amount) AS revenue,
           round(avg(fare_amount), 2) AS avg_fare,
           round(avg(trip_distance), 2) AS avg_distance
    FROM taxi_cdc.trips
    WHERE date_trunc('day', pickup_datetime) IN (SELECT day FROM touched_days)
    GROUP BY 1
),
all_windows AS (
    SELECT window_start FROM windows
    UNION
    SELECT window_start FROM touched
)
SELECT a.window_start,
       a.window_start + INTERVAL '5 minutes' AS window_end,
       coalesce(w.trips, 0) AS trips,
       coalesce(w.revenue, 0) AS revenue,
       w.avg_fare,
       w.avg_distance
FROM all_windows a
LEFT JOIN windows w ON w.window_start = a.window_start
ORDER BY a.window_start
