-- One TLC yellow-taxi file (job.sources.file) in the lake's column names
-- and types. The casts accept both the Parquet files' types and the
-- strings a CSV gives; Airport_fee is spelled airport_fee in some years,
-- so it is left out.
SELECT CAST("VendorID" AS INT) AS vendor_id,
       CAST(tpep_pickup_datetime AS TIMESTAMP) AS pickup_datetime,
       CAST(tpep_dropoff_datetime AS TIMESTAMP) AS dropoff_datetime,
       CAST(passenger_count AS INT) AS passenger_count,
       CAST(trip_distance AS DECIMAL(8, 2)) AS trip_distance,
       CAST("RatecodeID" AS INT) AS rate_code_id,
       store_and_fwd_flag,
       CAST("PULocationID" AS INT) AS pickup_zone_id,
       CAST("DOLocationID" AS INT) AS dropoff_zone_id,
       CAST(payment_type AS INT) AS payment_type,
       CAST(fare_amount AS DECIMAL(10, 2)) AS fare_amount,
       CAST(extra AS DECIMAL(10, 2)) AS extra,
       CAST(mta_tax AS DECIMAL(10, 2)) AS mta_tax,
       CAST(tip_amount AS DECIMAL(10, 2)) AS tip_amount,
       CAST(tolls_amount AS DECIMAL(10, 2)) AS tolls_amount,
       CAST(improvement_surcharge AS DECIMAL(10, 2)) AS improvement_surcharge,
       CAST(total_amount AS DECIMAL(10, 2)) AS total_amount,
       CAST(congestion_surcharge AS DECIMAL(10, 2)) AS congestion_surcharge
FROM job.sources.file
