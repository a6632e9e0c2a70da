//! A snapshot read again (a lost replication slot, Debezium snapshotting
//! the tables anew): rows deleted at the source meanwhile get no delete
//! event, and the table must lose them when the snapshot ends, while the
//! rows it read and the changes streamed after it keep their newest
//! values.

use std::collections::{BTreeMap, HashMap};

use arrow_array::{Array, Decimal128Array, Int64Array};
use ingest::testing::{EventEncoder, Value};
use ingest::{ChangeDecoder, Op, RecordedMessage};
use lakehouse::apply::TableWriter;

use crate::interop::trip;
use crate::source_order::{recording, TestLake};
use crate::support::scan_all;

fn key(id: i64) -> HashMap<&'static str, Value> {
    HashMap::from([("trip_id", Value::Long(id))])
}

/// Messages in the order Debezium sends them, each on the partition its
/// key hashes to (`id % partitions`), numbered per partition.
pub(crate) struct Topic {
    enc: EventEncoder,
    pub(crate) messages: Vec<RecordedMessage>,
    lsn: i64,
    partitions: i64,
}

impl Topic {
    pub(crate) fn spread_over(partitions: i64) -> Self {
        Self {
            enc: recording().1,
            messages: Vec::new(),
            lsn: 0,
            partitions,
        }
    }

    fn push(&mut self, id: i64, (key, value): (Option<Vec<u8>>, Vec<u8>)) {
        let partition = (id % self.partitions) as i32;
        let offset = self
            .messages
            .iter()
            .filter(|m| m.partition == partition)
            .count() as i64;
        self.messages.push(RecordedMessage {
            topic: crate::model::TOPIC.into(),
            partition,
            offset,
            timestamp_ms: None,
            key,
            value: Some(value),
        });
    }

    /// A snapshot reading `rows` (id, fare), with Debezium's markers.
    fn snapshot(&mut self, rows: &[(i64, i64)], last: &str) {
        self.lsn += 1;
        for (i, (id, fare)) in rows.iter().enumerate() {
            let marker = match i {
                0 => "first_in_data_collection",
                n if n + 1 == rows.len() => last,
                _ => "true",
            };
            let read = self
                .enc
                .snapshot_read(&key(*id), &trip(*id, id % 3, *fare), self.lsn, marker)
                .unwrap();
            self.push(*id, read);
        }
    }

    /// A streamed insert or update of `id` to `fare`.
    pub(crate) fn upsert(&mut self, id: i64, fare: i64, op: Op) {
        self.lsn += 1;
        let event = self
            .enc
            .event_in_stream(
                op,
                Some(&key(id)),
                None,
                Some(&trip(id, id % 3, fare)),
                self.lsn,
                Some(self.lsn - 1),
            )
            .unwrap();
        self.push(id, event);
    }
}

/// Applies `messages` in batches `cut` long, through a writer opened
/// anew after each batch when `reopen` (a restart); the table's rows
/// (id to fare) and the rows reconciled away.
async fn apply(
    lake: &TestLake,
    messages: &[RecordedMessage],
    cut: usize,
    reopen: bool,
    reconcile: bool,
) -> (BTreeMap<i64, i128>, usize) {
    let (rec, _) = recording();
    let mut writer: Option<TableWriter> = None;
    let mut reconciled = 0;
    for chunk in messages.chunks(cut) {
        let mut decoder = ChangeDecoder::new(rec.schemas.clone());
        for m in chunk {
            decoder.push(&m.as_raw()).await.unwrap();
        }
        for batch in decoder.flush() {
            if writer.is_none() {
                let opened = lake.writer(&batch).await;
                writer = Some(opened.with_snapshot_reconciliation(reconcile));
            }
            let stats = writer.as_mut().unwrap().apply(&batch).await.unwrap();
            reconciled += stats.reconciled;
        }
        if reopen {
            writer = None;
        }
    }
    let ident = {
        let (rec, _) = recording();
        let mut decoder = ChangeDecoder::new(rec.schemas.clone());
        decoder.push(&messages[0].as_raw()).await.unwrap();
        lake.writer(&decoder.flush()[0])
            .await
            .table()
            .identifier()
            .clone()
    };
    (rows_of(lake, &ident).await, reconciled)
}

/// The rows of the table (id to fare), none twice.
pub(crate) async fn rows_of(lake: &TestLake, ident: &iceberg::TableIdent) -> BTreeMap<i64, i128> {
    let table = lake.catalog.load_table(ident).await.unwrap();
    let mut rows = BTreeMap::new();
    for b in scan_all(&table).await {
        let ids = b.column_by_name("trip_id").unwrap();
        let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
        let fares = b.column_by_name("fare_amount").unwrap();
        let fares = fares.as_any().downcast_ref::<Decimal128Array>().unwrap();
        for i in 0..b.num_rows() {
            assert!(
                rows.insert(ids.value(i), fares.value(i)).is_none(),
                "duplicate {}",
                ids.value(i)
            );
        }
    }
    rows
}

/// The first snapshot and some streaming; the slot is lost while 2 and 5
/// are deleted and 3 updated at the source; the snapshot again reads 1,
/// 3, 4 and 6 (`last` names its end marker, "" for none); then streamed
/// changes: 4 updated, 7 inserted.
fn history(last: &str) -> Vec<RecordedMessage> {
    history_over(1, last)
}

/// [`history`] on a topic of `partitions` partitions.
fn history_over(partitions: i64, last: &str) -> Vec<RecordedMessage> {
    let mut t = Topic::spread_over(partitions);
    t.snapshot(
        &[(1, 100), (2, 200), (3, 300), (4, 400), (5, 500), (6, 600)],
        "last",
    );
    t.upsert(1, 110, Op::Update);
    t.upsert(6, 660, Op::Update);
    // the slot is lost here: nothing is sent for the deletes of 2 and 5,
    // nor for 3's update to 333
    t.snapshot(&[(1, 110), (3, 333), (4, 400), (6, 660)], last);
    t.upsert(4, 444, Op::Update);
    t.upsert(7, 700, Op::Create);
    t.messages
}

fn expected() -> BTreeMap<i64, i128> {
    [(1, 110), (3, 333), (4, 444), (6, 660), (7, 700)]
        .into_iter()
        .collect()
}

/// With the end marker, in batches of every length, with and without a
/// restart after each: the rows the snapshot did not read are gone.
#[tokio::test]
async fn rows_a_snapshot_read_again_did_not_read_are_deleted() {
    for cut in [1, 2, 3, 5, 20] {
        for reopen in [false, true] {
            let lake = TestLake::new(&format!("resnap-{cut}-{reopen}")).await;
            let (rows, reconciled) = apply(
                &lake,
                &history("last_in_data_collection"),
                cut,
                reopen,
                true,
            )
            .await;
            assert_eq!(rows, expected(), "cut {cut}, restarts {reopen}");
            assert_eq!(reconciled, 2, "cut {cut}, restarts {reopen}");
        }
    }
}

/// A snapshot whose last read carries no end marker ends with the next
/// streamed change, which reconciles it.
#[tokio::test]
async fn a_snapshot_without_an_end_marker_ends_with_the_next_change() {
    let lake = TestLake::new("resnap-nomarker").await;
    let (rows, reconciled) = apply(&lake, &history("true"), 2, false, true).await;
    assert_eq!(rows, expected());
    assert_eq!(reconciled, 2);
}

/// Reconciliation off for the table: the deleted rows stay (what any tool
/// that does not reconcile leaves).
#[tokio::test]
async fn with_reconciliation_off_the_rows_stay() {
    let lake = TestLake::new("resnap-off").await;
    let (rows, reconciled) =
        apply(&lake, &history("last_in_data_collection"), 3, false, false).await;
    let mut stale = expected();
    stale.insert(2, 200);
    stale.insert(5, 500);
    assert_eq!(rows, stale);
    assert_eq!(reconciled, 0);
}

/// Each snapshot of a topic of two partitions: the reads of odd ids on
/// partition 1, of even ones (with the end marker, on 6) on partition 0.
/// Two writers (two ingest instances), one per partition, apply them,
/// one partition ahead of the other through each snapshot and the
/// changes after it, in batches of every length: the reads of the
/// partition behind, of a snapshot whose end the other already applied,
/// are rows like any other. (The first form of reconciliation took them
/// for a new snapshot and deleted the rows the other partition had read:
/// a three-instance run lost 608 of 2,564 trips so.)
#[tokio::test]
async fn a_snapshot_spread_over_partitions_applied_by_two_writers_in_any_order() {
    let messages = history_over(2, "last_in_data_collection");
    // the first snapshot's six reads and the two changes after it
    let (first_era, second_era) = messages.split_at(8);
    let (rec, _) = recording();
    for ahead in [0, 1] {
        for cut in [1, 2, 3, 20] {
            let lake = TestLake::new(&format!("resnap-two-{ahead}-{cut}")).await;
            let mut writers: [Option<TableWriter>; 2] = [None, None];
            let mut reconciled = 0;
            for era in [first_era, second_era] {
                for p in [ahead, 1 - ahead] {
                    let mine: Vec<&RecordedMessage> =
                        era.iter().filter(|m| m.partition == p as i32).collect();
                    for chunk in mine.chunks(cut) {
                        let mut decoder = ChangeDecoder::new(rec.schemas.clone());
                        for m in chunk {
                            decoder.push(&m.as_raw()).await.unwrap();
                        }
                        for batch in decoder.flush() {
                            if writers[p].is_none() {
                                writers[p] = Some(lake.writer(&batch).await);
                            }
                            let writer = writers[p].as_mut().unwrap();
                            reconciled += writer.apply(&batch).await.unwrap().reconciled;
                        }
                    }
                }
            }
            let table = writers[0].as_ref().unwrap().table().identifier().clone();
            let rows = rows_of(&lake, &table).await;
            assert_eq!(rows, expected(), "partition {ahead} ahead, cut {cut}");
            // 2 and 5 not read again, and the two rows of the partition
            // behind that its snapshot reads had not yet come for (they
            // are written again when they come)
            assert_eq!(reconciled, 4, "partition {ahead} ahead, cut {cut}");
        }
    }
}
