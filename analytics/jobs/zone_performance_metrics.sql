-- One row per pickup zone and day. The peak-hour factor is the day's
-- busiest hour over its average hour: max(hourly pickups) / (pickups / 24).
-- Money and distances stay decimal: sums are exact, averages rounded to
-- cents.
WITH hourly AS (
    SELECT pickup_zone_id AS zone_id,
           date_trunc('day', pickup_datetime) AS day_start,
           date_part('hour', pickup_datetime) AS hour,
           count(*) AS pickups,
           sum(total_amount) AS revenue,
           sum(fare_amount) AS fares,
           sum(trip_distance) AS distance
    FROM taxi_cdc.trips
    GROUP BY 1, 2, 3
)
SELECT h.zone_id,
       CAST(h.day_start AS DATE) AS day,
       z.borough,
       z.zone,
       sum(h.pickups) AS pickups,
       sum(h.revenue) AS revenue,
       round(sum(h.fares) / sum(h.pickups), 2) AS avg_fare,
       round(sum(h.distance) / sum(h.pickups), 2) AS avg_distance,
       CAST(max(h.pickups) AS DOUBLE) / (CAST(sum(h.pickups) AS DOUBLE) / 24.0) AS peak_hour_factor
FROM hourly h
LEFT JOIN reference.taxi_zones z ON z.location_id = h.zone_id
GROUP BY h.zone_id, h.day_start, z.borough, z.zone
ORDER BY day, h.zone_id
