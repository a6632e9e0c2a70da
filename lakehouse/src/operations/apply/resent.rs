//! Changes Debezium sent again.
//!
//! Debezium is at-least-once: after Kafka Connect crashes or rebalances it
//! resumes from the source offsets it last flushed and sends the changes
//! after them again, under new Kafka offsets. The table's Kafka offsets
//! cannot tell those from new changes; their source position can.
//!
//! A Postgres stream is ordered by (the LSN of the last commit before the
//! change, the change's LSN), Debezium's `sequence`: Postgres sends
//! transactions in commit order and a transaction's changes in LSN order.
//! Per topic partition (a row's changes share one), the table keeps the
//! newest position applied as a [`StreamPosition`]; a change at a lower
//! position is one sent again, and skipped.
//!
//! Several changes can share a position: a primary-key change's delete
//! and create come from one WAL record, and so do the rows of a `COPY`
//! (one multi-insert record). So the table also counts the changes applied
//! at its newest position. Changes at that position are new while the
//! stream runs forward; once Debezium has gone back (a lower position
//! arrived), the first `count` changes at it are the ones sent again.
//!
//! What is not deduplicated, by design:
//! - snapshot reads (`op = r`): every read of one snapshot shares its
//!   position. They are upserts of the row as it was, so a snapshot sent
//!   again changes nothing in an upsert table; an append-mode changelog
//!   records it again. A snapshot that is not incremental starts the
//!   partition's positions over: it may come from a new replication slot,
//!   or a new database whose LSNs start lower.
//! - changes without `sequence` (sources other than Debezium's Postgres
//!   connector, or a connector older than 1.x): applied as they come.
//! - a resend that starts exactly at the first change of the newest
//!   position, with nothing before it sent again: it cannot be told from
//!   more changes of that position, so those are applied twice (idempotent
//!   in an upsert table). Debezium resumes from its last flushed offset,
//!   which is rarely that exact point.

use std::collections::BTreeMap;

use arrow_array::{Array, Int64Array};
use ingest::{columns, ChangeBatch, Op};

use crate::transaction::{KafkaOffsets, SourcePositions, StreamPosition};

/// What the scan of a batch found: per row, whether Debezium sent it
/// again, and per partition where the stream stands after the batch.
#[derive(Debug, Default)]
pub(super) struct Resent {
    pub(super) rows: Vec<bool>,
    pub(super) count: usize,
    pub(super) stream: BTreeMap<i32, StreamPosition>,
}

impl Resent {
    /// Scans the changes of `batch` the table does not hold by offset,
    /// partition by partition in Kafka order, from the positions the table
    /// carries.
    pub(super) fn scan(
        batch: &ChangeBatch,
        applied: &KafkaOffsets,
        carried: &SourcePositions,
    ) -> Self {
        let n = batch.num_rows();
        let mut out = Self {
            rows: vec![false; n],
            ..Self::default()
        };
        let records = &batch.records;
        let long = |name| {
            records
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        };
        let (Some(lsns), Some(commits)) =
            (long(columns::SOURCE_LSN), long(columns::SOURCE_COMMIT_LSN))
        else {
            return out;
        };
        let snapshots = records
            .column_by_name(columns::SNAPSHOT)
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::StringArray>());
        let mut state: BTreeMap<i32, Option<StreamPosition>> = BTreeMap::new();
        for i in 0..n {
            let (partition, offset) = batch.position(i);
            if applied
                .get(&batch.topic, partition)
                .is_some_and(|done| offset <= done)
            {
                continue;
            }
            let at = state
                .entry(partition)
                .or_insert_with(|| carried.stream(&batch.topic, partition));
            if batch.op(i) == Some(Op::Read) {
                let incremental =
                    snapshots.is_some_and(|s| s.is_valid(i) && s.value(i) == "incremental");
                if !incremental {
                    *at = Some(StreamPosition::START);
                }
                continue;
            }
            if !lsns.is_valid(i) || !commits.is_valid(i) {
                continue;
            }
            let position = (commits.value(i), lsns.value(i));
            if !step(at, position) {
                out.rows[i] = true;
                out.count += 1;
            }
        }
        out.stream = state
            .into_iter()
            .filter_map(|(p, s)| Some((p, s?)))
            .collect();
        out
    }
}

/// Moves a partition's stream past a change at `position`; false when the
/// change is one the table holds, sent again.
fn step(at: &mut Option<StreamPosition>, position: (i64, i64)) -> bool {
    let Some(s) = at else {
        *at = Some(StreamPosition::at(position));
        return true;
    };
    if position > s.at {
        *s = StreamPosition::at(position);
        return true;
    }
    if position < s.at {
        // Debezium went back: what follows up to the newest position
        // applied is what it sends again
        s.again = Some(0);
        return false;
    }
    match s.again {
        Some(seen) if seen < s.count => {
            s.again = Some(seen + 1);
            false
        }
        _ => {
            // more changes at the position than were applied before
            s.again = None;
            s.count += 1;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies a stream of positions; returns which were taken as new.
    fn run(from: Option<StreamPosition>, positions: &[(i64, i64)]) -> (Vec<bool>, StreamPosition) {
        let mut at = from;
        let taken = positions.iter().map(|p| step(&mut at, *p)).collect();
        (taken, at.unwrap())
    }

    #[test]
    fn a_stream_running_forward_is_all_new() {
        let (taken, at) = run(None, &[(0, 5), (10, 12), (10, 14), (20, 21)]);
        assert_eq!(taken, [true; 4]);
        assert_eq!(at, StreamPosition::at((20, 21)));
    }

    #[test]
    fn a_later_transaction_with_lower_lsns_is_new() {
        // T2 (LSN 150) commits at 160 before T1 (LSN 100) commits at 200:
        // T1's change comes second, after the commit at 160
        let (taken, _) = run(None, &[(90, 150), (160, 100)]);
        assert_eq!(taken, [true, true]);
    }

    #[test]
    fn changes_sent_again_after_going_back_are_skipped_then_new_ones_applied() {
        let (taken, at) = run(
            None,
            &[
                (0, 5),
                (10, 12),
                (10, 14),
                (0, 5),
                (10, 12),
                (10, 14),
                (20, 21),
            ],
        );
        assert_eq!(taken, [true, true, true, false, false, false, true]);
        assert_eq!(at, StreamPosition::at((20, 21)));
    }

    #[test]
    fn changes_sharing_a_position_are_counted() {
        // a COPY's rows (one multi-insert record) or a key change's delete
        // and create: all new; sent again after going back: all skipped,
        // and the one not sent before the crash is new
        let (taken, at) = run(None, &[(10, 12), (10, 12), (10, 12)]);
        assert_eq!(taken, [true; 3]);
        assert_eq!(at.count, 3);
        let (taken, at) = run(
            Some(StreamPosition {
                count: 2,
                ..StreamPosition::at((10, 12))
            }),
            &[(0, 9), (10, 12), (10, 12), (10, 12), (30, 31)],
        );
        assert_eq!(taken, [false, false, false, true, true]);
        assert_eq!(at, StreamPosition::at((30, 31)));
    }

    #[test]
    fn a_resend_spanning_two_batches_keeps_counting() {
        let start = Some(StreamPosition {
            count: 3,
            ..StreamPosition::at((10, 12))
        });
        let (first, at) = run(start, &[(0, 9), (10, 12)]);
        assert_eq!(first, [false, false]);
        assert_eq!(at.again, Some(1));
        let (second, at) = run(Some(at), &[(10, 12), (10, 12), (10, 12)]);
        assert_eq!(second, [false, false, true]);
        assert_eq!(at.count, 4);
        assert_eq!(at.again, None);
    }

    #[test]
    fn positions_round_trip_through_the_summary_text() {
        for s in [
            StreamPosition::at((10, 12)),
            StreamPosition {
                count: 4,
                again: Some(2),
                ..StreamPosition::at((0, 7))
            },
            StreamPosition::START,
        ] {
            assert_eq!(StreamPosition::parse(&s.to_string()), Some(s));
        }
        assert_eq!(StreamPosition::parse("1/2"), None);
        assert_eq!(StreamPosition::parse("a/2/3"), None);
    }
}
