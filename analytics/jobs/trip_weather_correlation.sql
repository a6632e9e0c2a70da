-- Every weather hour within the span of the trips counts, with zero trips
-- if none started in it: the correlation is over hours, and quiet hours
-- are part of what the weather explains.
WITH hourly_trips AS (
    SELECT date_trunc('hour', pickup_datetime) AS hour,
           count(*) AS trips,
           sum(fare_amount) AS fares
    FROM taxi_cdc.trips
    GROUP BY 1
),
span AS (
    SELECT min(hour) AS first_hour, max(hour) AS last_hour FROM hourly_trips
),
hours AS (
    SELECT CAST(date_part('hour', w.hour) AS INT) AS hour_of_day,
           w.condition,
           w.temperature_c,
           CAST(coalesce(t.trips, 0) AS DOUBLE) AS trips,
           t.fares
    FROM weather.hourly_weather w
    CROSS JOIN span s
    LEFT JOIN hourly_trips t ON t.hour = w.hour
    WHERE w.hour BETWEEN s.first_hour AND s.last_hour
)
SELECT hour_of_day,
       condition,
       count(*) AS hours,
       CAST(sum(trips) AS BIGINT) AS trips,
       round(sum(fares) / nullif(CAST(sum(trips) AS BIGINT), 0), 2) AS avg_fare,
       avg(temperature_c) AS avg_temperature_c,
       corr(temperature_c, trips) AS temperature_trips_correlation
FROM hours
GROUP BY hour_of_day, condition
ORDER BY hour_of_day, condition
