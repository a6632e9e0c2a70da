//! Random CDC histories, decoded and applied, must leave the table equal to
//! a model of the source table: inserts, updates that move rows between
//! day partitions, deletes (with tombstones), primary-key changes, updates
//! that leave the TOASTed `notes` unchanged, truncates; cut into random
//! batches applied by two writers in random turns (each losing the commit
//! race whenever the other or a compaction committed since it last did),
//! with random compactions and random crashes before the pointer swap
//! after which the writer restarts and resumes from the offsets stored in
//! the table. A lost race must be recovered from the snapshots committed
//! since, never by scanning the table: index builds are counted. Writers
//! merge their small files after commits where the history says, under a
//! tight policy, and every partition must then be within its bound.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use arrow_array::{
    Array, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use ingest::testing::{decimal, EventEncoder, Value};
use ingest::{ChangeDecoder, Op, RecordedMessage, Recording, DEFAULT_UNAVAILABLE_PLACEHOLDER};
use lakehouse::apply::TableWriter;
use lakehouse::maintain::{compact, CompactPolicy};
use lakehouse::transaction::{KafkaOffsets, RetryPolicy, SqlCatalogPointer};
use lakehouse::{ensure_table, open_catalog, Lake, LakeConfig, MergePolicy, TableTarget};
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

pub(crate) fn action() -> impl Strategy<Value = Action> {
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
    // each action is one transaction: its changes' LSNs, then its commit's;
    // Debezium's `sequence` pairs a change's LSN with the commit before it
    let lsn = std::cell::Cell::new(0i64);
    let commit = std::cell::Cell::new(0i64);
    let key_change = std::cell::Cell::new(false);
    let event = |op: Op,
                 key: Option<i64>,
                 before: Option<HashMap<&str, Value>>,
                 after: Option<HashMap<&str, Value>>| {
        // a key change's delete and create come from one WAL record
        if op != Op::Create || before.is_some() || !key_change.get() {
            lsn.set(lsn.get() + 1);
        }
        let k = key.map(key_of);
        let (kb, vb) = enc
            .event_in_stream(
                op,
                k.as_ref(),
                before.as_ref(),
                after.as_ref(),
                lsn.get(),
                Some(commit.get()),
            )
            .unwrap();
        (kb, Some(vb))
    };
    for a in actions {
        key_change.set(matches!(a, Action::ChangeKey { .. }));
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
        lsn.set(lsn.get() + 1);
        commit.set(lsn.get());
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

/// What one run of a history did besides committing it.
#[derive(Debug, Default)]
struct RunStats {
    /// Writers opened (each builds its index once, by scanning the table).
    opens: u64,
    /// Index builds by scanning the table, over all writers.
    full_builds: u64,
    /// Of those, builds after a lost race.
    rebuilds: u64,
    /// Lost races the writers recovered from by reading only the
    /// snapshots committed since.
    catch_ups: u64,
    compactions: u64,
    /// Merge rounds that rewrote files, and that lost a race.
    merges: u64,
    merges_lost: u64,
    /// Commit rounds that waited for merges to get back within the bound.
    merge_waits: u64,
    /// Rows deleted while a merge wrote its files, deleted again after.
    deleted_again: u64,
    /// Rows of partitions' newest files commits wrote again (tails).
    tail_rows: u64,
    /// Batches whose files were written while the writer's commit before
    /// was being made (`launch`).
    overlapped: u64,
}

/// What a writer does about merging after a commit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Merge {
    /// Nothing.
    No,
    /// A whole round, waited for (`merge`): one under way finishes first.
    Now,
    /// As ingest does (`merge_beside`): a round starts in the background,
    /// or one whose files are written commits on the table as the
    /// writer's later commits left it.
    Beside,
}

/// Merges after almost every commit of the small test tables: two files
/// per tier, three per partition at most; a tail seals its old rows
/// after three rewrites. (These histories seldom keep a tail that long:
/// their compactions and second writer make the writer forget its
/// tails. Sealing, and sealed files under merges, are tested by
/// `compact::a_commit_writes_its_partitions_tail_again_instead_of_adding_a_file`.)
pub(crate) fn tight_merges() -> MergePolicy {
    MergePolicy {
        max_files: 3,
        fanout: 2,
        target_file_bytes: 1 << 20,
        max_deleted_share: 0.3,
        tail_rewrites: 3,
        ..MergePolicy::default()
    }
}

/// Opens a writer on the table of `batch`, creating it if needed.
pub(crate) async fn open_writer(
    catalog: &std::sync::Arc<dyn iceberg::Catalog>,
    lake: &LakeConfig,
    uri: &str,
    batch: &ingest::ChangeBatch,
) -> TableWriter {
    let target = TableTarget::for_batch(batch, &lake.tables).unwrap();
    let table = ensure_table(catalog.as_ref(), &target, batch)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pointer = SqlCatalogPointer::connect(uri).await.unwrap();
    // lost races are retried at once: the races here are sequential
    let fast = RetryPolicy {
        min_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(2),
        ..RetryPolicy::default()
    };
    TableWriter::open(catalog.clone(), table, pointer)
        .await
        .unwrap()
        .with_retry(fast)
        .with_merge_policy(tight_merges())
}

/// How a history is applied, batch by batch (each list repeats): batch
/// sizes, crashes before the pointer swap, which of the two writers
/// applies it, compactions before it, a merge round by the writer after
/// its commit, and whether it is launched (`TableWriter::launch`: its
/// files written while the writer's commit before is being made, its
/// own commit left in flight) rather than applied.
#[derive(Debug, Clone)]
struct Steps {
    cuts: Vec<usize>,
    crashes: Vec<bool>,
    who: Vec<usize>,
    compactions: Vec<bool>,
    merges: Vec<Merge>,
    launches: Vec<bool>,
}

/// Applies `actions` as a CDC history through two writers on the same
/// table, step by step as `steps` says.
async fn run(actions: Vec<Action>, steps: Steps, case: usize) -> Result<RunStats, TestCaseError> {
    let Steps {
        cuts,
        crashes,
        who,
        compactions,
        merges,
        launches,
    } = steps;
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
    // every other history with a delete file per data file it hits, so
    // merges drop deletes whole as well as carry them
    if !case.is_multiple_of(2) {
        if let Some(trips) = lake.tables.by_source.get_mut("public.trips") {
            trips
                .properties
                .insert("write.delete.granularity".into(), "file".into());
        }
    }
    let uri = format!(
        "sqlite://{}?mode=rwc",
        warehouse.join("catalog.db").display()
    );
    let dead_uri = format!("sqlite://{}?mode=rwc", warehouse.join("dead.db").display());
    let catalog = open_catalog(&lake).await.unwrap();
    let handle = Lake::open(&lake).await.unwrap();
    let policy = CompactPolicy {
        min_small_files: 2,
        max_deleted_ratio: 0.0,
        ..CompactPolicy::default()
    };

    let mut stats = RunStats::default();
    let mut writers: [Option<TableWriter>; 2] = [None, None];
    let mut ident = None;
    let mut next = 0usize;
    let mut step = 0usize;
    while next < messages.len() {
        let size = cuts[step % cuts.len()].max(1);
        let crash = crashes[step % crashes.len()];
        let w = who[step % who.len()] % 2;
        let merge = merges[step % merges.len()];
        let launch = launches[step % launches.len()];
        if compactions[step % compactions.len()] {
            if let Some(ident) = &ident {
                let report = compact(&handle, ident, &policy, false).await.unwrap();
                stats.compactions += u64::from(report.snapshot_id.is_some());
            }
        }
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
        // the other writer's commit lands before this one reads the table:
        // the history is one Kafka partition, applied in its order
        if let Some(other) = writers[1 - w].as_mut() {
            other.land().await.unwrap();
            note_landed(other, &mut stats);
        }
        for batch in batches {
            if writers[w].is_none() {
                // a truncate-only first batch creates nothing (Lake::writer)
                if !batch.has_row_events() && ident.is_none() {
                    continue;
                }
                let opened = open_writer(&catalog, &lake, &uri, &batch).await;
                ident = Some(opened.table().identifier().clone());
                stats.opens += 1;
                writers[w] = Some(opened);
            }
            let writer = writers[w].as_mut().unwrap();
            if crash {
                // a commit in flight lands before the crash
                writer.land().await.unwrap();
                note_landed(writer, &mut stats);
                // the same work, but the pointer swap never happens
                let table = writer.table().clone();
                let dead = SqlCatalogPointer::connect(&dead_uri).await.unwrap();
                let mut doomed = TableWriter::open(catalog.clone(), table, dead)
                    .await
                    .unwrap();
                prop_assert!(doomed.apply(&batch).await.is_err());
                // restart: reopen from the catalog and resume from the stored offsets
                stats.full_builds += writer.full_index_builds();
                stats.rebuilds += writer.index_rebuilds_after_races();
                stats.catch_ups += writer.index_catch_ups();
                *writer = open_writer(&catalog, &lake, &uri, &batch).await;
                stats.opens += 1;
            }
            if launch && merge == Merge::No {
                writer.launch(&batch).await.unwrap();
            } else {
                let applied = writer.apply(&batch).await.unwrap();
                stats.tail_rows += applied.tail_rows_rewritten as u64;
            }
            note_landed(writer, &mut stats);
            if merge != Merge::No {
                let report = if merge == Merge::Beside {
                    writer.merge_beside().await.unwrap()
                } else {
                    writer.merge().await.unwrap()
                };
                stats.merges += u64::from(report.files_added + report.data_files_removed > 0);
                stats.merges_lost += u64::from(report.lost_race);
                stats.merge_waits += u64::from(report.waited);
                // a merge that lost a race merged nothing (a batch the
                // table already held commits nothing, leaving the writer
                // behind another's commits)
                if report.lost_race {
                    continue;
                }
                let bound = tight_merges().max_files;
                for (partition, files) in writer.files_by_partition().await.unwrap() {
                    prop_assert!(
                        files.len() <= bound,
                        "partition {partition:?} holds {} files after a commit round: {files:?}",
                        files.len()
                    );
                }
            }
        }
        next = end;
    }
    // merges still under way commit on the table as the later commits
    // left it, rows deleted meanwhile deleted again
    for writer in writers.iter_mut().flatten() {
        writer.land().await.unwrap();
        note_landed(writer, &mut stats);
        let report = writer.merge().await.unwrap();
        stats.merges += u64::from(report.files_added + report.data_files_removed > 0);
        stats.merges_lost += u64::from(report.lost_race);
    }
    for writer in writers.iter().flatten() {
        stats.deleted_again += writer.rows_deleted_again_by_merges();
        stats.full_builds += writer.full_index_builds();
        stats.rebuilds += writer.index_rebuilds_after_races();
        stats.catch_ups += writer.index_catch_ups();
    }
    let state = match &ident {
        Some(ident) => table_state(&scan_all(&catalog.load_table(ident).await.unwrap()).await),
        None => BTreeMap::new(),
    };
    prop_assert_eq!(state, model);
    if let Some(ident) = &ident {
        let table = catalog.load_table(ident).await.unwrap();
        for (path, (named, referenced)) in crate::support::delete_files(&table).await {
            let one = (named.len() == 1)
                .then(|| named.iter().next().cloned())
                .flatten();
            prop_assert_eq!(&referenced, &one, "{} names {:?}", path, named);
            prop_assert!(
                case.is_multiple_of(2) || one.is_some(),
                "{} names {:?}",
                path,
                named
            );
        }
    }
    // a writer scans the table when it opens (not when it creates it)
    // and never after a lost race
    prop_assert_eq!(
        stats.rebuilds,
        0,
        "a lost race was recovered by scanning the table: {:?}",
        stats
    );
    prop_assert!(stats.full_builds <= stats.opens, "{:?}", stats);
    if let Some(ident) = &ident {
        let table = catalog.load_table(ident).await.unwrap();
        let applied = KafkaOffsets::of(&table);
        let last = messages
            .iter()
            .rposition(|m| m.value.is_some() || m.key.is_some())
            .unwrap() as i64;
        prop_assert!(applied.get(TOPIC, 0).is_some_and(|o| o <= last));
    }
    std::fs::remove_dir_all(&warehouse).ok();
    Ok(stats)
}

/// Counts what the writer's landed commits did.
fn note_landed(writer: &mut TableWriter, stats: &mut RunStats) {
    for landed in writer.take_landed() {
        stats.tail_rows += landed.stats.tail_rows_rewritten as u64;
        stats.overlapped += u64::from(landed.overlapped);
    }
}

/// Two writers taking turns, compactions between most batches: every
/// batch commits on a table another commit changed, and every one of
/// those races is recovered from the snapshots since.
#[tokio::test]
async fn writers_taking_turns_with_compactions_never_rescan() {
    let mut actions = Vec::new();
    for round in 0..30i64 {
        actions.push(Action::Upsert {
            key: round % 12,
            day: round % 3,
            fare: 100 + round,
            notes: Some(format!("n{round}")),
            keep_notes: false,
        });
        actions.push(Action::Upsert {
            key: (round * 7) % 12,
            day: (round + 1) % 3,
            fare: 500 + round,
            notes: None,
            keep_notes: round % 2 == 0,
        });
        if round % 4 == 3 {
            actions.push(Action::Delete { key: round % 12 });
        }
        if round == 20 {
            actions.push(Action::ChangeKey { from: 3, to: 40 });
        }
    }
    let steps = Steps {
        cuts: vec![3],
        crashes: vec![false],
        who: vec![0, 1],
        compactions: vec![true, true, false],
        merges: vec![Merge::No],
        launches: vec![false],
    };
    let stats = run(actions, steps, 9_999).await.unwrap();
    assert_eq!((stats.opens, stats.full_builds), (2, 1), "{stats:?}");
    assert!(stats.compactions >= 5, "{stats:?}");
    assert!(stats.catch_ups >= 10, "{stats:?}");
    eprintln!("{stats:?}");
}

/// A long history in small batches, every commit followed by a merge
/// round, compactions racing between some batches: every partition stays
/// within its bound, the table equals the model, and a merge never makes
/// a writer scan the table.
#[tokio::test]
async fn merges_inside_the_writer_keep_partitions_within_bounds_beside_compactions() {
    let mut actions = Vec::new();
    for round in 0..80i64 {
        actions.push(Action::Upsert {
            key: round % 23,
            day: round % 4,
            fare: 100 + round,
            notes: Some(format!("n{round}")),
            keep_notes: false,
        });
        actions.push(Action::Upsert {
            key: (round * 7) % 23,
            day: (round + 1) % 4,
            fare: 500 + round,
            notes: None,
            keep_notes: round % 2 == 0,
        });
        if round % 3 == 2 {
            actions.push(Action::Delete { key: round % 23 });
        }
        if round == 50 {
            actions.push(Action::ChangeKey { from: 5, to: 60 });
        }
    }
    let steps = Steps {
        cuts: vec![2, 3],
        crashes: vec![false, false, false, false, false, false, true],
        who: vec![0, 0, 0, 1],
        compactions: vec![false, false, false, false, true],
        merges: vec![Merge::Now],
        launches: vec![false],
    };
    let stats = run(actions, steps, 9_998).await.unwrap();
    assert!(stats.merges >= 20, "{stats:?}");
    assert!(stats.compactions >= 1, "{stats:?}");
    // commits wrote partitions' newest files again, beside the merges
    assert!(stats.tail_rows > 0, "{stats:?}");
    eprintln!("{stats:?}");
}

/// The same long history merged as ingest merges: each round's files
/// written in the background while the writer goes on committing
/// updates and deletes to the rows being merged, then committed on the
/// table as those commits left it (the rows they deleted deleted again
/// from the new files), and an occasional round waited for, when every
/// partition must be within its bound.
#[tokio::test]
async fn merges_beside_the_commits_delete_again_what_the_commits_deleted() {
    let mut actions = Vec::new();
    for round in 0..80i64 {
        actions.push(Action::Upsert {
            key: round % 17,
            day: round % 3,
            fare: 100 + round,
            notes: Some(format!("b{round}")),
            keep_notes: false,
        });
        if round % 2 == 1 {
            actions.push(Action::Delete {
                key: (round * 5) % 17,
            });
        }
        if round == 40 {
            actions.push(Action::ChangeKey { from: 2, to: 70 });
        }
    }
    let steps = Steps {
        cuts: vec![1, 2],
        crashes: vec![false],
        who: vec![0],
        compactions: vec![false, false, false, false, false, false, false, true],
        merges: vec![
            Merge::Beside,
            Merge::No,
            Merge::Beside,
            Merge::Beside,
            Merge::No,
            Merge::Now,
        ],
        launches: vec![false],
    };
    let stats = run(actions, steps, 9_997).await.unwrap();
    assert!(stats.merges >= 10, "{stats:?}");
    assert!(
        stats.deleted_again > 0,
        "no commit deleted a row of files being merged: {stats:?}"
    );
    eprintln!("{stats:?}");
}

/// `max_files` holds after every commit round merged beside the commits,
/// not only after rounds waited for: stretches of commits without merging
/// (a writer whose merges fell behind) push partitions past it, and the
/// next round beside the commits waits for merges until they are within
/// it again (`run` checks every partition after each such round).
#[tokio::test]
async fn a_commit_round_past_the_bound_waits_for_merges() {
    let mut actions = Vec::new();
    for round in 0..90i64 {
        actions.push(Action::Upsert {
            key: round % 19,
            day: round % 3,
            fare: 300 + round,
            notes: None,
            keep_notes: round % 2 == 0,
        });
        if round % 3 == 1 {
            actions.push(Action::Delete {
                key: (round * 7) % 19,
            });
        }
    }
    let mut merges = vec![Merge::Beside, Merge::No, Merge::Beside];
    merges.extend([Merge::No; 12]);
    merges.push(Merge::Beside);
    // a compaction every 16 commits, before the stretch
    let mut compactions = vec![false; 16];
    compactions[1] = true;
    let steps = Steps {
        cuts: vec![1, 2],
        crashes: vec![false],
        who: vec![0],
        compactions,
        merges,
        launches: vec![false],
    };
    let stats = run(actions, steps, 9_996).await.unwrap();
    assert!(stats.merge_waits >= 3, "{stats:?}");
    eprintln!("{stats:?}");
}

/// Batches launched one after another (`TableWriter::launch`): each
/// one's files are written while the commit before it is being made.
/// A second writer takes a turn now and then, so the first one launches
/// on a table that has moved on: that commit loses its race, and the
/// batch prepared on top of it is thrown away with it; both are applied
/// again from the snapshots since. Compactions race the commits in
/// flight, and merge rounds come between. The table equals the model,
/// and no lost race makes a writer scan the table.
#[tokio::test]
async fn batches_launched_beside_the_commit_before_them_equal_the_model() {
    let mut actions = Vec::new();
    for round in 0..60i64 {
        actions.push(Action::Upsert {
            key: round % 13,
            day: round % 3,
            fare: 200 + round,
            notes: (round % 3 == 0).then(|| format!("l{round}")),
            keep_notes: round % 2 == 1,
        });
        if round % 4 == 1 {
            actions.push(Action::Delete {
                key: (round * 5) % 13,
            });
        }
        if round == 30 {
            actions.push(Action::ChangeKey { from: 4, to: 80 });
        }
    }
    let steps = Steps {
        cuts: vec![2, 3],
        crashes: vec![false],
        who: vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        compactions: vec![false, false, false, false, false, false, true],
        // a merge round now and then (after a batch applied, not
        // launched): the writer then knows its files, and launched
        // batches write partitions' newest files again
        merges: vec![Merge::No, Merge::No, Merge::No, Merge::No, Merge::Beside],
        launches: vec![true],
    };
    let stats = run(actions, steps, 9_995).await.unwrap();
    assert!(stats.overlapped >= 6, "{stats:?}");
    assert!(stats.tail_rows > 0, "{stats:?}");
    // the first writer's commit after each of the second writer's turns
    assert!(stats.catch_ups >= 3, "{stats:?}");
    eprintln!("{stats:?}");
}

/// The model tests' proptest settings: FLOE_MODEL_CASES runs more
/// histories (CI runs 24).
pub(crate) fn model_config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("FLOE_MODEL_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(24),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(model_config())]

    #[test]
    fn random_histories_equal_the_model(
        actions in proptest::collection::vec(action(), 1..40),
        cuts in proptest::collection::vec(1usize..12, 1..8),
        crashes in proptest::collection::vec(prop_oneof![5 => Just(false), 1 => Just(true)], 1..8),
        who in proptest::collection::vec(0usize..2, 1..8),
        compactions in proptest::collection::vec(prop_oneof![3 => Just(false), 1 => Just(true)], 1..8),
        merges in proptest::collection::vec(
            prop_oneof![Just(Merge::No), Just(Merge::Now), Just(Merge::Beside)],
            1..8,
        ),
        launches in proptest::collection::vec(any::<bool>(), 1..8),
    ) {
        static CASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let case = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let steps = Steps { cuts, crashes, who, compactions, merges, launches };
        rt.block_on(run(actions, steps, case))?;
    }
}
