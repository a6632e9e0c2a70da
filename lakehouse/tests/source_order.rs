//! A topic with three partitions, applied in source order. The model's
//! random histories (inserts, updates moving rows between day partitions,
//! deletes, primary-key changes, truncates) are spread as Debezium's
//! producer spreads them: a keyed change to its key's partition, a
//! truncate (no key) to any. They arrive in a random interleaving of the
//! partitions (each partition in order), cut into random batches, applied
//! by one writer or by two that each own some partitions (two ingest
//! instances). The table must equal the model: changes that arrive after a
//! later truncate are skipped, and a truncate that arrives after changes
//! made later is followed by those changes, read again from the topic.
//! Debezium may also send a stretch again (a Kafka Connect crash): the
//! changes sent again are skipped by their source position.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use ingest::testing::EventEncoder;
use ingest::{
    ChangeBatch, ChangeDecoder, OffsetRange, RecordedMessage, RecordedSchemas, Recording,
};
use lakehouse::apply::{join_held, SourceReader, TableWriter};
use lakehouse::{open_catalog, LakeConfig, LakehouseError};
use proptest::prelude::*;

use crate::model::{history, open_writer, table_state, Action};
use crate::support::scan_all;

const PARTITIONS: i32 = 3;

/// The topic as Kafka holds it: what a writer reads again from.
struct RecordedTopic {
    messages: Vec<RecordedMessage>,
    schemas: RecordedSchemas,
}

impl SourceReader for RecordedTopic {
    fn reread<'a>(
        &'a self,
        _topic: &'a str,
        ranges: &'a [OffsetRange],
    ) -> BoxFuture<'a, Result<Vec<ChangeBatch>, String>> {
        Box::pin(async move {
            let mut decoder = ChangeDecoder::new(self.schemas.clone());
            for m in &self.messages {
                let wanted = ranges
                    .iter()
                    .any(|r| r.partition == m.partition && (r.first..=r.last).contains(&m.offset));
                if wanted {
                    decoder.push(&m.as_raw()).await.map_err(|e| e.to_string())?;
                }
            }
            Ok(decoder.flush())
        })
    }
}

/// `messages` (one partition, in source order) spread over the
/// partitions: a keyed message to its key's partition, a truncate to the
/// one `truncates` picks; offsets numbered per partition.
fn spread(messages: Vec<RecordedMessage>, truncates: &[i32]) -> Vec<RecordedMessage> {
    let mut next = [0i64; PARTITIONS as usize];
    let mut t = 0;
    messages
        .into_iter()
        .map(|mut m| {
            m.partition = match &m.key {
                // the key's bytes stand in for the producer's hash
                Some(key) => (key.iter().map(|&b| b as i32).sum::<i32>()) % PARTITIONS,
                None => {
                    t += 1;
                    truncates[(t - 1) % truncates.len()].rem_euclid(PARTITIONS)
                }
            };
            m.offset = next[m.partition as usize];
            next[m.partition as usize] += 1;
            m
        })
        .collect()
}

/// One interleaving of the partitions: `picks` say which partition
/// delivers next (one with nothing left passes to the next).
fn deliver(messages: &[RecordedMessage], picks: &[i32]) -> Vec<RecordedMessage> {
    let mut queues: Vec<Vec<&RecordedMessage>> = vec![Vec::new(); PARTITIONS as usize];
    for m in messages {
        queues[m.partition as usize].push(m);
    }
    let mut heads = [0usize; PARTITIONS as usize];
    let mut out = Vec::with_capacity(messages.len());
    let mut step = 0;
    while out.len() < messages.len() {
        let mut p = picks[step % picks.len()].rem_euclid(PARTITIONS) as usize;
        step += 1;
        while heads[p] >= queues[p].len() {
            p = (p + 1) % PARTITIONS as usize;
        }
        out.push(queues[p][heads[p]].clone());
        heads[p] += 1;
    }
    out
}

/// The recorded schemas, and an encoder of trips events with the first
/// value schema.
pub(crate) fn recording() -> (Recording, EventEncoder) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium");
    let rec = Recording::load(&dir).unwrap();
    let value_id = rec.schemas.subject_versions("taxi.public.trips-value")[0];
    let key_id = rec.schemas.subject_versions("taxi.public.trips-key")[0];
    let enc = EventEncoder::new(&rec.schemas, value_id, key_id).unwrap();
    (rec, enc)
}

/// A fresh local lake (trips by day) with its catalog and the catalog's
/// URI for writers; its folder goes when it is dropped.
pub(crate) struct TestLake {
    pub(crate) config: LakeConfig,
    uri: String,
    pub(crate) catalog: Arc<dyn iceberg::Catalog>,
}

impl TestLake {
    pub(crate) async fn new(name: &str) -> Self {
        let warehouse =
            std::env::temp_dir().join(format!("floe-order-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&warehouse);
        let mut config = LakeConfig {
            warehouse: warehouse.clone().into(),
            ..LakeConfig::default()
        };
        crate::support::trips_by_day(&mut config);
        let uri = format!(
            "sqlite://{}?mode=rwc",
            warehouse.join("catalog.db").display()
        );
        let catalog = open_catalog(&config).await.unwrap();
        Self {
            config,
            uri,
            catalog,
        }
    }

    pub(crate) async fn writer(&self, batch: &ChangeBatch) -> TableWriter {
        open_writer(&self.catalog, &self.config, &self.uri, batch).await
    }
}

impl Drop for TestLake {
    fn drop(&mut self) {
        if let Some(dir) = self.config.warehouse.local_dir() {
            std::fs::remove_dir_all(dir).ok();
        }
    }
}

/// What a run saw, for the deterministic tests' assertions.
#[derive(Debug, Default)]
struct Seen {
    before_truncate: usize,
    applied_again: usize,
    resent: usize,
}

/// The stream as Debezium sends it when it resumes from an older source
/// offset after `at` messages: back `back` messages, which come again
/// (under new Kafka offsets).
fn resend(messages: Vec<RecordedMessage>, at: usize, back: usize) -> Vec<RecordedMessage> {
    let at = at % (messages.len() + 1);
    let from = at - back % (at + 1);
    let again = messages[from..at].to_vec();
    let (sent, rest) = messages.split_at(at);
    [sent, &again[..], rest].concat()
}

/// Applies `actions` spread over three partitions and delivered in the
/// interleaving `picks` gives, in batches `cuts` long; with `instances` 2,
/// partition 2 has its own writer. `resent` (at, back): Debezium sends
/// again `back` messages after the first `at`.
async fn run(
    actions: Vec<Action>,
    truncates: Vec<i32>,
    picks: Vec<i32>,
    cuts: Vec<usize>,
    instances: usize,
    resent: Option<(usize, usize)>,
    case: usize,
) -> Result<Seen, TestCaseError> {
    let (rec, enc) = recording();
    let (messages, model) = history(&enc, &actions);
    let messages = match resent {
        Some((at, back)) => resend(messages, at, back),
        None => messages,
    };
    let messages = spread(messages, &truncates);
    let delivered = deliver(&messages, &picks);
    let topic = Arc::new(RecordedTopic {
        messages: messages.clone(),
        schemas: rec.schemas.clone(),
    });

    let lake = TestLake::new(&case.to_string()).await;

    let owner = |partition: i32| usize::from(instances > 1 && partition == PARTITIONS - 1);
    let mut writers: [Option<TableWriter>; 2] = [None, None];
    // truncates held back while the table does not exist, as ingest does
    let mut held: [Option<ChangeBatch>; 2] = [None, None];
    let mut ident = None;
    let mut seen = Seen::default();
    let mut next = 0;
    let mut step = 0;
    // one more round after the last delivery applies what is still held
    while next <= delivered.len() {
        let end = (next + cuts[step % cuts.len()].max(1)).min(delivered.len());
        step += 1;
        let writing = writers.iter_mut().zip(held.iter_mut());
        for (w, (writer, held)) in writing.enumerate().take(instances) {
            let mut decoder = ChangeDecoder::new(rec.schemas.clone());
            for m in delivered[next..end]
                .iter()
                .filter(|m| owner(m.partition) == w)
            {
                decoder.push(&m.as_raw()).await.unwrap();
            }
            let mut batches = decoder.flush();
            if batches.is_empty() {
                batches.extend(held.take());
            }
            for batch in batches {
                let batch = match held.take() {
                    Some(first) => join_held(&first, &batch).unwrap(),
                    None => batch,
                };
                if writer.is_none() {
                    if !batch.has_row_events() && ident.is_none() {
                        *held = Some(batch);
                        continue;
                    }
                    let opened = lake.writer(&batch).await.with_source_reader(topic.clone());
                    ident = Some(opened.table().identifier().clone());
                    *writer = Some(opened);
                }
                let stats = writer.as_mut().unwrap().apply(&batch).await.unwrap();
                seen.before_truncate += stats.before_truncate;
                seen.applied_again += stats.applied_again;
                seen.resent += stats.resent;
            }
        }
        if next == delivered.len() {
            break;
        }
        next = end;
    }
    let state = match &ident {
        Some(ident) => table_state(&scan_all(&lake.catalog.load_table(ident).await.unwrap()).await),
        None => BTreeMap::new(),
    };
    prop_assert_eq!(state, model, "delivered as {:?}", partitions_of(&delivered));
    Ok(seen)
}

fn partitions_of(messages: &[RecordedMessage]) -> Vec<(i32, i64)> {
    messages.iter().map(|m| (m.partition, m.offset)).collect()
}

pub(crate) fn upsert(key: i64, fare: i64) -> Action {
    Action::Upsert {
        key,
        day: key % 3,
        fare,
        notes: None,
        keep_notes: false,
    }
}

/// Keys 1..=9 spread over all three partitions; `spread` puts a truncate on
/// the partition `truncates` names.
fn around_a_truncate() -> Vec<Action> {
    let mut actions: Vec<Action> = (1..=9).map(|k| upsert(k, 100 + k)).collect();
    actions.push(Action::Truncate);
    actions.extend((1..=9).map(|k| upsert(k * 10, 200 + k)));
    actions
}

/// The truncate's partition delivers last: every other partition's changes
/// from after it are committed first, then the truncate, then the changes
/// from before it. They are read again and applied after it, and the old
/// ones are skipped.
#[tokio::test]
async fn a_truncate_delivered_after_later_changes_on_other_partitions() {
    // the truncate goes to partition 0; 1 and 2 deliver everything first,
    // in batches of two
    let seen = run(
        around_a_truncate(),
        vec![0],
        vec![1, 1, 2, 2],
        vec![2],
        1,
        None,
        9_990,
    )
    .await
    .unwrap();
    assert!(seen.applied_again > 0, "{seen:?}");
    assert!(seen.before_truncate == 0, "{seen:?}");
    // and with partition 2 on a second writer
    let seen = run(
        around_a_truncate(),
        vec![0],
        vec![2, 2, 1, 1],
        vec![3],
        2,
        None,
        9_991,
    )
    .await
    .unwrap();
    assert!(seen.applied_again > 0, "{seen:?}");
}

/// The truncate's partition delivers first: the changes made before it on
/// the other partitions arrive after it has committed and are skipped.
#[tokio::test]
async fn changes_delivered_after_a_later_truncate_are_skipped() {
    let seen = run(
        around_a_truncate(),
        vec![2],
        vec![2, 2, 2, 2, 0],
        vec![1],
        1,
        None,
        9_992,
    )
    .await
    .unwrap();
    assert!(seen.before_truncate > 0, "{seen:?}");
}

/// Debezium goes back after a Kafka Connect crash and sends again
/// updates, a delete, a key change, a truncate and inserts and updates
/// after it, all of which the table holds: every
/// one is skipped by its source position (a truncate sent to another
/// partition than the first time, as the one already applied), on one
/// writer and on two, and the table still equals the model.
#[tokio::test]
async fn changes_debezium_sends_again_are_skipped() {
    let mut actions: Vec<Action> = (1..=9).map(|k| upsert(k, 100 + k)).collect();
    actions.extend((1..=9).map(|k| upsert(k, 300 + k)));
    actions.push(Action::Delete { key: 4 });
    actions.push(Action::ChangeKey { from: 5, to: 50 });
    actions.push(Action::Truncate);
    actions.extend((1..=3).map(|k| upsert(k, 500 + k)));
    actions.extend((1..=3).map(|k| upsert(k, 700 + k)));
    let history_len = history(&recording().1, &actions).0.len();
    for (instances, case) in [(1, 9_994), (2, 9_995)] {
        // sent again: from the second round of updates to the last
        // (applied again, the inserts after the truncate would take back
        // the updates that followed them)
        let seen = run(
            actions.clone(),
            vec![0, 1],
            vec![0, 1, 2],
            vec![4],
            instances,
            Some((history_len, history_len - 9)),
            case,
        )
        .await
        .unwrap();
        assert!(seen.resent >= 10, "{seen:?}");
    }
}

/// Without a source to read from, a truncate that arrives late is an
/// error that names the cause and that waiting cannot fix.
#[tokio::test]
async fn a_late_truncate_without_a_source_is_an_error() {
    let (rec, enc) = recording();
    let (messages, _) = history(&enc, &around_a_truncate());
    let messages = spread(messages, &[0]);
    let lake = TestLake::new("late").await;
    // partitions 1 and 2 first, then partition 0 with the truncate
    let mut writer = None;
    for partitions in [[1, 2], [0, 0]] {
        let mut decoder = ChangeDecoder::new(rec.schemas.clone());
        for m in messages
            .iter()
            .filter(|m| partitions.contains(&m.partition))
        {
            decoder.push(&m.as_raw()).await.unwrap();
        }
        for batch in decoder.flush() {
            if writer.is_none() {
                writer = Some(lake.writer(&batch).await);
            }
            let result = writer.as_mut().unwrap().apply(&batch).await;
            if partitions == [0, 0] {
                let e = result.expect_err("the late truncate needs a source");
                assert!(matches!(e, LakehouseError::Reread { .. }), "{e}");
                assert!(!e.is_retryable(), "{e}");
                assert!(e.to_string().contains("one partition"), "{e}");
            } else {
                result.unwrap();
            }
        }
    }
}

/// A table without a primary key has no key on its changes either: on
/// two partitions nothing orders them, and floe says so.
#[tokio::test]
async fn a_table_without_a_key_on_two_partitions_is_refused() {
    let (rec, _) = recording();
    let log: Vec<RecordedMessage> = rec
        .messages
        .iter()
        .filter(|m| m.topic == "taxi.public.event_log")
        .cloned()
        .collect();
    assert!(!log.is_empty() && log.iter().all(|m| m.key.is_none()));
    // the recorded changes twice over; with no key, every change goes
    // where `spread` sends truncates: alternately to partitions 0 and 1
    let messages = spread([log.clone(), log].concat(), &[0, 1]);
    let mut decoder = ChangeDecoder::new(rec.schemas.clone());
    for m in &messages {
        decoder.push(&m.as_raw()).await.unwrap();
    }
    let batches = decoder.flush();
    let lake = TestLake::new("keyless").await;
    let mut writer = lake.writer(&batches[0]).await;
    let e = writer.apply(&batches[0]).await.expect_err("refused");
    assert!(matches!(e, LakehouseError::SchemaMismatch { .. }), "{e}");
    assert!(
        e.to_string().contains("no primary key") && e.to_string().contains("one partition"),
        "{e}"
    );
}

proptest! {
    #![proptest_config(crate::model::model_config())]

    #[test]
    fn random_histories_on_three_partitions_equal_the_model(
        actions in proptest::collection::vec(crate::model::action(), 1..40),
        truncates in proptest::collection::vec(0i32..3, 1..4),
        picks in proptest::collection::vec(0i32..3, 1..24),
        cuts in proptest::collection::vec(1usize..10, 1..6),
        instances in 1usize..3,
        resent in proptest::option::of((0usize..80, 0usize..20)),
    ) {
        static CASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let case = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        // a stretch sent again and applied again would take rows back to
        // older images, or bring back deleted and truncated ones
        rt.block_on(run(actions, truncates, picks, cuts, instances, resent, case))?;
    }
}

/// A column added at the source (a newer value schema) reaches the table
/// from one partition while changes made before it come later on another,
/// with the older columns: those are written with the table's columns,
/// which never go back, so the new column keeps its values.
#[tokio::test]
async fn changes_with_older_columns_arriving_late_keep_the_new_columns() {
    use arrow_array::{Array, Decimal128Array, Int64Array};
    use ingest::testing::decimal;
    use ingest::Op;
    let (rec, _) = recording();
    let key_id = rec.schemas.subject_versions("taxi.public.trips-key")[0];
    let values = rec.schemas.subject_versions("taxi.public.trips-value");
    let old = EventEncoder::new(&rec.schemas, values[0], key_id).unwrap();
    let new = EventEncoder::new(&rec.schemas, *values.last().unwrap(), key_id).unwrap();
    let create = |enc: &EventEncoder, id: i64, lsn: i64, partition: i32| {
        let mut row = crate::interop::trip(id, 0, 1_000 + id);
        if std::ptr::eq(enc, &new) {
            row.insert("congestion_surcharge", decimal(250));
        }
        let key = std::collections::HashMap::from([("trip_id", ingest::testing::Value::Long(id))]);
        let (k, v) = enc
            .event(Op::Create, Some(&key), None, Some(&row), lsn)
            .unwrap();
        RecordedMessage {
            topic: crate::model::TOPIC.into(),
            partition,
            offset: 0,
            timestamp_ms: None,
            key: k,
            value: Some(v),
        }
    };
    // partition 1: made after the column was added; partition 0: before,
    // in two stretches, the second arriving after partition 1's
    let mut p0: Vec<RecordedMessage> = (1..=6).map(|id| create(&old, id, id, 0)).collect();
    for (offset, m) in p0.iter_mut().enumerate() {
        m.offset = offset as i64;
    }
    let p1: Vec<RecordedMessage> = (10..13)
        .enumerate()
        .map(|(offset, id)| RecordedMessage {
            offset: offset as i64,
            ..create(&new, id, 100 + id, 1)
        })
        .collect();
    let lake = TestLake::new("columns").await;
    let mut writer: Option<TableWriter> = None;
    for delivery in [&p0[..3], &p1[..], &p0[3..]] {
        let mut decoder = ChangeDecoder::new(rec.schemas.clone());
        for m in delivery {
            decoder.push(&m.as_raw()).await.unwrap();
        }
        for batch in decoder.flush() {
            if writer.is_none() {
                writer = Some(lake.writer(&batch).await);
            }
            writer.as_mut().unwrap().apply(&batch).await.unwrap();
        }
    }
    let table = lake
        .catalog
        .load_table(writer.unwrap().table().identifier())
        .await
        .unwrap();
    let rows = scan_all(&table).await;
    let mut surcharge = BTreeMap::new();
    for b in &rows {
        let ids = b.column_by_name("trip_id").unwrap();
        let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
        let column = b
            .column_by_name("congestion_surcharge")
            .expect("the added column stays");
        let column = column.as_any().downcast_ref::<Decimal128Array>().unwrap();
        for i in 0..b.num_rows() {
            surcharge.insert(ids.value(i), column.is_valid(i).then(|| column.value(i)));
        }
    }
    let expected: BTreeMap<i64, Option<i128>> = (1..=6)
        .map(|id| (id, None))
        .chain((10..13).map(|id| (id, Some(250))))
        .collect();
    assert_eq!(surcharge, expected);
}
