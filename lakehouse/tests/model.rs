//! Random CDC histories, decoded and applied, must leave the table equal to
//! a model of the source table: inserts, updates that move rows between
//! day partitions, deletes (with tombstones), primary-key changes, updates
//! that leave the TOASTed `notes` unchanged, truncates; cut into random
//! batches, with random crashes before the pointer swap after which the
//! writer restarts and resumes from the offsets stored in the table.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use arrow_array::{
    Array, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use ingest::testing::{decimal, EventEncoder, Value};
use ingest::{ChangeDecoder, Op, RecordedMessage, Recording, DEFAULT_UNAVAILABLE_PLACEHOLDER};
use lakehouse::apply::TableWriter;
use lakehouse::transaction::SqlCatalogPointer;
use lakehouse::{ensure_table, open_catalog, LakeConfig, TableTarget};
use proptest::prelude::*;

use crate::support::scan_all;

pub(crate) const TOPIC: &str = "taxi.public.trips";
const DAY_US: i64 = 86_400_000_000;
const MARCH_1: i64 = 1_709_251_200_000_000;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) pickup_us: i64,
    pub(crate) fare: i64,
    pub(crate) notes: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Action {
    Upsert {
        key: i64,
        day: i64,
        fare: i64,
        notes: Option<String>,
        keep_notes: bool,
    },
    Delete {
        key: i64,
    },
    ChangeKey {
        from: i64,
        to: i64,
    },
    Truncate,
}

fn action() -> impl Strategy<Value = Action> {
    let key = 1i64..12;
    prop_oneof![
        6 => (key.clone(), 0i64..5, 100i64..10_000, proptest::option::of("[a-z]{1,12}"), any::<bool>())
            .prop_map(|(key, day, fare, notes, keep_notes)| Action::Upsert { key, day, fare, notes, keep_notes }),
        2 => key.clone().prop_map(|key| Action::Delete { key }),
        1 => (key.clone(), key).prop_map(|(from, to)| Action::ChangeKey { from, to }),
        1 => Just(Action::Truncate),
    ]
}

fn image(key: i64, row: &Row) -> HashMap<&'static str, Value> {
    let mut m = HashMap::from([
        ("trip_id", Value::Long(key)),
        ("vendor_id", Value::Int(1)),
        ("pickup_datetime", Value::Long(row.pickup_us)),
        ("dropoff_datetime", Value::Long(row.pickup_us + 600_000_000)),
        ("pickup_zone_id", Value::Int(1)),
        ("dropoff_zone_id", Value::Int(2)),
        ("fare_amount", decimal(row.fare)),
    ]);
    if let Some(n) = &row.notes {
        m.insert("notes", Value::String(n.clone()));
    }
    m
}

fn key_of(key: i64) -> HashMap<&'static str, Value> {
    HashMap::from([("trip_id", Value::Long(key))])
}

/// Key and value bytes of one Kafka record (a null value is a tombstone).
type KafkaRecord = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The Kafka messages Debezium would send for `actions`, and the model.
pub(crate) fn history(
    enc: &EventEncoder,
    actions: &[Action],
) -> (Vec<RecordedMessage>, BTreeMap<i64, Row>) {
    let mut model: BTreeMap<i64, Row> = BTreeMap::new();
    let mut out: Vec<KafkaRecord> = Vec::new();
    let mut lsn = 0i64;
    let mut event = |op: Op,
                     key: Option<i64>,
                     before: Option<HashMap<&str, Value>>,
                     after: Option<HashMap<&str, Value>>| {
        lsn += 1;
        let k = key.map(key_of);
        let (kb, vb) = enc
            .event(op, k.as_ref(), before.as_ref(), after.as_ref(), lsn)
            .unwrap();
        (kb, Some(vb))
    };
    for a in actions {
        match a {
            Action::Upsert {
                key,
                day,
                fare,
                notes,
                keep_notes,
            } => {
                let row = Row {
                    pickup_us: MARCH_1 + day * DAY_US + 3_600_000_000,
                    fare: *fare,
                    notes: notes.clone(),
                };
                match model.get(key).cloned() {
                    Some(old) if *keep_notes && old.notes.is_some() => {
                        // Debezium sends the placeholder for the unchanged TOASTed column
                        let mut sent = image(*key, &row);
                        sent.insert(
                            "notes",
                            Value::String(DEFAULT_UNAVAILABLE_PLACEHOLDER.into()),
                        );
                        out.push(event(Op::Update, Some(*key), None, Some(sent)));
                        model.insert(
                            *key,
                            Row {
                                notes: old.notes,
                                ..row
                            },
                        );
                    }
                    Some(_) => {
                        out.push(event(Op::Update, Some(*key), None, Some(image(*key, &row))));
                        model.insert(*key, row);
                    }
                    None => {
                        out.push(event(Op::Create, Some(*key), None, Some(image(*key, &row))));
                        model.insert(*key, row);
                    }
                }
            }
            Action::Delete { key } => {
                // key-only before-image, then a tombstone (absent keys too)
                let before = image(
                    *key,
                    &Row {
                        pickup_us: 0,
                        fare: 0,
                        notes: None,
                    },
                );
                out.push(event(Op::Delete, Some(*key), Some(before), None));
                out.push((
                    Some(
                        enc.event(Op::Delete, Some(&key_of(*key)), None, None, 0)
                            .unwrap()
                            .0
                            .unwrap(),
                    ),
                    None,
                ));
                model.remove(key);
            }
            Action::ChangeKey { from, to } => {
                if from == to || !model.contains_key(from) || model.contains_key(to) {
                    continue;
                }
                let row = model.remove(from).unwrap();
                let before = image(
                    *from,
                    &Row {
                        pickup_us: 0,
                        fare: 0,
                        notes: None,
                    },
                );
                out.push(event(Op::Delete, Some(*from), Some(before), None));
                out.push((
                    Some(
                        enc.event(Op::Delete, Some(&key_of(*from)), None, None, 0)
                            .unwrap()
                            .0
                            .unwrap(),
                    ),
                    None,
                ));
                out.push(event(Op::Create, Some(*to), None, Some(image(*to, &row))));
                model.insert(*to, row);
            }
            Action::Truncate => {
                out.push(event(Op::Truncate, None, None, None));
                model.clear();
            }
        }
    }
    let messages = out
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| RecordedMessage {
            topic: TOPIC.into(),
            partition: 0,
            offset: i as i64,
            timestamp_ms: None,
            key,
            value,
        })
        .collect();
    (messages, model)
}

pub(crate) fn table_state(batches: &[RecordBatch]) -> BTreeMap<i64, Row> {
    let mut out = BTreeMap::new();
    for b in batches {
        let get = |n: &str| b.column_by_name(n).unwrap().clone();
        let (id, pickup, fare, notes) = (
            get("trip_id"),
            get("pickup_datetime"),
            get("fare_amount"),
            get("notes"),
        );
        let id = id.as_any().downcast_ref::<Int64Array>().unwrap();
        let pickup = pickup
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let fare = fare.as_any().downcast_ref::<Decimal128Array>().unwrap();
        let notes = notes.as_any().downcast_ref::<StringArray>().unwrap();
        for i in 0..b.num_rows() {
            let row = Row {
                pickup_us: pickup.value(i),
                fare: fare.value(i) as i64,
                notes: notes.is_valid(i).then(|| notes.value(i).to_string()),
            };
            assert!(
                out.insert(id.value(i), row).is_none(),
                "duplicate live row for trip {}",
                id.value(i)
            );
        }
    }
    out
}

async fn run(
    actions: Vec<Action>,
    cuts: Vec<usize>,
    crashes: Vec<bool>,
    case: usize,
) -> Result<(), TestCaseError> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium");
    let rec = Recording::load(&dir).unwrap();
    let value_id = rec.schemas.subject_versions("taxi.public.trips-value")[0];
    let key_id = rec.schemas.subject_versions("taxi.public.trips-key")[0];
    let enc = EventEncoder::new(&rec.schemas, value_id, key_id).unwrap();
    let (messages, model) = history(&enc, &actions);

    let warehouse = std::env::temp_dir().join(format!("floe-model-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&warehouse);
    let mut lake = LakeConfig {
        warehouse: warehouse.clone().into(),
        ..LakeConfig::default()
    };
    crate::support::trips_by_day(&mut lake);
    let uri = format!(
        "sqlite://{}?mode=rwc",
        warehouse.join("catalog.db").display()
    );
    let dead_uri = format!("sqlite://{}?mode=rwc", warehouse.join("dead.db").display());
    let catalog = open_catalog(&lake).await.unwrap();

    let mut writer: Option<TableWriter> = None;
    let mut next = 0usize;
    let mut step = 0usize;
    while next < messages.len() {
        let size = cuts[step % cuts.len()].max(1);
        let crash = crashes[step % crashes.len()];
        step += 1;
        let mut decoder = ChangeDecoder::new(rec.schemas.clone());
        let end = (next + size).min(messages.len());
        for m in &messages[next..end] {
            decoder.push(&m.as_raw()).await.unwrap();
        }
        let batches = decoder.flush();
        if batches.is_empty() {
            next = end; // tombstones of a table floe has not seen yet
            continue;
        }
        for batch in batches {
            if writer.is_none() {
                // a truncate-only first batch creates nothing (Lake::writer)
                if !batch.has_row_events() {
                    continue;
                }
                let target = TableTarget::for_batch(&batch, &lake.tables).unwrap();
                let table = ensure_table(catalog.as_ref(), &target, &batch)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let pointer = SqlCatalogPointer::connect(&uri).await.unwrap();
                writer = Some(
                    TableWriter::open(catalog.clone(), table, pointer)
                        .await
                        .unwrap(),
                );
            }
            let w = writer.as_mut().unwrap();
            if crash {
                // the same work, but the pointer swap never happens
                let table = w.table().clone();
                let dead = SqlCatalogPointer::connect(&dead_uri).await.unwrap();
                let mut doomed = TableWriter::open(catalog.clone(), table, dead)
                    .await
                    .unwrap();
                prop_assert!(doomed.apply(&batch).await.is_err());
                // restart: reopen from the catalog and resume from the stored offsets
                let target = TableTarget::for_batch(&batch, &lake.tables).unwrap();
                let table = catalog.load_table(&target.ident).await.unwrap();
                let pointer = SqlCatalogPointer::connect(&uri).await.unwrap();
                *w = TableWriter::open(catalog.clone(), table, pointer)
                    .await
                    .unwrap();
            }
            w.apply(&batch).await.unwrap();
        }
        next = end;
    }
    let state = match &writer {
        Some(w) => table_state(&scan_all(w.table()).await),
        None => BTreeMap::new(),
    };
    prop_assert_eq!(state, model);
    if let Some(w) = &writer {
        let applied = w.applied_offsets();
        let last = messages
            .iter()
            .rposition(|m| m.value.is_some() || m.key.is_some())
            .unwrap() as i64;
        prop_assert!(applied
            .get(&(TOPIC.to_string(), 0))
            .is_some_and(|&o| o <= last));
    }
    std::fs::remove_dir_all(&warehouse).ok();
    Ok(())
}

proptest! {
    // FLOE_MODEL_CASES runs more histories (CI runs 24)
    #![proptest_config(ProptestConfig {
        cases: std::env::var("FLOE_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_histories_equal_the_model(
        actions in proptest::collection::vec(action(), 1..40),
        cuts in proptest::collection::vec(1usize..12, 1..8),
        crashes in proptest::collection::vec(prop_oneof![5 => Just(false), 1 => Just(true)], 1..8),
    ) {
        static CASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let case = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(actions, cuts, crashes, case))?;
    }
}
