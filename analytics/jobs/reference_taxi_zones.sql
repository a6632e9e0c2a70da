-- NYC TLC Taxi Zone Lookup (analytics/data/taxi_zones.csv, 265 zones)
SELECT CAST(location_id AS INT) AS location_id,
       borough,
       zone,
       service_zone
FROM job.sources.zones
ORDER BY location_id
