//! Interoperability: a trips table floe writes to S3 (a real Garage server)
//! through a SQL catalog (SQLite, then PostgreSQL) must read back with
//! identical rows in DataFusion, iceberg's own Arrow scan, pyiceberg 0.12
//! and DuckDB 1.5.5's iceberg extension.
//!
//! The history has every kind of change the lake must carry: rows that a
//! truncate removes, then the real Debezium recording (snapshot reads, a
//! TOASTed note left unchanged, an update that moves a row to another day
//! partition, a delete, an added column), then a synthetic tail on the new
//! schema with updates and deletes so the live files carry position
//! deletes. Compaction, expiry and orphan cleanup must then leave every
//! reader the same rows, and the bucket exactly the files still named.
//! On the PostgreSQL catalog the writer merges its files after every
//! commit (merged files, deletes merged away or carried), read alike too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, TimeUnit};
use iceberg::TableIdent;
use ingest::testing::{decimal, EventEncoder, Value};
use ingest::{ChangeBatch, ChangeDecoder, Op, RecordedMessage, Recording};
use lakehouse::maintain::{compact, expire, orphans, CompactPolicy, ExpirePolicy, OrphanPolicy};
use lakehouse::spec::store::Store;
use lakehouse::{CatalogConfig, Lake, LakeConfig, S3Config};

use crate::support::{repo, scan_all, scan_arrow, Postgres};

const TOPIC: &str = "taxi.public.trips";
const DAY_US: i64 = 86_400_000_000;
const MARCH_1: i64 = 1_709_251_200_000_000;

/// A single-node Garage S3 server on loopback (`scripts/lib/common.sh`
/// `garage_start`), with a bucket `lake`; stopped on drop.
struct Garage {
    dir: PathBuf,
    env: HashMap<String, String>,
}

impl Garage {
    fn start(dir: &Path) -> Self {
        let out = bash(&format!("garage_start '{}'", dir.display()));
        let env = out
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self {
            dir: dir.to_path_buf(),
            env,
        }
    }

    fn s3_config(&self) -> S3Config {
        S3Config {
            endpoint: Some(self.env["FLOE_S3_ENDPOINT"].clone()),
            region: Some(self.env["AWS_REGION"].clone()),
            access_key_id: Some(self.env["AWS_ACCESS_KEY_ID"].clone()),
            secret_access_key: Some(self.env["AWS_SECRET_ACCESS_KEY"].clone()),
            ..S3Config::default()
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        bash(&format!("garage_stop '{}'", self.dir.display()));
    }
}

/// Runs `script` after sourcing the scripts' helpers; returns its stdout.
pub(crate) fn bash(script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}/scripts/lib/common.sh' && {script}",
            repo().display()
        ))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn trip(id: i64, day: i64, fare: i64) -> HashMap<&'static str, Value> {
    let pickup = MARCH_1 + day * DAY_US + id * 60_000_000;
    HashMap::from([
        ("trip_id", Value::Long(id)),
        ("vendor_id", Value::Int(1 + (id % 2) as i32)),
        ("pickup_datetime", Value::Long(pickup)),
        ("dropoff_datetime", Value::Long(pickup + 900_000_000)),
        ("pickup_zone_id", Value::Int(100 + id as i32)),
        ("dropoff_zone_id", Value::Int(200 + id as i32)),
        ("fare_amount", decimal(fare)),
        ("notes", Value::String(format!("trip {id}"))),
    ])
}

/// The whole history as change batches, one per phase.
pub(crate) async fn history() -> Vec<ChangeBatch> {
    let dir = repo().join("tests/fixtures/debezium");
    let rec = Recording::load(&dir).unwrap();
    let key_id = rec.schemas.subject_versions("taxi.public.trips-key")[0];
    let values = rec.schemas.subject_versions("taxi.public.trips-value");
    let first = EventEncoder::new(&rec.schemas, values[0], key_id).unwrap();
    let last = EventEncoder::new(&rec.schemas, *values.last().unwrap(), key_id).unwrap();
    let key = |id: i64| HashMap::from([("trip_id", Value::Long(id))]);
    let create = |enc: &EventEncoder, id: i64, day: i64, fare: i64| {
        let (k, v) = enc
            .event(
                Op::Create,
                Some(&key(id)),
                None,
                Some(&trip(id, day, fare)),
                id,
            )
            .unwrap();
        (k, Some(v))
    };

    // phase 1: trips that a truncate then removes
    let mut phase1: Vec<_> = (100..110)
        .map(|id| create(&first, id, id % 3, 1_000 + id))
        .collect();
    let (k, v) = first.event(Op::Truncate, None, None, None, 200).unwrap();
    phase1.push((k, Some(v)));

    // phase 2: what Debezium really sent (tests/fixtures/debezium)
    let phase2: Vec<_> = rec
        .messages
        .iter()
        .filter(|m| m.topic == TOPIC)
        .map(|m| (m.key.clone(), m.value.clone()))
        .collect();

    // phase 3: on the schema with congestion_surcharge, 40 trips over 5
    // days; phase 4: every fourth updated (every eighth to another day),
    // every tenth deleted
    let phase3: Vec<_> = (200..240)
        .map(|id| create(&last, id, id % 5, 2_000 + id))
        .collect();
    let mut phase4 = Vec::new();
    for id in (200..240).step_by(4) {
        let mut after = trip(id, if id % 8 == 0 { 9 } else { id % 5 }, 5_000 + id);
        after.insert("congestion_surcharge", decimal(250));
        let (k, v) = last
            .event(Op::Update, Some(&key(id)), None, Some(&after), id)
            .unwrap();
        phase4.push((k, Some(v)));
    }
    for id in (200..240).step_by(10) {
        // Debezium's key-only before-image fills the other columns with defaults
        let before = trip(id, 0, 0);
        let (k, v) = last
            .event(Op::Delete, Some(&key(id)), Some(&before), None, id)
            .unwrap();
        phase4.push((k.clone(), Some(v)));
        phase4.push((k, None));
    }

    let mut decoder = ChangeDecoder::new(rec.schemas.clone());
    let mut batches = Vec::new();
    let mut offset = 0;
    for phase in [phase1, phase2, phase3, phase4] {
        for (key, value) in phase {
            let message = RecordedMessage {
                topic: TOPIC.into(),
                partition: 0,
                offset,
                timestamp_ms: None,
                key,
                value,
            };
            offset += 1;
            decoder.push(&message.as_raw()).await.unwrap();
        }
        batches.extend(decoder.flush());
    }
    batches
}

/// One table row: column name to its canonical text (as in
/// `scripts/read-with-peers.py`: timestamps as epoch microseconds).
pub(crate) type Row = BTreeMap<String, Option<String>>;

pub(crate) fn canonical(batches: &[RecordBatch]) -> Vec<Row> {
    let mut rows = Vec::new();
    for b in batches {
        let columns: Vec<(String, Vec<Option<String>>)> = b
            .schema()
            .fields()
            .iter()
            .zip(b.columns())
            .map(|(f, c)| (f.name().clone(), texts(c.as_ref())))
            .collect();
        for i in 0..b.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|(name, values)| (name.clone(), values[i].clone()))
                    .collect(),
            );
        }
    }
    sorted(rows)
}

fn texts(column: &dyn Array) -> Vec<Option<String>> {
    let column = match column.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            arrow_cast::cast(column, &DataType::Int64).unwrap()
        }
        _ => arrow_array::make_array(column.to_data()),
    };
    let format = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default()).unwrap();
    (0..column.len())
        .map(|i| column.is_valid(i).then(|| format.value(i).to_string()))
        .collect()
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by_key(|r| {
        r["trip_id"]
            .as_deref()
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(i64::MIN)
    });
    rows
}

/// Applies the history to a trips table in an S3 warehouse of `catalog`;
/// returns the lake, the table's metadata location and floe's
/// (DataFusion's) rows.
/// Applies the history to a table on Garage and reads it back; with
/// `merge`, the writer merges after every commit under a tight policy, so
/// the table holds merged files and carried deletes.
async fn write_and_read(
    garage: &Garage,
    catalog: CatalogConfig,
    prefix: &str,
    merge: bool,
    delete_granularity: &str,
) -> (Lake, String, Vec<Row>) {
    let mut config = LakeConfig {
        warehouse: format!("s3://lake/{prefix}").as_str().into(),
        catalog,
        s3: garage.s3_config(),
        ..LakeConfig::default()
    };
    crate::support::trips_by_day(&mut config);
    if let Some(trips) = config.tables.by_source.get_mut("public.trips") {
        trips
            .properties
            .insert("write.delete.granularity".into(), delete_granularity.into());
    }
    let batches = history().await;
    let lake = Lake::open(&config).await.unwrap();
    let mut writer =
        lake.writer(&batches[0])
            .await
            .unwrap()
            .with_merge_policy(lakehouse::MergePolicy {
                enabled: merge,
                max_files: 2,
                fanout: 2,
                ..lakehouse::MergePolicy::default()
            });
    let mut merges = 0;
    for b in &batches {
        writer.apply(b).await.unwrap();
        let report = writer.merge().await.unwrap();
        merges += usize::from(report.files_added + report.data_files_removed > 0);
    }
    assert_eq!(
        merges > 0,
        merge,
        "merge rounds that rewrote files: {merges}"
    );
    let table = writer.table().clone();
    let location = table.metadata_location().unwrap().to_string();
    assert!(
        location.starts_with(&format!("s3://lake/{prefix}/")),
        "{location}"
    );
    let summary = &table.metadata().current_snapshot().unwrap().summary();
    let position_deletes: u64 = summary.additional_properties["total-position-deletes"]
        .parse()
        .unwrap();
    // merged, most deletes are merged away with the files they hit
    assert!(
        merge || position_deletes >= 10,
        "the live files carry position deletes"
    );

    // every delete file that names one data file says so; with file
    // granularity every delete file names one
    let deletes = crate::support::delete_files(&table).await;
    assert!(merge || !deletes.is_empty());
    for (path, (named, referenced)) in &deletes {
        let one = (named.len() == 1)
            .then(|| named.iter().next().cloned())
            .flatten();
        assert_eq!(referenced, &one, "{path} names {named:?}");
        if delete_granularity == "file" {
            assert!(one.is_some(), "{path} names {named:?}");
        }
    }

    let rows = canonical(&scan_all(&table).await);
    assert_eq!(canonical(&scan_arrow(&table).await), rows);
    (lake, location, rows)
}

/// Every maintenance step on the S3 table, with a crashed writer's file
/// planted in it: compaction of every partition that has position
/// deletes, expiry down to the current snapshot, orphan cleanup. What left
/// the bucket (listed before and after) must be exactly the expired files
/// and the planted one. Returns the new metadata location and floe's rows.
async fn maintain(lake: &Lake) -> (String, Vec<Row>) {
    let ident = TableIdent::from_strs(["taxi_cdc", "trips"]).unwrap();
    let table = lake.catalog().load_table(&ident).await.unwrap();
    let s3 = lake.config().s3.resolve(|_| None);
    let store = Store::open(table.metadata().location(), &s3).unwrap();
    let planted = format!("{}/data/00000-0-crashed-writer.parquet", store.location());
    table
        .file_io()
        .new_output(&planted)
        .unwrap()
        .write(bytes::Bytes::from_static(b"never committed"))
        .await
        .unwrap();
    let listing = |files: Vec<lakehouse::spec::store::ListedFile>| -> BTreeSet<String> {
        files.into_iter().map(|f| f.location).collect()
    };
    let before = listing(store.list("", true).await.unwrap());
    assert!(before.contains(&planted));

    let compacted = compact(
        lake,
        &ident,
        &CompactPolicy {
            max_deleted_ratio: 1e-9,
            ..CompactPolicy::default()
        },
        false,
    )
    .await
    .unwrap();
    assert!(compacted
        .partitions
        .iter()
        .any(|p| !p.delete_files.is_empty()));
    let table = lake.catalog().load_table(&ident).await.unwrap();
    let summary = table.metadata().current_snapshot().unwrap().summary();
    assert_eq!(
        summary.additional_properties["total-position-deletes"], "0",
        "every position delete was applied by the rewrite"
    );
    let expired = expire(
        lake,
        &ident,
        &ExpirePolicy {
            older_than: Duration::ZERO,
            retain_last: 1,
        },
        false,
    )
    .await
    .unwrap();
    assert!(!expired.expired.is_empty());
    let cleaned = orphans(
        lake,
        &ident,
        &OrphanPolicy {
            older_than: Duration::ZERO,
        },
        false,
    )
    .await
    .unwrap();
    assert_eq!(listing(cleaned.orphans), BTreeSet::from([planted.clone()]));

    let after = listing(store.list("", true).await.unwrap());
    let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
    let mut expected: BTreeSet<String> = expired.files.into_iter().collect();
    expected.insert(planted);
    assert_eq!(
        gone, expected,
        "exactly the expired files and the orphan left the bucket"
    );

    let table = lake.catalog().load_table(&ident).await.unwrap();
    let location = table.metadata_location().unwrap().to_string();
    (location, canonical(&scan_all(&table).await))
}

/// What the history must leave, checked independently of any reader.
pub(crate) fn check_expected(rows: &[Row]) {
    let ids: Vec<i64> = rows
        .iter()
        .map(|r| r["trip_id"].as_deref().unwrap().parse().unwrap())
        .collect();
    // truncated: no 1xx; deleted: 1 and every tenth of the tail
    let mut expected: Vec<i64> = vec![2, 3, 4];
    expected.extend((200..240).filter(|id| id % 10 != 0));
    assert_eq!(ids, expected);
    let row = |id: i64| &rows[ids.iter().position(|&i| i == id).unwrap()];
    let text = |id: i64, column: &str| row(id)[column].as_deref().map(str::to_string);
    // trip 2 moved to 2024-03-05 09:00
    assert_eq!(
        text(2, "pickup_datetime").as_deref(),
        Some("1709629200000000")
    );
    // the added column: set on 3, null on the rows written before it existed
    assert_eq!(text(3, "congestion_surcharge").as_deref(), Some("2.75"));
    assert_eq!(text(2, "congestion_surcharge"), None);
    // the TOASTed note survived the update that left it unchanged
    assert_eq!(text(3, "notes").map(|n| n.len()), Some(5000));
    // an updated tail row moved to day 9 with its new fare
    assert_eq!(text(208, "fare_amount").as_deref(), Some("52.08"));
    assert_eq!(text(208, "congestion_surcharge").as_deref(), Some("2.50"));
}

/// Reads the table with pyiceberg and DuckDB; returns their rows.
fn read_with_peers(
    garage: &Garage,
    catalog_uri: &str,
    prefix: &str,
    metadata: &str,
) -> (Vec<Row>, Vec<Row>) {
    let python = bash("lake_readers_python").trim().to_string();
    let out = Command::new(python)
        .arg(repo().join("scripts/read-with-peers.py"))
        .args(["--catalog-uri", catalog_uri])
        .args(["--warehouse", &format!("s3://lake/{prefix}")])
        .args(["--table", "taxi_cdc.trips"])
        .args(["--metadata", metadata])
        .envs(&garage.env)
        .output()
        .expect("the lake readers' python runs");
    assert!(
        out.status.success(),
        "read-with-peers.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut read: HashMap<String, Vec<Row>> = serde_json::from_slice(&out.stdout).unwrap();
    (
        sorted(read.remove("pyiceberg").unwrap()),
        sorted(read.remove("duckdb").unwrap()),
    )
}

fn assert_same(reader: &str, theirs: &[Row], ours: &[Row]) {
    assert_eq!(
        theirs.len(),
        ours.len(),
        "{reader} read {} rows",
        theirs.len()
    );
    for (t, o) in theirs.iter().zip(ours) {
        assert_eq!(t, o, "{reader} disagrees with DataFusion");
    }
}

#[tokio::test]
async fn pyiceberg_and_duckdb_read_what_floe_wrote_to_s3() {
    let root = std::env::temp_dir().join(format!("floe-interop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let garage = Garage::start(&root.join("garage"));

    // SQLite catalog (a local file; the data on S3)
    let db = root.join("catalog.db");
    let sqlite = CatalogConfig::Sqlite {
        path: Some(db.clone()),
    };
    let (lake, metadata, ours) =
        write_and_read(&garage, sqlite, "sqlite", false, "partition").await;
    check_expected(&ours);
    let uri = format!("sqlite:///{}", db.display());
    let (py, duck) = read_with_peers(&garage, &uri, "sqlite", &metadata);
    assert_same("pyiceberg (SQLite catalog)", &py, &ours);
    assert_same("DuckDB (SQLite catalog)", &duck, &ours);

    // the same rows for every reader after compaction, expiry and orphan
    // cleanup
    let (metadata, maintained) = maintain(&lake).await;
    assert_same("DataFusion after maintenance", &maintained, &ours);
    let (py, duck) = read_with_peers(&garage, &uri, "sqlite", &metadata);
    assert_same("pyiceberg after maintenance", &py, &ours);
    assert_same("DuckDB after maintenance", &duck, &ours);

    // a delete file per data file it hits (`write.delete.granularity`)
    let db = root.join("perfile.db");
    let sqlite = CatalogConfig::Sqlite {
        path: Some(db.clone()),
    };
    let (_, metadata, per_file) = write_and_read(&garage, sqlite, "perfile", false, "file").await;
    assert_same("DataFusion, a delete file per data file", &per_file, &ours);
    let uri = format!("sqlite:///{}", db.display());
    let (py, duck) = read_with_peers(&garage, &uri, "perfile", &metadata);
    assert_same("pyiceberg, a delete file per data file", &py, &ours);
    assert_same("DuckDB, a delete file per data file", &duck, &ours);

    // PostgreSQL catalog, the writer merging its files after every commit
    let pg = Postgres::start(&root.join("pg"));
    let postgres = CatalogConfig::Sql { uri: pg.uri() };
    let (_, metadata, ours) =
        write_and_read(&garage, postgres, "postgres", true, "partition").await;
    check_expected(&ours);
    let uri = format!(
        "postgresql+psycopg2://postgres@127.0.0.1:{}/lake",
        pg.port()
    );
    let (py, duck) = read_with_peers(&garage, &uri, "postgres", &metadata);
    assert_same("pyiceberg (PostgreSQL catalog)", &py, &ours);
    assert_same("DuckDB (PostgreSQL catalog)", &duck, &ours);

    drop(pg);
    drop(garage);
    std::fs::remove_dir_all(&root).ok();
}
