-- The taxi company's source schema in Postgres, as Debezium captures it.
--
-- No foreign keys from trips to the lookup tables: the source system accepts
-- trips for vendors and payment types it does not know yet, and referential
-- integrity is checked downstream by floe's data-quality job.
--
-- trips keeps REPLICA IDENTITY DEFAULT on purpose: Debezium then sends no
-- before-image on updates and only the key on deletes, so floe must not rely
-- on before-images to apply changes.

CREATE TABLE IF NOT EXISTS vendors (
    vendor_id  integer PRIMARY KEY,
    name       text NOT NULL
);

CREATE TABLE IF NOT EXISTS payment_types (
    payment_type_id smallint PRIMARY KEY,
    description     text NOT NULL
);

CREATE TABLE IF NOT EXISTS trips (
    trip_id          bigint PRIMARY KEY,
    vendor_id        integer NOT NULL,
    pickup_datetime  timestamp NOT NULL,
    dropoff_datetime timestamp NOT NULL,
    pickup_zone_id   integer NOT NULL,
    dropoff_zone_id  integer NOT NULL,
    passenger_count  smallint,
    trip_distance    numeric(8, 2),
    fare_amount      numeric(10, 2),
    tip_amount       numeric(10, 2),
    total_amount     numeric(10, 2),
    payment_type     smallint,
    -- free-form driver notes; large values are stored out of line (TOAST)
    notes            text
);
ALTER TABLE trips REPLICA IDENTITY DEFAULT;
