//! Changes Debezium sends again. After a Kafka Connect crash or rebalance
//! Debezium resumes from the source offsets it last flushed and sends the
//! changes after them again, under new Kafka offsets. Applied again, they
//! would take rows back to older images until the stream caught up (an
//! upsert table), or record every change twice (an append-mode
//! changelog). The table must look, after every commit, as if nothing was
//! sent again.

use std::collections::BTreeMap;

use arrow_array::{Array, Int64Array, StringArray};
use ingest::{ChangeBatch, ChangeDecoder, RecordedMessage};
use lakehouse::apply::{ApplyStats, TableWriter};
use lakehouse::{TableConfig, TableMode};

use crate::model::{history, table_state, Action, Row};
use crate::source_order::{recording, upsert, TestLake};
use crate::support::scan_all;

/// Inserts, updates, a delete, a key change; then the same again with new
/// values: what Debezium sent before the crash.
fn workload() -> Vec<Action> {
    let mut actions: Vec<Action> = (1..=6).map(|k| upsert(k, 100 + k)).collect();
    actions.extend((1..=6).map(|k| upsert(k, 200 + k)));
    actions.push(Action::Delete { key: 3 });
    actions.push(Action::ChangeKey { from: 4, to: 40 });
    actions.extend((1..=2).map(|k| upsert(k, 300 + k)));
    actions
}

/// The messages of `workload` on one partition, then the last `back` of
/// them again under the next offsets.
fn sent_twice(back: usize) -> (Vec<RecordedMessage>, usize, BTreeMap<i64, Row>) {
    let (_, enc) = recording();
    let (mut messages, model) = history(&enc, &workload());
    let first = messages.len();
    let again: Vec<RecordedMessage> = messages[first - back..]
        .iter()
        .enumerate()
        .map(|(i, m)| RecordedMessage {
            offset: (first + i) as i64,
            ..m.clone()
        })
        .collect();
    messages.extend(again);
    (messages, first, model)
}

async fn decode(messages: &[RecordedMessage]) -> Vec<ChangeBatch> {
    let (rec, _) = recording();
    let mut decoder = ChangeDecoder::new(rec.schemas.clone());
    for m in messages {
        decoder.push(&m.as_raw()).await.unwrap();
    }
    decoder.flush()
}

/// Applies the first `first` messages in one batch, then the rest in
/// batches of `cut`, calling `check` with the table after each commit.
async fn apply_in_turns(
    lake: &TestLake,
    messages: &[RecordedMessage],
    first: usize,
    cut: usize,
    mut check: impl AsyncFnMut(&TableWriter),
) -> ApplyStats {
    let mut writer: Option<TableWriter> = None;
    let mut total = ApplyStats::default();
    let turns = std::iter::once(&messages[..first]).chain(messages[first..].chunks(cut));
    for turn in turns {
        for batch in decode(turn).await {
            if writer.is_none() {
                writer = Some(lake.writer(&batch).await);
            }
            let stats = writer.as_mut().unwrap().apply(&batch).await.unwrap();
            total.resent += stats.resent;
            total.already_applied += stats.already_applied;
        }
        check(writer.as_ref().unwrap()).await;
    }
    total
}

/// Every stretch Debezium might go back over: after each commit of the
/// changes sent again, the table is still what Postgres holds (never an
/// older image, a deleted row back, or the old key of a changed one).
#[tokio::test]
async fn an_upsert_table_never_goes_back_to_changes_sent_again() {
    let total = history(&recording().1, &workload()).0.len();
    for back in [1, 2, 5, 11, total] {
        let (messages, first, model) = sent_twice(back);
        let lake = TestLake::new(&format!("resent-{back}")).await;
        let stats = apply_in_turns(&lake, &messages, first, 2, async |w: &TableWriter| {
            let table = lake
                .catalog
                .load_table(w.table().identifier())
                .await
                .unwrap();
            assert_eq!(
                table_state(&scan_all(&table).await),
                model,
                "back {back}: the table after a commit"
            );
        })
        .await;
        // every change sent again (tombstones carry no change) is skipped,
        // but for the newest alone: nothing before it came again, so it
        // cannot be told from a second change of the same WAL record, and
        // is applied again (the same image: the table does not change)
        let changes_again = messages[first..]
            .iter()
            .filter(|m| m.value.is_some())
            .count();
        let skipped = if back == 1 { 0 } else { changes_again };
        assert_eq!(stats.resent, skipped, "back {back}");
    }
}

/// The same, each batch launched on top of the commit before it still in
/// flight (`TableWriter::launch`): a batch of changes sent again is
/// prepared before the commit holding their first sending has landed, so
/// it must read the source positions that commit records, not the
/// table's.
#[tokio::test]
async fn changes_sent_again_while_their_first_commit_is_in_flight_are_skipped() {
    let total = history(&recording().1, &workload()).0.len();
    for back in [2, 5, 11, total] {
        let (messages, first, model) = sent_twice(back);
        let lake = TestLake::new(&format!("resent-launched-{back}")).await;
        let mut writer: Option<TableWriter> = None;
        let (mut resent, mut overlapped) = (0, 0);
        let turns = std::iter::once(&messages[..first]).chain(messages[first..].chunks(2));
        for turn in turns {
            for batch in decode(turn).await {
                if writer.is_none() {
                    writer = Some(lake.writer(&batch).await);
                }
                writer.as_mut().unwrap().launch(&batch).await.unwrap();
            }
        }
        let writer = writer.as_mut().unwrap();
        writer.land().await.unwrap();
        for landed in writer.take_landed() {
            resent += landed.stats.resent;
            overlapped += usize::from(landed.overlapped);
        }
        let table = lake
            .catalog
            .load_table(writer.table().identifier())
            .await
            .unwrap();
        assert_eq!(table_state(&scan_all(&table).await), model, "back {back}");
        let changes_again = messages[first..]
            .iter()
            .filter(|m| m.value.is_some())
            .count();
        assert_eq!(resent, changes_again, "back {back}");
        assert!(
            overlapped > 0,
            "back {back}: nothing was launched beside a commit"
        );
    }
}

/// An append-mode changelog records each source change once: the changes
/// Debezium sent again add no row.
#[tokio::test]
async fn a_changelog_records_each_change_once() {
    let (messages, first, _) = sent_twice(12);
    let mut lake = TestLake::new("resent-changelog").await;
    lake.config.tables.by_source.insert(
        "public.trips".into(),
        TableConfig {
            mode: TableMode::Append,
            ..Default::default()
        },
    );
    let changes = messages[..first]
        .iter()
        .filter(|m| m.value.is_some())
        .count();
    let stats = apply_in_turns(&lake, &messages, first, 3, async |_: &TableWriter| {}).await;
    assert_eq!(
        stats.resent,
        messages[first..]
            .iter()
            .filter(|m| m.value.is_some())
            .count()
    );
    let ident = decode(&messages[..1]).await;
    let writer = lake.writer(&ident[0]).await;
    let rows = scan_all(writer.table()).await;
    // a change is (its op, its row, its source time); each once
    let mut seen: std::collections::BTreeSet<(String, i64, i64)> = Default::default();
    for b in &rows {
        let col = |name: &str| b.column_by_name(name).unwrap().clone();
        let (op, id, ts) = (col("_op"), col("trip_id"), col("_source_ts"));
        let op = op.as_any().downcast_ref::<StringArray>().unwrap();
        let id = id.as_any().downcast_ref::<Int64Array>().unwrap();
        let ts = ts
            .as_any()
            .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
            .unwrap();
        for i in 0..b.num_rows() {
            let new = seen.insert((op.value(i).to_string(), id.value(i), ts.value(i)));
            assert!(new, "recorded twice: {} {}", op.value(i), id.value(i));
        }
    }
    let recorded: usize = rows.iter().map(|b| b.num_rows()).sum();
    assert_eq!(recorded, changes, "one row per change made at the source");
}
