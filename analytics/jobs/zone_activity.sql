-- "Now" is the latest pickup in the lake, not the wall clock: the score is
-- the same whether the trips stream in live or are replayed later.
-- activity_score = trips touching the zone in the last hour / its average
-- hourly trips over the 24 hours before (at least 1, so a zone with no
-- history scores its raw count).
WITH clock AS (
    SELECT max(pickup_datetime) AS now FROM taxi_cdc.trips
),
events AS (
    SELECT pickup_zone_id AS zone_id, pickup_datetime AS at, 1 AS pickup, 0 AS dropoff,
           total_amount AS revenue
    FROM taxi_cdc.trips
    UNION ALL
    SELECT dropoff_zone_id, dropoff_datetime, 0 AS pickup, 1 AS dropoff,
           CAST(0 AS DECIMAL(10, 2)) AS revenue
    FROM taxi_cdc.trips
),
per_zone AS (
    SELECT e.zone_id,
           sum(CASE WHEN e.at > c.now - INTERVAL '1 hour' THEN e.pickup ELSE 0 END) AS pickups,
           sum(CASE WHEN e.at > c.now - INTERVAL '1 hour' THEN e.dropoff ELSE 0 END) AS dropoffs,
           sum(CASE WHEN e.at > c.now - INTERVAL '1 hour' THEN e.revenue ELSE 0 END) AS revenue,
           sum(CASE WHEN e.at <= c.now - INTERVAL '1 hour' THEN 1 ELSE 0 END) / 24.0
               AS baseline_hourly_trips
    FROM events e
    CROSS JOIN clock c
    WHERE e.at > c.now - INTERVAL '25 hours' AND e.at <= c.now
    GROUP BY e.zone_id
)
SELECT p.zone_id,
       z.borough,
       z.zone,
       c.now - INTERVAL '1 hour' AS window_start,
       c.now AS window_end,
       p.pickups,
       p.dropoffs,
       p.revenue,
       p.baseline_hourly_trips,
       (p.pickups + p.dropoffs) / greatest(p.baseline_hourly_trips, 1.0) AS activity_score
FROM per_zone p
CROSS JOIN clock c
LEFT JOIN reference.taxi_zones z ON z.location_id = p.zone_id
ORDER BY activity_score DESC, p.zone_id
