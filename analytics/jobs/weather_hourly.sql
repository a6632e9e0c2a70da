-- One row per hour. Overwrite-partitions: a refetch replaces the days it
-- covers and leaves older days as they were.
SELECT hour,
       temperature_c,
       precipitation_mm,
       wind_speed_kmh,
       relative_humidity_pct,
       condition
FROM job.sources.weather
ORDER BY hour
