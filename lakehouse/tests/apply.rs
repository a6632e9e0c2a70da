//! Applying the recorded Debezium batches to Iceberg tables, checked
//! through iceberg's own scan against what the workload SQL did.

use std::collections::BTreeMap;
use std::path::PathBuf;

use arrow_array::{
    Array, Decimal128Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use ingest::{ChangeBatch, ChangeDecoder, Recording};
use lakehouse::apply::TableWriter;
use lakehouse::transaction::SqlCatalogPointer;
use lakehouse::{ensure_table, open_catalog, LakeConfig, TableConfig, TableTarget};

use crate::support::{by_trip, scan_all};

/// The topic's recorded messages decoded, flushing a batch after each
/// message count in `cuts`.
async fn batches(topic: &str, cuts: &[usize]) -> Vec<ChangeBatch> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium");
    let rec = Recording::load(&dir).unwrap();
    let mut d = ChangeDecoder::new(rec.schemas.clone());
    let mut out = Vec::new();
    for (n, m) in rec.messages.iter().filter(|m| m.topic == topic).enumerate() {
        if cuts.contains(&n) {
            out.extend(d.flush());
        }
        d.push(&m.as_raw()).await.unwrap();
    }
    out.extend(d.flush());
    out
}

struct Lake {
    config: LakeConfig,
    pointer_uri: String,
}

fn lake(test: &str) -> Lake {
    let warehouse = std::env::temp_dir().join(format!("floe-apply-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&warehouse);
    let mut config = LakeConfig {
        warehouse: warehouse.clone().into(),
        ..LakeConfig::default()
    };
    crate::support::trips_by_day(&mut config);
    Lake {
        pointer_uri: format!(
            "sqlite://{}?mode=rwc",
            warehouse.join("catalog.db").display()
        ),
        config,
    }
}

async fn writer(lake: &Lake, first: &ChangeBatch) -> TableWriter {
    let catalog = open_catalog(&lake.config).await.unwrap();
    let target = TableTarget::for_batch(first, &lake.config.tables).unwrap();
    let table = ensure_table(catalog.as_ref(), &target, first)
        .await
        .unwrap();
    TableWriter::open(
        catalog,
        table,
        SqlCatalogPointer::connect(&lake.pointer_uri).await.unwrap(),
    )
    .await
    .unwrap()
}

#[derive(Debug, PartialEq)]
struct Trip {
    pickup_us: i64,
    fare: i128,
    tip: i128,
    notes: Option<String>,
}

fn trips(batches: &[RecordBatch]) -> BTreeMap<i64, Trip> {
    let mut out = BTreeMap::new();
    for b in batches {
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let id = col("trip_id");
        let id = id.as_any().downcast_ref::<Int64Array>().unwrap();
        let pickup = col("pickup_datetime");
        let pickup = pickup
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let fare = col("fare_amount");
        let fare = fare.as_any().downcast_ref::<Decimal128Array>().unwrap();
        let tip = col("tip_amount");
        let tip = tip.as_any().downcast_ref::<Decimal128Array>().unwrap();
        let notes = col("notes");
        let notes = notes.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            let trip = Trip {
                pickup_us: pickup.value(i),
                fare: fare.value(i),
                tip: tip.value(i),
                notes: notes.is_valid(i).then(|| notes.value(i).to_string()),
            };
            assert!(
                out.insert(id.value(i), trip).is_none(),
                "trip {} appears twice",
                id.value(i)
            );
        }
    }
    out
}

// 2024-03-01 08:15:00, 2024-03-05 09:00:00, 2024-03-02 23:50:00 in µs
const PICKUP_1: i64 = 1_709_280_900_000_000;
const PICKUP_2_MOVED: i64 = 1_709_629_200_000_000;
const PICKUP_3: i64 = 1_709_423_400_000_000;

#[tokio::test]
async fn trips_across_a_restart_with_toast_from_the_table() {
    // messages: r1 r2 c3 u1 u2 | u3(notes unchanged) d1 tombstone  | (new schema) ...
    let all = batches("taxi.public.trips", &[5, 8]).await;
    let (first, second) = (&all[0], &all[1]);
    assert_eq!(first.num_rows(), 5);
    assert_eq!(second.unchanged(0), ["notes"]);
    let lake = lake("restart");
    let mut w = writer(&lake, first).await;
    let stats = w.apply(first).await.unwrap();
    assert_eq!(
        (stats.rows_written, stats.rows_deleted),
        (3, 0),
        "one final row per key"
    );
    let after_first = trips(&scan_all(w.table()).await);
    assert_eq!(after_first.len(), 3);
    assert_eq!(after_first[&1].fare, 1500);
    assert_eq!(after_first[&1].pickup_us, PICKUP_1);
    assert_eq!(
        after_first[&2].pickup_us, PICKUP_2_MOVED,
        "moved to another day partition"
    );
    assert_eq!(
        after_first[&3].notes.as_deref(),
        Some("note-".repeat(1000).as_str())
    );
    drop(w);

    // restart: the index is rebuilt from the table
    let mut w = writer(&lake, first).await;
    assert_eq!(w.live_rows(), 3);
    let stats = w.apply(second).await.unwrap();
    assert_eq!(
        (stats.rows_written, stats.rows_deleted, stats.absent_deletes),
        (1, 1, 0)
    );
    let end = trips(&scan_all(w.table()).await);
    assert_eq!(
        end.keys().copied().collect::<Vec<_>>(),
        [2, 3],
        "trip 1 deleted, no duplicate of trip 2"
    );
    assert_eq!(end[&3].tip, 1200);
    assert_eq!(end[&3].pickup_us, PICKUP_3);
    assert_eq!(
        end[&3].notes.as_deref(),
        Some("note-".repeat(1000).as_str()),
        "unchanged TOAST value kept from the table"
    );
    assert_eq!(
        w.applied_offsets().into_iter().collect::<Vec<_>>(),
        [(("taxi.public.trips".to_string(), 0), 7)]
    );
    drop(w);

    // restart again, now that position deletes exist: deleted rows are not live
    let mut w = writer(&lake, first).await;
    assert_eq!(
        w.live_rows(),
        2,
        "trip 1's deleted row and trip 3's replaced row are not in the index"
    );
    // replaying the second batch again changes nothing visible
    w.apply(second).await.unwrap();
    assert_eq!(trips(&scan_all(w.table()).await), end);
    std::fs::remove_dir_all(lake.config.warehouse.local_dir().unwrap()).ok();
}

#[tokio::test]
async fn trips_in_one_batch_collapse_per_key_with_toast_from_the_batch() {
    let all = batches("taxi.public.trips", &[8]).await;
    let lake = lake("onebatch");
    let mut w = writer(&lake, &all[0]).await;
    let stats = w.apply(&all[0]).await.unwrap();
    assert_eq!(
        (stats.rows_written, stats.rows_deleted, stats.absent_deletes),
        (2, 0, 1),
        "trip 1 never reached the table"
    );
    let end = trips(&scan_all(w.table()).await);
    assert_eq!(end.keys().copied().collect::<Vec<_>>(), [2, 3]);
    assert_eq!(
        end[&3].notes.as_deref(),
        Some("note-".repeat(1000).as_str()),
        "from the insert earlier in the batch"
    );
    assert_eq!(end[&3].tip, 1200);
    std::fs::remove_dir_all(lake.config.warehouse.local_dir().unwrap()).ok();
}

fn ints(batches: &[RecordBatch], column: &str) -> Vec<i32> {
    let mut v: Vec<i32> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name(column)
                .unwrap()
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn truncate_then_reload_and_a_primary_key_change() {
    // payment_types: r r r r | t | c c (a batch that starts at the keyless
    // truncate ends there: the decoder starts the next at the first key)
    let pt = batches("taxi.public.payment_types", &[4]).await;
    assert_eq!(pt.len(), 3);
    let lake = lake("truncate");
    let mut w = writer(&lake, &pt[0]).await;
    w.apply(&pt[0]).await.unwrap();
    assert_eq!(
        ints(&scan_all(w.table()).await, "payment_type_id"),
        [1, 2, 3, 4]
    );
    let stats = w.apply(&pt[1]).await.unwrap();
    assert!(stats.truncated);
    assert!(ints(&scan_all(w.table()).await, "payment_type_id").is_empty());
    // the truncate removed the old file instead of position-deleting its rows
    let snapshot = w.table().metadata().current_snapshot().unwrap().clone();
    let summary = &snapshot.summary().additional_properties;
    assert_eq!(summary["deleted-data-files"], "1");
    assert_eq!(summary["deleted-records"], "4");
    assert_eq!(summary["total-data-files"], "0");
    assert_eq!(summary["total-records"], "0");
    assert_eq!(summary["total-position-deletes"], "0");
    w.apply(&pt[2]).await.unwrap();
    assert_eq!(
        ints(&scan_all(w.table()).await, "payment_type_id"),
        [1, 2],
        "truncated, then reloaded"
    );
    let tasks = crate::support::scan_tasks(w.table()).await;
    assert_eq!(tasks.len(), 1, "only the reload's file is live");
    assert!(
        tasks.iter().all(|t| t.deletes.is_empty()),
        "no position deletes after a truncate"
    );
    // a restart rebuilds the index from the remaining file only
    drop(w);
    let mut w = writer(&lake, &pt[0]).await;
    assert_eq!(w.live_rows(), 2);
    assert_eq!(w.apply(&pt[1]).await.unwrap().already_applied, 1);
    assert_eq!(w.apply(&pt[2]).await.unwrap().already_applied, 2);
    assert_eq!(w.live_rows(), 2, "a replayed truncate truncates nothing");

    // vendors: r1 r2 d2 (tombstone) c3
    let v = batches("taxi.public.vendors", &[]).await;
    let mut w = writer(&lake, &v[0]).await;
    w.apply(&v[0]).await.unwrap();
    assert_eq!(ints(&scan_all(w.table()).await, "vendor_id"), [1, 3]);
    std::fs::remove_dir_all(lake.config.warehouse.local_dir().unwrap()).ok();
}

#[tokio::test]
async fn a_column_added_in_postgres_is_added_to_the_table() {
    // r1 r2 c3 u1 u2 | u3 d1 tombstone | c4(+surcharge) u3(+surcharge, notes unchanged)
    let all = batches("taxi.public.trips", &[5, 8]).await;
    assert_eq!(all.len(), 3);
    assert!(all[2].schema_changed());
    let lake = lake("addcolumn");
    let mut w = writer(&lake, &all[0]).await;
    for b in &all {
        w.apply(b).await.unwrap();
    }
    let schema = w.table().metadata().current_schema().clone();
    let surcharge = schema
        .field_by_name("congestion_surcharge")
        .expect("column added");
    assert!(!surcharge.required);
    let scanned = scan_all(w.table()).await;
    let end = trips(&scanned);
    assert_eq!(end.keys().copied().collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(
        end[&3].notes.as_deref(),
        Some("note-".repeat(1000).as_str()),
        "TOAST kept across the schema change"
    );
    let surcharges = by_trip(
        &scanned,
        "congestion_surcharge",
        |a: &Decimal128Array, i| a.value(i),
    );
    assert_eq!(
        surcharges,
        BTreeMap::from([(2, None), (3, Some(275)), (4, Some(250))])
    );
    std::fs::remove_dir_all(lake.config.warehouse.local_dir().unwrap()).ok();
}

/// A commit whose pointer swap cannot happen (a catalog database without
/// the table's row) is what a crash between writing files and the swap
/// leaves behind: files on disk, the table unchanged.
#[tokio::test]
async fn a_crash_before_the_pointer_swap_then_a_replay_gives_the_same_table() {
    let all = batches("taxi.public.trips", &[5, 8]).await;
    let lake = lake("crash");
    let catalog = open_catalog(&lake.config).await.unwrap();
    let target = TableTarget::for_batch(&all[0], &lake.config.tables).unwrap();
    let table = ensure_table(catalog.as_ref(), &target, &all[0])
        .await
        .unwrap();
    let elsewhere = format!(
        "sqlite://{}?mode=rwc",
        lake.config
            .warehouse
            .local_dir()
            .unwrap()
            .join("elsewhere.db")
            .display()
    );
    let dead = SqlCatalogPointer::connect(&elsewhere).await.unwrap();
    let mut w = TableWriter::open(catalog.clone(), table, dead)
        .await
        .unwrap();
    let err = w.apply(&all[0]).await.unwrap_err();
    assert!(
        matches!(err, lakehouse::LakehouseError::Commit { .. }),
        "{err}"
    );
    let again = w.apply(&all[0]).await.unwrap_err();
    assert!(
        matches!(again, lakehouse::LakehouseError::WriterPoisoned { .. }),
        "{again}"
    );
    let data_dir = lake
        .config
        .warehouse
        .local_dir()
        .unwrap()
        .join("taxi_cdc/trips/data");
    assert!(
        data_dir.exists(),
        "the crashed commit left its files behind"
    );
    let reloaded = catalog.load_table(&target.ident).await.unwrap();
    assert!(
        reloaded.metadata().current_snapshot().is_none(),
        "but the table did not change"
    );

    // restart and replay everything from the table's offsets (none yet)
    let mut w = writer(&lake, &all[0]).await;
    for b in &all {
        w.apply(b).await.unwrap();
    }
    let end = trips(&scan_all(w.table()).await);
    assert_eq!(end.keys().copied().collect::<Vec<_>>(), [2, 3, 4]);
    let snapshots = w.table().metadata().snapshots().count();

    // replaying batches the table already holds changes nothing
    for b in &all {
        let stats = w.apply(b).await.unwrap();
        assert_eq!(stats.already_applied, b.num_rows());
        assert_eq!((stats.rows_written, stats.rows_deleted), (0, 0));
    }
    assert_eq!(
        w.table().metadata().snapshots().count(),
        snapshots,
        "no new snapshot for a replay"
    );
    assert_eq!(trips(&scan_all(w.table()).await), end);
    std::fs::remove_dir_all(lake.config.warehouse.local_dir().unwrap()).ok();
}

/// Two writers on one table: the one whose parent is stale loses the
/// compare-and-swap, reloads, and retries on top of the other's commit.
#[tokio::test]
async fn a_writer_that_loses_the_commit_race_reloads_and_retries() {
    let all = batches("taxi.public.trips", &[5, 8]).await;
    let lake = lake("race");
    let mut a = writer(&lake, &all[0]).await;
    let mut b = writer(&lake, &all[0]).await;
    a.apply(&all[0]).await.unwrap();
    // b's table handle predates a's commit: its first attempt conflicts
    b.apply(&all[1]).await.unwrap();
    let end = trips(&scan_all(b.table()).await);
    assert_eq!(
        end.keys().copied().collect::<Vec<_>>(),
        [2, 3],
        "a's rows and b's changes are both there"
    );
    assert_eq!(
        end[&3].notes.as_deref(),
        Some("note-".repeat(1000).as_str()),
        "b saw a's row for the TOAST value"
    );
    assert_eq!(b.table().metadata().snapshots().count(), 2);
    std::fs::remove_dir_all(lake.config.warehouse.local_dir().unwrap()).ok();
}

/// A source table whose primary key changed (here: batches of another
/// table, keyed differently) is refused before anything is written.
#[tokio::test]
async fn a_changed_primary_key_is_refused_and_commits_nothing() {
    let trips = batches("taxi.public.trips", &[]).await;
    let vendors = batches("taxi.public.vendors", &[]).await;
    let lake = lake("rekey");
    let mut w = writer(&lake, &trips[0]).await;
    w.apply(&trips[0]).await.unwrap();
    let before = w.table().metadata_location().map(str::to_string);
    let mut rekeyed = vendors[0].clone();
    rekeyed.topic = trips[0].topic.clone();
    // later in the topic than anything the table holds (an earlier offset
    // would be skipped as already applied, whatever its schema)
    let offsets = rekeyed
        .records
        .column_by_name(ingest::columns::OFFSET)
        .unwrap();
    let later: arrow_array::Int64Array = offsets
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap()
        .iter()
        .map(|o| o.map(|o| o + 1_000))
        .collect();
    let at = rekeyed
        .records
        .schema()
        .index_of(ingest::columns::OFFSET)
        .unwrap();
    let mut columns = rekeyed.records.columns().to_vec();
    columns[at] = std::sync::Arc::new(later);
    rekeyed.records = arrow_array::RecordBatch::try_new(rekeyed.records.schema(), columns).unwrap();
    for r in &mut rekeyed.offsets {
        r.first += 1_000;
        r.last += 1_000;
    }
    let err = w.apply(&rekeyed).await.unwrap_err();
    assert!(err.to_string().contains("cannot re-key"), "{err}");
    assert_eq!(
        w.table().metadata_location().map(str::to_string),
        before,
        "nothing committed"
    );
    std::fs::remove_dir_all(lake.config.warehouse.local_dir().unwrap()).ok();
}

/// The recorded trips value schema with `edit` applied to the row's fields
/// (as Postgres' ALTER COLUMN ... TYPE would change it), registered as `id`.
fn altered_schema(
    rec: &Recording,
    id: u32,
    edit: impl Fn(&mut serde_json::Value),
) -> ingest::RecordedSchemas {
    let value_id = rec.schemas.subject_versions("taxi.public.trips-value")[0];
    let mut json: serde_json::Value =
        serde_json::from_str(rec.schemas.get(value_id).unwrap()).unwrap();
    let row = &mut json["fields"][0]["type"][1]["fields"];
    for field in row.as_array_mut().unwrap() {
        edit(field);
    }
    let mut schemas = rec.schemas.clone();
    schemas.insert(id, &json.to_string());
    schemas
}

async fn apply_one_update(
    w: &mut TableWriter,
    schemas: ingest::RecordedSchemas,
    id: u32,
    vendor: ingest::testing::Value,
    offset: i64,
) -> Result<(), lakehouse::LakehouseError> {
    use ingest::testing::{decimal, EventEncoder, Value};
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium");
    let rec = Recording::load(&dir).unwrap();
    let key_id = rec.schemas.subject_versions("taxi.public.trips-key")[0];
    let enc = EventEncoder::new(&schemas, id, key_id).unwrap();
    let after = std::collections::HashMap::from([
        ("trip_id", Value::Long(3)),
        ("vendor_id", vendor),
        ("pickup_datetime", Value::Long(PICKUP_3)),
        ("dropoff_datetime", Value::Long(PICKUP_3 + 1_200_000_000)),
        ("pickup_zone_id", Value::Int(132)),
        ("dropoff_zone_id", Value::Int(48)),
        ("fare_amount", decimal(123_456_789)),
        ("notes", Value::String("widened".into())),
    ]);
    let key = std::collections::HashMap::from([("trip_id", Value::Long(3))]);
    let (k, v) = enc
        .event(ingest::Op::Update, Some(&key), None, Some(&after), 99)
        .unwrap();
    let msg = ingest::RecordedMessage {
        topic: "taxi.public.trips".into(),
        partition: 0,
        offset,
        timestamp_ms: None,
        key: k,
        value: Some(v),
    };
    let mut d = ChangeDecoder::new(schemas);
    d.push(&msg.as_raw()).await.unwrap();
    let batch = d.flush().remove(0);
    w.apply(&batch).await.map(|_| ())
}

#[tokio::test]
async fn widened_column_types_are_applied_and_narrowing_is_refused() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium");
    let rec = Recording::load(&dir).unwrap();
    let first = batches("taxi.public.trips", &[]).await.remove(0);
    let lake = lake("widen");
    let mut w = writer(&lake, &first).await;
    w.apply(&first).await.unwrap();

    // int -> bigint, numeric(10,2) -> numeric(12,2)
    let widened = altered_schema(&rec, 900, |f| match f["name"].as_str() {
        Some("vendor_id") => f["type"] = serde_json::json!("long"),
        Some("fare_amount") => {
            f["type"][1]["precision"] = serde_json::json!(12);
            f["type"][1]["connect.parameters"]["connect.decimal.precision"] =
                serde_json::json!("12");
        }
        _ => {}
    });
    apply_one_update(
        &mut w,
        widened,
        900,
        ingest::testing::Value::Long(5_000_000_000),
        100,
    )
    .await
    .unwrap();
    let schema = w.table().metadata().current_schema().clone();
    use iceberg::spec::{PrimitiveType, Type};
    assert_eq!(
        *schema.field_by_name("vendor_id").unwrap().field_type,
        Type::Primitive(PrimitiveType::Long)
    );
    assert_eq!(
        *schema.field_by_name("fare_amount").unwrap().field_type,
        Type::Primitive(PrimitiveType::Decimal {
            precision: 12,
            scale: 2
        })
    );
    let scanned = scan_all(w.table()).await;
    // vendor_id must read back as long (the helper panics otherwise)
    let vendors: BTreeMap<i64, i64> =
        by_trip(&scanned, "vendor_id", |a: &Int64Array, i| a.value(i))
            .into_iter()
            .map(|(id, v)| (id, v.expect("vendor_id is required")))
            .collect();
    assert_eq!(
        vendors,
        BTreeMap::from([(2, 2), (3, 5_000_000_000)]),
        "old rows promoted, new row wide"
    );

    // numeric(8,2) -> int is a narrowing: refused, nothing committed
    let before = w.table().metadata_location().map(str::to_string);
    let narrowed = altered_schema(&rec, 901, |f| {
        if f["name"] == "trip_distance" {
            f["type"] = serde_json::json!(["null", "int"]);
        }
    });
    let err = apply_one_update(&mut w, narrowed, 901, ingest::testing::Value::Int(2), 101)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("changed type"), "{err}");
    let catalog = open_catalog(&lake.config).await.unwrap();
    let reloaded = catalog.load_table(w.table().identifier()).await.unwrap();
    assert_eq!(
        reloaded.metadata_location().map(str::to_string),
        before,
        "nothing committed"
    );
    std::fs::remove_dir_all(lake.config.warehouse.local_dir().unwrap()).ok();
}

#[tokio::test]
async fn append_mode_keeps_every_change_as_a_row() {
    // payment_types in append mode: r r r r | t | c c, then a replay
    let pt = batches("taxi.public.payment_types", &[4]).await;
    let mut lake = lake("append");
    lake.config.tables.by_source.insert(
        "public.payment_types".into(),
        TableConfig {
            mode: lakehouse::TableMode::Append,
            ..Default::default()
        },
    );
    let mut w = writer(&lake, &pt[0]).await;
    for b in &pt {
        w.apply(b).await.unwrap();
    }
    let replayed = w.apply(&pt[2]).await.unwrap();
    assert_eq!(replayed.already_applied, 2, "a replay appends nothing");

    let scanned = scan_all(w.table()).await;
    let mut rows: Vec<(i64, String, Option<i32>, Option<String>)> = Vec::new();
    for b in &scanned {
        let col = |n: &str| b.column_by_name(n).unwrap().clone();
        let (offset, op, id, name) = (
            col("_kafka_offset"),
            col("_op"),
            col("payment_type_id"),
            col("description"),
        );
        let offset = offset.as_any().downcast_ref::<Int64Array>().unwrap();
        let op = op.as_any().downcast_ref::<StringArray>().unwrap();
        let id = id.as_any().downcast_ref::<Int32Array>().unwrap();
        let name = name.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            rows.push((
                offset.value(i),
                op.value(i).to_string(),
                id.is_valid(i).then(|| id.value(i)),
                name.is_valid(i).then(|| name.value(i).to_string()),
            ));
        }
    }
    rows.sort();
    let ops: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(ops, ["r", "r", "r", "r", "t", "c", "c"]);
    let offsets: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(offsets, (0..7).collect::<Vec<_>>());
    // the truncate row has no row image; the reload rows do
    assert_eq!(rows[4].2, None);
    assert_eq!(rows[5].2, Some(1));
    assert_eq!(rows[6].3.as_deref(), Some("Cash"));
    // the source commit time is kept
    let ts = scanned[0].column_by_name("_source_ts").unwrap();
    assert_eq!(ts.null_count(), 0);
    std::fs::remove_dir_all(lake.config.warehouse.local_dir().unwrap()).ok();
}
