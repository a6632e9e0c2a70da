//! A snapshot read again (a lost replication slot, Debezium snapshotting
//! the tables anew): rows deleted at the source meanwhile get no delete
//! event, and the table must lose them when the snapshot ends, while the
//! rows it read and the changes streamed after it keep their newest
//! values.

use std::collections::{BTreeMap, HashMap};

use arrow_array::{Array, Decimal128Array, Int64Array};
use ingest::signal::{Signal, SignalKind};
use ingest::testing::{EventEncoder, Value};
use ingest::{ChangeDecoder, Op, RecordedMessage};
use lakehouse::apply::{SignalLog, TableWriter};

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

    /// The next position in the source's log (a signal's).
    fn next_lsn(&mut self) -> i64 {
        self.lsn += 1;
        self.lsn
    }

    /// Positions continue after `lsn`.
    fn lsn_from(&mut self, lsn: i64) {
        self.lsn = lsn;
    }

    /// An incremental snapshot's chunk: reads of `rows` (id, fare) whose
    /// window closed at `close`.
    fn incremental_chunk(&mut self, rows: &[(i64, i64)], close: i64) {
        for (id, fare) in rows {
            let read = self
                .enc
                .incremental_read(&key(*id), &trip(*id, id % 3, *fare), close)
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

/// Before the slot is lost: the first snapshot of 1 to 6, then 1 and 6
/// updated.
fn first_era(partitions: i64) -> Topic {
    let mut t = Topic::spread_over(partitions);
    t.snapshot(
        &[(1, 100), (2, 200), (3, 300), (4, 400), (5, 500), (6, 600)],
        "last",
    );
    t.upsert(1, 110, Op::Update);
    t.upsert(6, 660, Op::Update);
    t
}

/// [`history`] on a topic of `partitions` partitions.
fn history_over(partitions: i64, last: &str) -> Vec<RecordedMessage> {
    let mut t = first_era(partitions);
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

/// An incremental snapshot asked for through the signal table, after the
/// slot was lost while 2 and 5 were deleted and 3 updated at the source:
/// the messages of the table's topic, and the signals (each with the
/// index of the first message after it) of the signal table's.
///
/// The snapshot reads in two chunks; a third window reads nothing of
/// trips (its scan is over). Inside the first window a streamed update of
/// 4 comes before the chunk's reads, which skip 4 (Debezium drops a key a
/// streamed change touched inside the window); 7, 11 and 14 are inserted
/// between windows; 8 after the last one, which shows the snapshot over.
fn incremental_history(partitions: i64) -> (Vec<RecordedMessage>, Vec<(usize, Signal)>) {
    let mut t = first_era(partitions);
    // the slot is lost: no events for the deletes of 2 and 5, nor for 3's
    // update to 333; the new connector only streams
    let mut signals = Vec::new();
    let mut signal = |t: &mut Topic, kind: SignalKind| {
        let at = t.next_lsn();
        signals.push((t.messages.len(), Signal { kind, at: (at, at) }));
        at
    };
    signal(
        &mut t,
        SignalKind::Snapshot {
            incremental: true,
            collections: vec!["public.trips".into()],
        },
    );
    t.upsert(4, 444, Op::Update);
    let close = signal(&mut t, SignalKind::WindowClose);
    t.incremental_chunk(&[(1, 110), (3, 333)], close);
    t.upsert(7, 700, Op::Create);
    // more files in the partition of the rows deleted meanwhile (2 and 5,
    // day 2): a merge there would move them into a newer file
    t.upsert(11, 1100, Op::Create);
    t.upsert(14, 1400, Op::Create);
    let close = signal(&mut t, SignalKind::WindowClose);
    t.incremental_chunk(&[(6, 660)], close);
    signal(&mut t, SignalKind::WindowClose);
    t.upsert(8, 800, Op::Create);
    (t.messages, signals)
}

fn incremental_expected() -> BTreeMap<i64, i128> {
    [
        (1, 110),
        (3, 333),
        (4, 444),
        (6, 660),
        (7, 700),
        (8, 800),
        (11, 1100),
        (14, 1400),
    ]
    .into_iter()
    .collect()
}

/// When the signals reach the writers: as the table's stream reaches
/// them, or all after the table's changes (the signal table's topic read
/// late), with one more change of the table after them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SignalsCome {
    InStep,
    Late,
}

/// Applies `messages` in batches `cut` long, through writers that see
/// `log` (opened anew after each batch when `reopen`; merging after each
/// batch under a tight policy when `merges`), recording each signal as
/// [`SignalsCome`] says; the rows and the rows reconciled away.
async fn apply_with_signals(
    lake: &TestLake,
    (messages, signals): (Vec<RecordedMessage>, Vec<(usize, Signal)>),
    cut: usize,
    (reopen, merges): (bool, bool),
    come: SignalsCome,
) -> (BTreeMap<i64, i128>, usize) {
    let (rec, _) = recording();
    let log = SignalLog::default();
    let mut writer: Option<TableWriter> = None;
    let mut reconciled = 0;
    let mut ident = None;
    let mut messages = messages;
    if come == SignalsCome::Late {
        // the table's next change, after the signals are known
        let mut t = Topic::spread_over(1);
        t.lsn_from(1_000);
        t.upsert(9, 900, Op::Create);
        let mut last = t.messages.remove(0);
        last.offset = messages.iter().filter(|m| m.partition == 0).count() as i64;
        messages.push(last);
    }
    let late_from = messages.len() - 1;
    let mut start = 0;
    for chunk in messages.chunks(cut) {
        let end = start + chunk.len();
        let due = |at: usize| match come {
            SignalsCome::InStep => at < end,
            SignalsCome::Late => at <= late_from && late_from < end,
        };
        log.record(
            signals
                .iter()
                .filter(|(at, _)| due(*at) && (come == SignalsCome::Late || *at >= start))
                .map(|(_, s)| s.clone()),
        );
        let mut decoder = ChangeDecoder::new(rec.schemas.clone());
        for m in chunk {
            decoder.push(&m.as_raw()).await.unwrap();
        }
        for batch in decoder.flush() {
            if writer.is_none() {
                let opened = lake.writer(&batch).await.with_signals(log.clone());
                writer = Some(match merges {
                    true => opened.with_merge_policy(crate::model::tight_merges()),
                    false => opened,
                });
            }
            let w = writer.as_mut().unwrap();
            reconciled += w.apply(&batch).await.unwrap().reconciled;
            if merges {
                w.merge().await.unwrap();
            }
            ident = Some(w.table().identifier().clone());
        }
        if reopen {
            writer = None;
        }
        start = end;
    }
    (rows_of(lake, &ident.unwrap()).await, reconciled)
}

/// In batches of every length, with a restart after each or merges after
/// each (which must wait while the snapshot's reads come, even before
/// its signals have), the signals in step with the table's stream or
/// late: the rows the incremental snapshot did not read, and no change
/// touched since it was asked for, are deleted; a key it skipped because
/// a streamed change touched it inside the window keeps that change.
#[tokio::test]
async fn rows_an_incremental_snapshot_did_not_read_are_deleted_when_it_ends() {
    let runs = [(false, false), (true, false), (false, true)];
    for come in [SignalsCome::InStep, SignalsCome::Late] {
        for cut in [1, 2, 3, 5, 20] {
            for (reopen, merges) in runs {
                let name = format!("incr-{come:?}-{cut}-{reopen}-{merges}");
                let lake = TestLake::new(&name).await;
                let (rows, reconciled) =
                    apply_with_signals(&lake, incremental_history(1), cut, (reopen, merges), come)
                        .await;
                let mut expected = incremental_expected();
                if come == SignalsCome::Late {
                    expected.insert(9, 900);
                }
                let case = format!("{come:?}, cut {cut}, restarts {reopen}, merges {merges}");
                assert_eq!(rows, expected, "{case}");
                assert_eq!(reconciled, 2, "{case}");
            }
        }
    }
}

/// Without the signals (an instance that does not read the signal
/// table's topic), or with the snapshot stopped before its end, the rows
/// stay: nothing is deleted on a guess.
#[tokio::test]
async fn without_its_signals_or_stopped_an_incremental_snapshot_deletes_nothing() {
    let mut stale = incremental_expected();
    stale.insert(2, 200);
    stale.insert(5, 500);

    let (messages, _) = incremental_history(1);
    let lake = TestLake::new("incr-nosignals").await;
    let (rows, reconciled) = apply_with_signals(
        &lake,
        (messages, Vec::new()),
        3,
        (false, false),
        SignalsCome::InStep,
    )
    .await;
    assert_eq!(rows, stale);
    assert_eq!(reconciled, 0);

    let (messages, mut signals) = incremental_history(1);
    let stop_at = signals[2].0;
    signals.insert(
        2,
        (
            stop_at,
            Signal {
                kind: SignalKind::StopSnapshot {
                    collections: vec!["public.trips".into()],
                },
                at: (signals[1].1.at.0 + 1, signals[1].1.at.1 + 1),
            },
        ),
    );
    let lake = TestLake::new("incr-stopped").await;
    let (rows, reconciled) = apply_with_signals(
        &lake,
        (messages, signals),
        2,
        (false, false),
        SignalsCome::InStep,
    )
    .await;
    assert_eq!(rows, stale);
    assert_eq!(reconciled, 0);
}
