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

/// Messages on one partition, numbered as they come.
struct Topic {
    enc: EventEncoder,
    messages: Vec<RecordedMessage>,
    lsn: i64,
}

impl Topic {
    fn new() -> Self {
        Self {
            enc: recording().1,
            messages: Vec::new(),
            lsn: 0,
        }
    }

    fn push(&mut self, (key, value): (Option<Vec<u8>>, Vec<u8>)) {
        self.messages.push(RecordedMessage {
            topic: crate::model::TOPIC.into(),
            partition: 0,
            offset: self.messages.len() as i64,
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
            self.push(read);
        }
    }

    /// A streamed insert or update of `id` to `fare`.
    fn upsert(&mut self, id: i64, fare: i64, op: Op) {
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
        self.push(event);
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
    let table = lake.catalog.load_table(&ident).await.unwrap();
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
    (rows, reconciled)
}

/// The first snapshot and some streaming; the slot is lost while 2 and 5
/// are deleted and 3 updated at the source; the snapshot again reads 1,
/// 3, 4 and 6 (`last` names its end marker, "" for none); then streamed
/// changes: 4 updated, 7 inserted.
fn history(last: &str) -> Vec<RecordedMessage> {
    let mut t = Topic::new();
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
