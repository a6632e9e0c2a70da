//! `floe jobs` on a small lake with known trips: the zones reference table
//! from the shipped CSV, zone performance computed over the trips (values
//! worked out by hand below), a failing job recorded as failed, and every
//! run in floe_meta.job_runs.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Decimal128Array, Int32Array, Int64Array, RecordBatch, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use iceberg::TableIdent;
use lakehouse::sink::{write_result, WriteMode};
use lakehouse::{Lake, LakeConfig};

use crate::stack::{repo, text};

pub fn floe(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(args)
        .args(["--config", &config.display().to_string()])
        .output()
        .expect("floe runs")
}

/// A local lake in `dir/lake` and its floe.toml: (config file, lake config).
pub fn local_lake(dir: &Path) -> (std::path::PathBuf, LakeConfig) {
    let config = dir.join("floe.toml");
    let warehouse = dir.join("lake");
    std::fs::write(
        &config,
        format!("[lake]\nwarehouse = \"{}\"\n", warehouse.display()),
    )
    .unwrap();
    let lake: LakeConfig =
        toml::from_str(&format!("warehouse = \"{}\"", warehouse.display())).unwrap();
    (config, lake)
}

pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// (trip, zone, pickup "YYYY-MM-DD HH:MM", fare, total, distance)
const TRIPS: [(i64, i32, &str, i128, i128, i128); 5] = [
    (1, 132, "2024-03-01 08:10", 5000, 6000, 1500),
    (2, 132, "2024-03-01 08:40", 4000, 5000, 1400),
    (3, 132, "2024-03-01 17:00", 3000, 3500, 1000),
    (4, 161, "2024-03-01 09:00", 1000, 1200, 150),
    (5, 161, "2024-03-02 09:00", 2000, 2500, 300),
];

async fn seed_trips(lake: &Lake) {
    let micros = |t: &str| {
        datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(&format!(
            "{t}:00"
        ))
        .unwrap()
            / 1000
    };
    let money = |p: u8| DataType::Decimal128(p, 2);
    let schema = Schema::new(vec![
        Field::new("trip_id", DataType::Int64, false),
        Field::new("pickup_zone_id", DataType::Int32, false),
        Field::new(
            "pickup_datetime",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("fare_amount", money(10), true),
        Field::new("total_amount", money(10), true),
        Field::new("trip_distance", money(8), true),
    ]);
    let dec = |i: usize, p: u8| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(TRIPS.iter().map(|t| [t.3, t.4, t.5][i]).collect::<Vec<_>>())
                .with_precision_and_scale(p, 2)
                .unwrap(),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            TRIPS.iter().map(|t| t.0).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            TRIPS.iter().map(|t| t.1).collect::<Vec<_>>(),
        )),
        Arc::new(TimestampMicrosecondArray::from(
            TRIPS.iter().map(|t| micros(t.2)).collect::<Vec<_>>(),
        )),
        dec(0, 10),
        dec(1, 10),
        dec(2, 8),
    ];
    let batch = RecordBatch::try_new(Arc::new(schema.clone()), columns).unwrap();
    let ident = TableIdent::from_strs(["taxi_cdc", "trips"]).unwrap();
    let partition = ["day(pickup_datetime)".to_string()];
    write_result(
        lake,
        &ident,
        &partition,
        WriteMode::Overwrite,
        &schema,
        &[batch],
        Default::default(),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_build_reference_and_analytics_tables() {
    let dir = std::env::temp_dir().join(format!("floe-e2e-jobs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (config, lake_config) = local_lake(&dir);
    let lake = Lake::open(&lake_config).await.unwrap();
    seed_trips(&lake).await;
    let jobs_dir = repo().join("analytics/jobs");
    let jobs = ["--jobs-dir", jobs_dir.to_str().unwrap()];

    let listed = ok(floe(&config, &[&["jobs", "list"][..], &jobs].concat()));
    assert!(
        listed.contains("zone_performance_metrics")
            && listed.contains("analytics.zone_performance_metrics"),
        "{listed}"
    );

    let zones = ok(floe(
        &config,
        &[&["jobs", "run", "reference_taxi_zones"][..], &jobs].concat(),
    ));
    assert!(
        zones.contains("265 rows written to reference.taxi_zones"),
        "{zones}"
    );
    let perf = ok(floe(
        &config,
        &[&["jobs", "run", "zone_performance_metrics"][..], &jobs].concat(),
    ));
    assert!(perf.contains("3 rows written"), "{perf}");

    let sql = |q: &str| {
        ok(floe(
            &config,
            &["sql", "--quiet", "--format", "csv", "-e", q],
        ))
    };
    assert_eq!(
        sql("SELECT location_id, borough, zone, service_zone FROM reference.taxi_zones WHERE location_id IN (1, 132, 265) ORDER BY 1"),
        "location_id,borough,zone,service_zone\n1,EWR,Newark Airport,EWR\n132,Queens,JFK Airport,Airports\n265,Unknown,NA,N/A\n"
    );
    // by hand: zone 132 on 03-01 has 3 pickups (two at 08:xx, one at 17:00),
    // revenue 60 + 50 + 35, fares (50 + 40 + 30) / 3, distance
    // (15 + 14 + 10) / 3, busiest hour 2 over an average hour of 3/24;
    // money and distances in decimals, to the cent
    assert_eq!(
        sql("SELECT zone_id, CAST(day AS VARCHAR) AS day, borough, zone, pickups, revenue, avg_fare, avg_distance, peak_hour_factor \
             FROM analytics.zone_performance_metrics ORDER BY day, zone_id"),
        "zone_id,day,borough,zone,pickups,revenue,avg_fare,avg_distance,peak_hour_factor\n\
         132,2024-03-01,Queens,JFK Airport,3,145.00,40.00,13.00,16.0\n\
         161,2024-03-01,Manhattan,Midtown Center,1,12.00,10.00,1.50,24.0\n\
         161,2024-03-02,Manhattan,Midtown Center,1,25.00,20.00,3.00,24.0\n"
    );
    let described = sql("\\d analytics.zone_performance_metrics");
    assert!(described.contains("day_month,month(day)"), "{described}");

    // a job whose query fails: non-zero, and recorded as failed
    let broken = dir.join("broken-jobs");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("broken.toml"),
        "target = \"analytics.broken\"\nmode = \"append\"\nsql = \"broken.sql\"\n",
    )
    .unwrap();
    std::fs::write(
        broken.join("broken.sql"),
        "SELECT * FROM taxi_cdc.no_such_table",
    )
    .unwrap();
    let failed = floe(
        &config,
        &[
            "jobs",
            "run",
            "broken",
            "--jobs-dir",
            broken.to_str().unwrap(),
        ],
    );
    assert!(!failed.status.success());
    assert!(text(&failed).contains("no_such_table"), "{}", text(&failed));

    // a query past its time limit: stopped, the run failed, nothing written
    std::fs::write(
        broken.join("slow.toml"),
        "target = \"analytics.slow\"\nmode = \"append\"\nsql = \"slow.sql\"\ntimeout_secs = 1\n",
    )
    .unwrap();
    std::fs::write(
        broken.join("slow.sql"),
        "SELECT sum(a.value * b.value) AS s FROM generate_series(1, 300000) a CROSS JOIN generate_series(1, 300000) b",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let slow = floe(
        &config,
        &[
            "jobs",
            "run",
            "slow",
            "--jobs-dir",
            broken.to_str().unwrap(),
        ],
    );
    let took = started.elapsed();
    assert!(!slow.status.success(), "{}", text(&slow));
    assert!(
        text(&slow).contains("ran past its time limit of 1s"),
        "{}",
        text(&slow)
    );
    // the limit, the drop and floe's start and end; 9e10 rows would take hours
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    assert!(
        !sql("\\dt").contains("slow"),
        "a timed-out job created its target"
    );

    let runs = sql("SELECT job, status, rows_written, error IS NULL AS ok, source_snapshots LIKE '%taxi_cdc.trips%' AS read_trips \
                    FROM floe_meta.job_runs ORDER BY started_at");
    assert_eq!(
        runs,
        "job,status,rows_written,ok,read_trips\n\
         reference_taxi_zones,succeeded,265,true,false\n\
         zone_performance_metrics,succeeded,3,true,true\n\
         broken,failed,0,false,false\n\
         slow,failed,0,false,false\n"
    );
    // a second run replaces (overwrite), it does not add
    ok(floe(
        &config,
        &[&["jobs", "run", "zone_performance_metrics"][..], &jobs].concat(),
    ));
    assert_eq!(
        sql("SELECT count(*) AS n FROM analytics.zone_performance_metrics"),
        "n\n3\n"
    );

    // the scheduler: a job every 2 s and a failing one as often; both keep
    // their slots, the failures do not stop it, no run overlaps the last
    let timed = dir.join("timed-jobs");
    std::fs::create_dir_all(&timed).unwrap();
    for (name, query) in [
        ("every2", "SELECT 1 AS one"),
        ("fails", "SELECT * FROM nowhere.nothing"),
    ] {
        std::fs::write(
            timed.join(format!("{name}.toml")),
            format!("target = \"scratch.{name}\"\nmode = \"append\"\nschedule = \"*/2 * * * * *\"\nsql = \"{name}.sql\"\n"),
        )
        .unwrap();
        std::fs::write(timed.join(format!("{name}.sql")), query).unwrap();
    }
    // a manifest with a typo disables its own job only
    std::fs::write(
        timed.join("typo.toml"),
        "targte = \"scratch.typo\"\nmode = \"append\"\nsql = \"every2.sql\"\n",
    )
    .unwrap();
    // the folder comes from the configuration file, relative to it
    let mut text_config = std::fs::read_to_string(&config).unwrap();
    text_config.push_str("\n[jobs]\ndir = \"timed-jobs\"\n");
    std::fs::write(&config, text_config).unwrap();
    let listed = ok(floe(&config, &["jobs", "list"]));
    assert!(
        listed.contains("every2") && listed.contains("fails"),
        "{listed}"
    );
    let typo = listed
        .lines()
        .find(|l| l.starts_with("typo "))
        .unwrap_or_else(|| panic!("the broken job is listed: {listed}"));
    assert!(
        typo.contains("broken:") && typo.contains("unknown field `targte`"),
        "{typo}"
    );
    let refused = floe(&config, &["jobs", "run", "typo"]);
    assert!(
        !refused.status.success() && text(&refused).contains("job typo is broken"),
        "{}",
        text(&refused)
    );
    let mut scheduler = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["jobs", "schedule"])
        .args(["--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(9));
    assert!(
        scheduler.try_wait().unwrap().is_none(),
        "the scheduler survives failed runs"
    );
    Command::new("kill")
        .args(["-TERM", &scheduler.id().to_string()])
        .status()
        .unwrap();
    let out = scheduler.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    // every run is said at the default level, the job's name first
    assert!(log.contains("typo: broken, not scheduled"), "{log}");
    assert!(
        log.contains("every2: done in ") && log.contains("1 rows written to scratch.every2"),
        "{log}"
    );
    assert!(
        log.contains("fails: failed after ") && log.contains("nowhere"),
        "{log}"
    );
    let counts = sql(
        "SELECT job, status, count(*) >= 3 AS regular FROM floe_meta.job_runs \
                      WHERE job IN ('every2', 'fails') GROUP BY job, status ORDER BY job",
    );
    assert_eq!(
        counts,
        "job,status,regular\nevery2,succeeded,true\nfails,failed,true\n"
    );
    let overlaps = sql("SELECT count(*) AS n FROM (SELECT started_at, lag(finished_at) OVER (ORDER BY started_at) AS prev \
                        FROM floe_meta.job_runs WHERE job = 'every2') WHERE started_at < prev");
    assert_eq!(overlaps, "n\n0\n");
    std::fs::remove_dir_all(&dir).ok();
}
