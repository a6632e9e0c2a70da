-- A dense zone x hour grid (hours with no pickup are 0, not missing), so
-- that LAG over the hour order is a lag in hours. Rolling means cover the
-- hours before, never the hour itself (no label leakage); a lag or mean
-- reaching before the first hour is null.
WITH counts AS (
    SELECT pickup_zone_id AS zone_id,
           date_trunc('hour', pickup_datetime) AS hour,
           count(*) AS pickups
    FROM taxi_cdc.trips
    GROUP BY 1, 2
),
span AS (
    SELECT min(hour) AS first_hour, max(hour) AS last_hour FROM counts
),
hours AS (
    SELECT unnest(range(first_hour, last_hour + INTERVAL '1 hour', INTERVAL '1 hour')) AS hour
    FROM span
),
zones AS (
    SELECT DISTINCT zone_id FROM counts
),
grid AS (
    SELECT z.zone_id, h.hour, coalesce(c.pickups, 0) AS pickups
    FROM zones z
    CROSS JOIN hours h
    LEFT JOIN counts c ON c.zone_id = z.zone_id AND c.hour = h.hour
),
features AS (
    SELECT zone_id,
           hour,
           pickups,
           lag(pickups, 1) OVER by_hour AS pickups_lag_1h,
           lag(pickups, 24) OVER by_hour AS pickups_lag_24h,
           lag(pickups, 168) OVER by_hour AS pickups_lag_168h,
           CASE WHEN row_number() OVER by_hour > 3 THEN
               avg(CAST(pickups AS DOUBLE)) OVER (PARTITION BY zone_id ORDER BY hour ROWS BETWEEN 3 PRECEDING AND 1 PRECEDING)
           END AS pickups_mean_3h,
           CASE WHEN row_number() OVER by_hour > 24 THEN
               avg(CAST(pickups AS DOUBLE)) OVER (PARTITION BY zone_id ORDER BY hour ROWS BETWEEN 24 PRECEDING AND 1 PRECEDING)
           END AS pickups_mean_24h
    FROM grid
    WINDOW by_hour AS (PARTITION BY zone_id ORDER BY hour)
)
SELECT f.zone_id,
       f.hour,
       f.pickups,
       f.pickups_lag_1h,
       f.pickups_lag_24h,
       f.pickups_lag_168h,
       f.pickups_mean_3h,
       f.pickups_mean_24h,
       CAST(date_part('hour', f.hour) AS INT) AS hour_of_day,
       -- 0 = Sunday
       CAST(date_part('dow', f.hour) AS INT) AS day_of_week,
       h.day IS NOT NULL AS is_holiday,
       w.temperature_c,
       w.precipitation_mm,
       w.condition AS weather_condition
FROM features f
LEFT JOIN job.sources.holidays h ON CAST(h.day AS DATE) = CAST(f.hour AS DATE)
LEFT JOIN weather.hourly_weather w ON w.hour = f.hour
ORDER BY f.hour, f.zone_id
