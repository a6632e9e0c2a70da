//! The taxi lake's jobs on a small known lake: trips applied as Debezium
//! changes (so late updates and deletes are position deletes, as in
//! production), weather fetched over HTTP from a local server in the
//! Open-Meteo format, every expected value worked out by hand in the
//! comments. Covers the incremental 5-minute windows (a late update moving
//! a trip between closed windows, a delete emptying one, a rerun changing
//! nothing), the feature tables, zone activity, and the quality job
//! passing on clean data and failing on planted errors.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use lakehouse::Lake;

use crate::jobs::{local_lake, ok};
use crate::stack::{repo, text};
use crate::taxi_cdc::{seed_reference, CdcTrips, Change, Trip};

const fn trip(
    id: i64,
    vendor: i32,
    (pickup, dropoff): (&'static str, &'static str),
    zones: (i32, i32),
    passengers: i32,
    money: (i64, i64, i64),
    payment: i32,
) -> Trip {
    Trip {
        id,
        vendor,
        pickup,
        dropoff,
        pickup_zone: zones.0,
        dropoff_zone: zones.1,
        passengers,
        distance: money.0,
        fare: money.1,
        total: money.2,
        payment,
    }
}

/// 2024-02-19 is Presidents' Day (a Monday); 02-20 a Tuesday.
/// (distance, fare, total) in hundredths.
const FIRST: [Trip; 5] = [
    trip(
        1,
        1,
        ("2024-02-19 08:01", "2024-02-19 08:16"),
        (132, 161),
        1,
        (1000, 4000, 5000),
        1,
    ),
    trip(
        2,
        2,
        ("2024-02-19 08:03", "2024-02-19 08:13"),
        (132, 236),
        2,
        (200, 1200, 1500),
        1,
    ),
    trip(
        3,
        1,
        ("2024-02-19 08:07", "2024-02-19 08:27"),
        (161, 132),
        1,
        (1500, 6000, 6500),
        2,
    ),
    trip(
        4,
        2,
        ("2024-02-19 09:30", "2024-02-19 09:50"),
        (161, 236),
        3,
        (300, 1500, 2000),
        1,
    ),
    trip(
        5,
        1,
        ("2024-02-20 08:02", "2024-02-20 08:12"),
        (132, 161),
        1,
        (400, 2000, 2500),
        2,
    ),
];

/// Late changes to the closed windows of 02-19: trip 2 picked up at 08:06
/// (window 08:00 to 08:05) with fare 14; trip 4 deleted (09:30 empties);
/// trip 6 inserted at 08:04.
fn late_changes() -> Vec<Change> {
    vec![
        Change::Upsert(trip(
            2,
            2,
            ("2024-02-19 08:06", "2024-02-19 08:13"),
            (132, 236),
            2,
            (200, 1400, 1500),
            1,
        )),
        Change::Delete(4),
        Change::Upsert(trip(
            6,
            2,
            ("2024-02-19 08:04", "2024-02-19 08:20"),
            (132, 161),
            1,
            (100, 1000, 1200),
            1,
        )),
    ]
}

/// 48 hours of 02-19 and 02-20 in Open-Meteo's hourly format: 10 C and
/// clear, except 08:00 on both days (cloudy, 5 C then 12 C) and 02-19
/// 09:00 (rain, 1.5 mm). `skip` leaves one hour out.
fn weather_json(skip: Option<&str>) -> String {
    let mut time = Vec::new();
    let (mut temp, mut precip, mut code) = (Vec::new(), Vec::new(), Vec::new());
    for day in ["2024-02-19", "2024-02-20"] {
        for h in 0..24 {
            let t = format!("{day}T{h:02}:00");
            if Some(t.as_str()) == skip {
                continue;
            }
            let (c, p, w) = match (day, h) {
                ("2024-02-19", 8) => (5.0, 0.0, 3),
                ("2024-02-20", 8) => (12.0, 0.0, 3),
                ("2024-02-19", 9) => (10.0, 1.5, 61),
                _ => (10.0, 0.0, 0),
            };
            time.push(format!("\"{t}\""));
            temp.push(format!("{c:.1}"));
            precip.push(format!("{p:.1}"));
            code.push(w.to_string());
        }
    }
    let n = time.len();
    let same = |v: &str| vec![v; n].join(",");
    format!(
        "{{\"latitude\":40.7,\"hourly\":{{\"time\":[{}],\"temperature_2m\":[{}],\"precipitation\":[{}],\"wind_speed_10m\":[{}],\"relative_humidity_2m\":[{}],\"weather_code\":[{}]}}}}",
        time.join(","),
        temp.join(","),
        precip.join(","),
        same("10.0"),
        same("60.0"),
        code.join(",")
    )
}

/// A static file server (python's http.server) on a free port.
struct HttpServer(Child, u16);

impl HttpServer {
    fn start(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // from here on, dropping the server (even by panicking) stops it
        let server = Self(child, port);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("http.server did not start");
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Env {
    config: PathBuf,
    jobs: PathBuf,
    weather_url: String,
}

impl Env {
    fn floe(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_floe"))
            .args(args)
            .args(["--config", self.config.to_str().unwrap()])
            .env("FLOE_JOBS_DIR", &self.jobs)
            .env("FLOE_WEATHER_URL", &self.weather_url)
            .output()
            .expect("floe runs")
    }

    fn run(&self, job: &str) -> String {
        ok(self.floe(&["jobs", "run", job]))
    }

    fn sql(&self, query: &str) -> String {
        ok(self.floe(&["sql", "--quiet", "--format", "csv", "-e", query]))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_taxi_jobs_on_a_known_lake() {
    let dir = std::env::temp_dir().join(format!("floe-e2e-taxi-jobs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/weather.json"), weather_json(None)).unwrap();
    std::fs::write(
        dir.join("www/weather-gap.json"),
        weather_json(Some("2024-02-19T13:00")),
    )
    .unwrap();
    let server = HttpServer::start(&dir.join("www"));
    let (config, lake_config) = local_lake(&dir);
    let lake = Lake::open(&lake_config).await.unwrap();
    seed_reference(&lake).await;
    let mut cdc = CdcTrips::new(&lake_config);
    cdc.apply(&FIRST.map(Change::Upsert)).await;
    let mut env = Env {
        config,
        jobs: repo().join("analytics/jobs"),
        weather_url: format!("http://127.0.0.1:{}/weather.json", server.1),
    };

    // --- realtime.trip_aggregations, incremental ---------------------------
    let first = env.run("trip_aggregations");
    assert!(first.contains("4 rows written"), "{first}");
    assert!(first.contains("all of taxi_cdc.trips"), "{first}");
    let windows = "SELECT CAST(window_start AS VARCHAR) AS w, CAST(window_end AS VARCHAR) AS e, \
                   trips, revenue, avg_fare, avg_distance FROM realtime.trip_aggregations ORDER BY 1";
    // money in decimals, to the cent (sums exact, averages rounded).
    // 08:00 has trips 1 and 2 (revenue 50 + 15, fares 40 and 12,
    // distances 10 and 2); 08:05 trip 3; 09:30 trip 4; 02-20 08:00 trip 5
    assert_eq!(
        env.sql(windows),
        "w,e,trips,revenue,avg_fare,avg_distance\n\
         2024-02-19T08:00:00,2024-02-19T08:05:00,2,65.00,26.00,6.00\n\
         2024-02-19T08:05:00,2024-02-19T08:10:00,1,65.00,60.00,15.00\n\
         2024-02-19T09:30:00,2024-02-19T09:35:00,1,20.00,15.00,3.00\n\
         2024-02-20T08:00:00,2024-02-20T08:05:00,1,25.00,20.00,4.00\n"
    );
    cdc.apply(&late_changes()).await;
    let second = env.run("trip_aggregations");
    // changed rows: trip 2 removed and added, trip 4 removed, trip 6 added;
    // only 02-19 is recomputed: 3 windows, 02-20 is left as it was
    assert!(
        second.contains("incremental: 4 changed rows of taxi_cdc.trips"),
        "{second}"
    );
    assert!(second.contains("3 rows written"), "{second}");
    // 08:00: trips 1 and 6 (50 + 12; fares 40, 10; distances 10, 1);
    // 08:05: trips 3 and 2 (65 + 15; fares 60, 14; distances 15, 2);
    // 09:30 emptied by the delete
    let after = "w,e,trips,revenue,avg_fare,avg_distance\n\
                 2024-02-19T08:00:00,2024-02-19T08:05:00,2,62.00,25.00,5.50\n\
                 2024-02-19T08:05:00,2024-02-19T08:10:00,2,80.00,37.00,8.50\n\
                 2024-02-19T09:30:00,2024-02-19T09:35:00,0,0.00,,\n\
                 2024-02-20T08:00:00,2024-02-20T08:05:00,1,25.00,20.00,4.00\n";
    assert_eq!(env.sql(windows), after);
    let third = env.run("trip_aggregations");
    assert!(third.contains("incremental: 0 changed rows"), "{third}");
    assert!(third.contains("0 rows written"), "{third}");
    assert_eq!(env.sql(windows), after, "a rerun changes nothing");

    // --- across compactions: the source compacted by floe (a `replace`
    // snapshot, no rows changed), the target rewritten by another engine
    // (pyiceberg's overwrite, carrying none of floe's lineage); then one
    // new trip. The job still runs incrementally, on that trip alone.
    // (The trip is deleted again after: the jobs below see trips 1 to 6.)
    let trips = iceberg::TableIdent::from_strs(["taxi_cdc", "trips"]).unwrap();
    let policy = lakehouse::maintain::CompactPolicy {
        min_small_files: 2,
        max_deleted_ratio: 0.0,
        ..Default::default()
    };
    let compacted = lakehouse::maintain::compact(&lake, &trips, &policy, false)
        .await
        .unwrap();
    assert!(compacted.snapshot_id.is_some(), "{compacted:?}");
    let (ops, _) =
        crate::foreign::foreign_commit(&dir, "realtime.trip_aggregations", &["--rewrite".into()]);
    assert_eq!(ops, ["delete", "append"]);
    cdc.apply(&[Change::Upsert(trip(
        9,
        1,
        ("2024-02-20 08:03", "2024-02-20 08:15"),
        (132, 161),
        1,
        (300, 1000, 1300),
        1,
    ))])
    .await;
    let fourth = env.run("trip_aggregations");
    // trip 9 added: only 02-20 is recomputed, its one window
    assert!(
        fourth.contains("incremental: 1 changed rows of taxi_cdc.trips"),
        "{fourth}"
    );
    assert!(fourth.contains("1 rows written"), "{fourth}");
    // 02-20 08:00: trips 5 and 9 (25 + 13; fares 20, 10; distances 4, 3)
    let with_nine = after.replace(
        "2024-02-20T08:00:00,2024-02-20T08:05:00,1,25.00,20.00,4.00",
        "2024-02-20T08:00:00,2024-02-20T08:05:00,2,38.00,15.00,3.50",
    );
    assert_eq!(env.sql(windows), with_nine);
    cdc.apply(&[Change::Delete(9)]).await;
    let fifth = env.run("trip_aggregations");
    assert!(
        fifth.contains("incremental: 1 changed rows of taxi_cdc.trips"),
        "{fifth}"
    );
    assert_eq!(env.sql(windows), after);

    // --- batch sources and reference ---------------------------------------
    let weather = env.run("weather_hourly");
    assert!(
        weather.contains("48 rows written to weather.hourly_weather"),
        "{weather}"
    );
    env.run("reference_taxi_zones");
    assert_eq!(
        env.sql("SELECT count(*) AS n, sum(precipitation_mm) AS rain, \
                 count(*) FILTER (WHERE condition = 'cloudy') AS cloudy FROM weather.hourly_weather"),
        "n,rain,cloudy\n48,1.5,2\n"
    );

    // --- analytics.trip_weather_correlation --------------------------------
    // the trips span 02-19 08:00 to 02-20 08:00: 25 weather hours in 24
    // (hour of day, condition) groups. 08:00 is cloudy on both days: 4 trips
    // at 5 C, 1 at 12 C: 5 trips, fares (40+14+60+10+20)/5, mean 8.5 C,
    // correlation -1 (two points, falling)
    let twc = env.run("trip_weather_correlation");
    assert!(twc.contains("24 rows written"), "{twc}");
    assert_eq!(
        env.sql(
            "SELECT hour_of_day, condition, hours, trips, avg_fare, avg_temperature_c, \
                 round(temperature_trips_correlation, 6) AS r \
                 FROM analytics.trip_weather_correlation WHERE hour_of_day IN (8, 9) ORDER BY 1, 2"
        ),
        "hour_of_day,condition,hours,trips,avg_fare,avg_temperature_c,r\n\
         8,cloudy,2,5,28.80,8.5,-1.0\n\
         9,rain,1,0,,10.0,\n"
    );
    assert_eq!(
        env.sql("SELECT sum(trips) AS trips, sum(hours) AS hours FROM analytics.trip_weather_correlation"),
        "trips,hours\n5,25\n"
    );

    // --- ml.demand_prediction_features -------------------------------------
    // zones 132 and 161 x 25 hours. 132 at 02-20 08:00: 1 pickup; an hour
    // before 0; a day before 3 (trips 1, 2, 6); a week before unknown; mean
    // of the 3 hours before 0, of the 24 before 3/24
    let demand = env.run("demand_prediction_features");
    assert!(demand.contains("50 rows written"), "{demand}");
    assert_eq!(
        env.sql("SELECT zone_id, CAST(hour AS VARCHAR) AS hour, pickups, pickups_lag_1h, pickups_lag_24h, \
                 pickups_lag_168h, round(pickups_mean_3h, 4) AS m3, round(pickups_mean_24h, 4) AS m24, \
                 hour_of_day, day_of_week, is_holiday, temperature_c, weather_condition \
                 FROM ml.demand_prediction_features \
                 WHERE (zone_id = 132 AND hour IN (TIMESTAMP '2024-02-19 08:00:00', TIMESTAMP '2024-02-20 08:00:00')) \
                    OR (zone_id = 161 AND hour = TIMESTAMP '2024-02-19 11:00:00') ORDER BY hour, zone_id"),
        "zone_id,hour,pickups,pickups_lag_1h,pickups_lag_24h,pickups_lag_168h,m3,m24,hour_of_day,day_of_week,is_holiday,temperature_c,weather_condition\n\
         132,2024-02-19T08:00:00,3,,,,,,8,1,true,5.0,cloudy\n\
         161,2024-02-19T11:00:00,0,0,,,0.3333,,11,1,true,10.0,clear\n\
         132,2024-02-20T08:00:00,1,0,3,,0.0,0.125,8,2,false,12.0,cloudy\n"
    );

    // --- ml.fare_prediction_features ---------------------------------------
    let fare = env.run("fare_prediction_features");
    assert!(fare.contains("5 rows written"), "{fare}");
    // trip 2 after the late update: 08:06 to 08:13 is 7 minutes
    assert_eq!(
        env.sql("SELECT trip_id, trip_distance, duration_minutes, pickup_hour, day_of_week, pickup_zone_id, \
                 dropoff_zone_id, passenger_count, temperature_c, precipitation_mm, weather_condition, fare_amount \
                 FROM ml.fare_prediction_features WHERE trip_id IN (2, 3) ORDER BY trip_id"),
        "trip_id,trip_distance,duration_minutes,pickup_hour,day_of_week,pickup_zone_id,dropoff_zone_id,passenger_count,temperature_c,precipitation_mm,weather_condition,fare_amount\n\
         2,2.0,7.0,8,1,132,236,2,5.0,0.0,cloudy,14.0\n\
         3,15.0,20.0,8,1,161,132,1,5.0,0.0,cloudy,60.0\n"
    );

    // --- realtime.zone_activity --------------------------------------------
    // now = the latest pickup, 02-20 08:02 (trip 5, zone 132). The 24 hours
    // before the last: zone 132 has pickups 1, 2, 6 and trip 3's dropoff
    // (4 / 24 an hour); 161 trip 3's pickup and the dropoffs of 1 and 6
    // (3 / 24); 236 trip 2's dropoff. Score: last hour's trips over
    // max(baseline, 1)
    env.run("zone_activity");
    assert_eq!(
        env.sql("SELECT zone_id, zone, CAST(window_end AS VARCHAR) AS now, pickups, dropoffs, revenue, \
                 round(baseline_hourly_trips, 4) AS baseline, activity_score FROM realtime.zone_activity"),
        "zone_id,zone,now,pickups,dropoffs,revenue,baseline,activity_score\n\
         132,JFK Airport,2024-02-20T08:02:00,1,0,25.00,0.1667,1.0\n\
         161,Midtown Center,2024-02-20T08:02:00,0,0,0.00,0.125,0.0\n\
         236,Upper East Side North,2024-02-20T08:02:00,0,0,0.00,0.0417,0.0\n"
    );

    // --- quality.check_results ---------------------------------------------
    let clean = env.floe(&["jobs", "run", "data_quality"]);
    assert!(clean.status.success(), "{}", text(&clean));
    let errors = "SELECT check_name, failed_count, sample_keys FROM quality.check_results \
                  WHERE run_id = (SELECT run_id FROM quality.check_results ORDER BY checked_at DESC LIMIT 1) \
                  AND severity = 'error' AND NOT passed ORDER BY check_name";
    assert_eq!(env.sql(errors), "check_name,failed_count,sample_keys\n");
    assert_eq!(
        env.sql(
            "SELECT count(*) AS checks, count(DISTINCT run_id) AS runs FROM quality.check_results"
        ),
        "checks,runs\n12,1\n"
    );
    // planted: a trip from zone 999, a negative fare, a missing weather hour
    cdc.apply(&[
        Change::Upsert(trip(
            7,
            1,
            ("2024-02-20 07:00", "2024-02-20 07:10"),
            (999, 132),
            1,
            (100, 900, 1000),
            1,
        )),
        Change::Upsert(trip(
            8,
            1,
            ("2024-02-20 07:30", "2024-02-20 07:40"),
            (132, 161),
            1,
            (100, -500, -500),
            1,
        )),
    ])
    .await;
    env.weather_url = env.weather_url.replace("weather.json", "weather-gap.json");
    let refetched = env.run("weather_hourly");
    assert!(refetched.contains("47 rows written"), "{refetched}");
    let planted = env.floe(&["jobs", "run", "data_quality"]);
    assert!(!planted.status.success(), "{}", text(&planted));
    let message = text(&planted);
    for check in [
        "integrity.trips_zones",
        "range.fare_non_negative",
        "continuity.weather_hours",
    ] {
        assert!(message.contains(check), "{message}");
    }
    assert_eq!(
        env.sql(errors),
        "check_name,failed_count,sample_keys\n\
         continuity.weather_hours,1,2024-02-19T13:00:00\n\
         integrity.trips_zones,1,7\n\
         range.fare_non_negative,1,8\n"
    );
    assert_eq!(
        env.sql("SELECT status, count(*) AS n FROM floe_meta.job_runs WHERE job = 'data_quality' GROUP BY status ORDER BY status"),
        "status,n\nfailed,1\nsucceeded,1\n"
    );
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}

/// The TLC batch load, with its control table: the shipped sample files
/// (whose row counts and fare totals scripts/make-tlc-sample.py printed
/// when it wrote them), then a run stopped by a corrupt file and resumed,
/// then a control table lost after the target's commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_load_resumes_after_an_interruption() {
    let dir = std::env::temp_dir().join(format!("floe-e2e-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let jobs = dir.join("jobs");
    let tlc = jobs.join("tlc");
    std::fs::create_dir_all(&tlc).unwrap();
    let shipped = repo().join("analytics");
    let manifest = std::fs::read_to_string(shipped.join("jobs/nyc_taxi_trips.toml")).unwrap();
    assert!(manifest.contains("path = \"../data/tlc\""), "{manifest}");
    std::fs::write(
        jobs.join("nyc_taxi_trips.toml"),
        manifest.replace("path = \"../data/tlc\"", "path = \"tlc\""),
    )
    .unwrap();
    std::fs::copy(
        shipped.join("jobs/nyc_taxi_trips.sql"),
        jobs.join("nyc_taxi_trips.sql"),
    )
    .unwrap();
    for f in [
        "yellow_tripdata_2024-01.parquet",
        "yellow_tripdata_2024-02.csv",
    ] {
        std::fs::copy(shipped.join("data/tlc").join(f), tlc.join(f)).unwrap();
    }
    // sorts last, and is not Parquet
    std::fs::write(tlc.join("yellow_tripdata_2024-03.parquet"), b"not parquet").unwrap();
    let (config, lake_config) = local_lake(&dir);
    let env = Env {
        config,
        jobs: jobs.clone(),
        weather_url: String::new(),
    };
    let by_month = "SELECT CAST(date_trunc('month', pickup_datetime) AS VARCHAR) AS month, count(*) AS trips, \
                    sum(fare_amount) AS fares FROM nyc_taxi.trips GROUP BY 1 ORDER BY 1";
    let control = "SELECT file, rows FROM floe_meta.loaded_files ORDER BY file";

    let interrupted = env.floe(&["jobs", "run", "nyc_taxi_trips"]);
    assert!(!interrupted.status.success());
    assert!(
        text(&interrupted).contains("yellow_tripdata_2024-03.parquet"),
        "{}",
        text(&interrupted)
    );
    assert_eq!(
        env.sql(by_month),
        "month,trips,fares\n2024-01-01T00:00:00,40,1353.14\n2024-02-01T00:00:00,40,1373.88\n"
    );
    assert_eq!(
        env.sql(control),
        "file,rows\nyellow_tripdata_2024-01.parquet,40\nyellow_tripdata_2024-02.csv,40\n"
    );

    // the bad file replaced by a good one: only it is loaded
    std::fs::remove_file(tlc.join("yellow_tripdata_2024-03.parquet")).unwrap();
    std::fs::write(
        tlc.join("yellow_tripdata_2024-03.csv"),
        "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount,congestion_surcharge,Airport_fee\n\
         1,2024-03-01 10:00:00,2024-03-01 10:12:00,1,2.10,1,N,132,161,1,10.00,1.0,0.5,2.0,0.0,1.0,17.00,2.5,0.0\n\
         2,2024-03-02 11:00:00,2024-03-02 11:30:00,2,8.40,1,N,161,132,2,20.50,1.0,0.5,0.0,0.0,1.0,25.50,2.5,0.0\n\
         1,2024-03-31 23:50:00,2024-04-01 00:05:00,1,1.00,1,N,236,237,1,5.25,1.0,0.5,1.0,0.0,1.0,11.25,2.5,0.0\n",
    )
    .unwrap();
    let resumed = env.run("nyc_taxi_trips");
    assert!(resumed.contains("3 rows written"), "{resumed}");
    assert!(
        resumed.contains("loaded 1 files: yellow_tripdata_2024-03.csv"),
        "{resumed}"
    );
    let all = "month,trips,fares\n\
               2024-01-01T00:00:00,40,1353.14\n\
               2024-02-01T00:00:00,40,1373.88\n\
               2024-03-01T00:00:00,3,35.75\n";
    assert_eq!(env.sql(by_month), all);

    // the control table lost (as after a crash between the target's commit
    // and the control row): rebuilt from the target, nothing loaded twice
    let lake = Lake::open(&lake_config).await.unwrap();
    lake.catalog()
        .drop_table(&iceberg::TableIdent::from_strs(["floe_meta", "loaded_files"]).unwrap())
        .await
        .unwrap();
    let again = env.run("nyc_taxi_trips");
    assert!(again.contains("no new files to load"), "{again}");
    assert_eq!(env.sql(by_month), all);
    assert_eq!(
        env.sql(control),
        "file,rows\nyellow_tripdata_2024-01.parquet,40\nyellow_tripdata_2024-02.csv,40\nyellow_tripdata_2024-03.csv,3\n"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs `script` after sourcing the scripts' helpers; returns its stdout.
fn bash(script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}/scripts/lib/common.sh' && {script}",
            repo().display()
        ))
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{script}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Garage (`garage_start` in scripts/lib/common.sh) with its bucket
/// `lake`; the settings as AWS_* variables; stopped on drop.
struct Bucket(PathBuf, Vec<(String, String)>);

impl Drop for Bucket {
    fn drop(&mut self) {
        bash(&format!("garage_stop '{}'", self.0.display()));
    }
}

/// The batch load from a bucket: the shipped samples uploaded to a real
/// S3 server (Garage) under `tlc/`, loaded through `[load] path =
/// "s3://lake/tlc"` with the S3 settings from the environment.
#[test]
fn the_batch_load_reads_a_bucket() {
    let dir = std::env::temp_dir().join(format!("floe-e2e-load-s3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let jobs = dir.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    let settings = bash(&format!("garage_start '{}'", dir.join("garage").display()));
    let env: std::collections::HashMap<&str, &str> =
        settings.lines().filter_map(|l| l.split_once('=')).collect();
    let bucket = Bucket(
        dir.join("garage"),
        vec![
            ("AWS_ENDPOINT_URL".into(), env["FLOE_S3_ENDPOINT"].into()),
            ("AWS_ACCESS_KEY_ID".into(), env["AWS_ACCESS_KEY_ID"].into()),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                env["AWS_SECRET_ACCESS_KEY"].into(),
            ),
            ("AWS_REGION".into(), env["AWS_REGION"].into()),
        ],
    );
    // upload with pyarrow's S3 client (an independent implementation)
    let samples = repo().join("analytics/data/tlc");
    bash(&format!(
        "\"$(lake_readers_python)\" -c '
import sys
from pyarrow import fs
s3 = fs.S3FileSystem(endpoint_override=sys.argv[1], access_key=sys.argv[2],
                     secret_key=sys.argv[3], region=sys.argv[4], scheme=\"http\")
for name in (\"yellow_tripdata_2024-01.parquet\", \"yellow_tripdata_2024-02.csv\"):
    fs.copy_files(sys.argv[5] + \"/\" + name, \"lake/tlc/\" + name, destination_filesystem=s3)
' {} {} {} {} '{}'",
        env["FLOE_S3_ENDPOINT"].trim_start_matches("http://"),
        env["AWS_ACCESS_KEY_ID"],
        env["AWS_SECRET_ACCESS_KEY"],
        env["AWS_REGION"],
        samples.display()
    ));
    let shipped = repo().join("analytics/jobs");
    let manifest = std::fs::read_to_string(shipped.join("nyc_taxi_trips.toml")).unwrap();
    std::fs::write(
        jobs.join("nyc_taxi_trips.toml"),
        manifest.replace("path = \"../data/tlc\"", "path = \"s3://lake/tlc\""),
    )
    .unwrap();
    std::fs::copy(
        shipped.join("nyc_taxi_trips.sql"),
        jobs.join("nyc_taxi_trips.sql"),
    )
    .unwrap();
    let (config, _) = local_lake(&dir);
    let floe = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_floe"))
            .args(args)
            .args(["--config", config.to_str().unwrap()])
            .env("FLOE_JOBS_DIR", &jobs)
            .envs(bucket.1.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("floe runs")
    };
    let loaded = ok(floe(&["jobs", "run", "nyc_taxi_trips"]));
    assert!(
        loaded.contains(
            "loaded 2 files: yellow_tripdata_2024-01.parquet, yellow_tripdata_2024-02.csv"
        ),
        "{loaded}"
    );
    assert_eq!(
        ok(floe(&[
            "sql", "--quiet", "--format", "csv", "-e",
            "SELECT CAST(date_trunc('month', pickup_datetime) AS VARCHAR) AS month, count(*) AS trips, \
             sum(fare_amount) AS fares FROM nyc_taxi.trips GROUP BY 1 ORDER BY 1"
        ])),
        "month,trips,fares\n2024-01-01T00:00:00,40,1353.14\n2024-02-01T00:00:00,40,1373.88\n"
    );
    assert!(ok(floe(&["jobs", "run", "nyc_taxi_trips"])).contains("no new files to load"));
    drop(bucket);
    std::fs::remove_dir_all(&dir).ok();
}
