-- The weather is the pickup hour's; a trip outside the weather table's
-- span has null weather rather than being dropped.
SELECT t.trip_id,
       t.pickup_datetime,
       CAST(t.trip_distance AS DOUBLE) AS trip_distance,
       (date_part('epoch', t.dropoff_datetime) - date_part('epoch', t.pickup_datetime)) / 60.0
           AS duration_minutes,
       CAST(date_part('hour', t.pickup_datetime) AS INT) AS pickup_hour,
       -- 0 = Sunday
       CAST(date_part('dow', t.pickup_datetime) AS INT) AS day_of_week,
       t.pickup_zone_id,
       t.dropoff_zone_id,
       CAST(t.passenger_count AS INT) AS passenger_count,
       w.temperature_c,
       w.precipitation_mm,
       w.condition AS weather_condition,
       CAST(t.fare_amount AS DOUBLE) AS fare_amount
FROM taxi_cdc.trips t
LEFT JOIN weather.hourly_weather w ON w.hour = date_trunc('hour', t.pickup_datetime)
ORDER BY t.trip_id
