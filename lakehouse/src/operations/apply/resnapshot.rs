//! Snapshots read again, reconciled.
//!
//! When a replication slot is lost, Debezium snapshots the tables again
//! (a new slot, `snapshot.mode` `when_needed` or `always`, a new
//! connector). Rows deleted at the source meanwhile get no delete event:
//! the snapshot just does not read them. An upsert table would keep them
//! for ever. So a table remembers when a snapshot's first read arrived
//! (its last sequence number before it), and when the snapshot ends it
//! deletes, in the commit that ends it, every row still in a data file of
//! that sequence number or older: a row the snapshot read, or a streamed
//! change touched since, was written again into a newer file.
//!
//! ```text
//!  starts   a snapshot read (op r, not an incremental one) of a newer
//!           snapshot than any the table applied reads of:
//!           floe.resnapshot.<topic> = last sequence number
//!  ends     a read marked `last` or `last_in_data_collection`, or a
//!           streamed change at or after the snapshot's LSN
//! ```
//!
//! A topic of several partitions spreads one snapshot's reads over them,
//! and its end marker comes on one of them, perhaps before the reads of
//! the others. So a snapshot is known by its LSN (every read of one
//! snapshot carries the same), kept in `floe.snapshot-lsn.<topic>`: reads
//! of a snapshot that has already ended are rows like any other, not a new
//! snapshot (which would delete the rows its other partitions read), and a
//! change streamed before the snapshot, late on a partition behind the
//! others, does not end it. A row a snapshot read on a partition still
//! behind when it ended is deleted with the others and written again when
//! that partition's read of it comes.
//!
//! Merges inside ingest wait while a snapshot is under way (a merge would
//! move old rows into new files). An ad-hoc blocking snapshot (a signal)
//! reads like the first one, at a new LSN, and is reconciled the same way.
//! Incremental snapshots are reconciled from what the signal table says
//! ([`super::incremental`]): nothing in the table's own topic marks their
//! start or end. Not reconciled: append-mode changelogs and tables without
//! a primary key, and a table whose snapshot reads no row at all (no event
//! says it happened).
//! A table whose snapshot ends with no end marker and no later change is
//! reconciled with its next change.

use arrow_array::{Array, StringArray};
use ingest::{columns, ChangeBatch, Op};

use super::source_order::Lsns;

/// What a batch does to a table's snapshot under way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Resnapshot {
    /// The state after the batch, when it changes: `Some(Some(before))`
    /// starts one, `Some(None)` ends it.
    pub(super) change: Option<Option<i64>>,
    /// When a snapshot ends in the batch: the sequence number at or below
    /// which rows were not read again.
    pub(super) reconcile: Option<i64>,
    /// The LSN of the newest snapshot the batch reads rows of, when newer
    /// than the table knew.
    pub(super) snapshot_lsn: Option<i64>,
}

impl Resnapshot {
    /// Scans the `fresh` rows of `batch` in order, from the snapshot under
    /// way (`open`) and the LSN of the newest snapshot the table applied
    /// reads of (`known`), with `last_sequence` the table's last sequence
    /// number.
    pub(super) fn scan(
        batch: &ChangeBatch,
        fresh: &[bool],
        open: Option<i64>,
        known: Option<i64>,
        last_sequence: i64,
    ) -> Self {
        let markers = batch
            .records
            .column_by_name(columns::SNAPSHOT)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let marker = |i: usize| markers.filter(|m| m.is_valid(i)).map_or("", |m| m.value(i));
        let lsns = Lsns::of(batch);
        let mut state = open;
        let mut newest = known;
        let mut reconcile = None;
        for i in (0..batch.num_rows()).filter(|&i| fresh.get(i).copied().unwrap_or(false)) {
            let lsn = lsns.get(i);
            match batch.op(i) {
                Some(Op::Read) if marker(i) != "incremental" => {
                    // a late read (another partition carried its snapshot's
                    // end, or a newer snapshot is under way): a row like any
                    // other
                    let late = match (lsn, newest) {
                        (Some(l), Some(n)) => l < n || (l == n && state.is_none()),
                        _ => false,
                    };
                    if let Some(l) = lsn {
                        newest = Some(newest.map_or(l, |n| n.max(l)));
                    }
                    if late {
                        continue;
                    }
                    let before = *state.get_or_insert(last_sequence);
                    if matches!(marker(i), "last" | "last_in_data_collection") {
                        reconcile = Some(before);
                        state = None;
                    }
                }
                Some(Op::Read) | None => {}
                Some(_) => {
                    // a change made before the snapshot began, late on a
                    // partition behind the others, does not end it
                    let before_it = matches!((lsn, newest), (Some(l), Some(n)) if l < n);
                    if before_it {
                        continue;
                    }
                    if let Some(before) = state.take() {
                        reconcile = Some(before);
                    }
                }
            }
        }
        Self {
            change: (state != open).then_some(state),
            reconcile,
            snapshot_lsn: newest.filter(|n| Some(*n) != known),
        }
    }
}

/// `batch` cut before each snapshot read that starts a snapshot (marked
/// `first` or `first_in_data_collection`) after its first row, so each
/// snapshot begins a commit: rows before it must be in older files than
/// the rows it reads.
pub(super) fn split_at_starts(batch: ChangeBatch) -> Vec<ChangeBatch> {
    let Some(markers) = batch
        .records
        .column_by_name(columns::SNAPSHOT)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .cloned()
    else {
        return vec![batch];
    };
    let starts: Vec<usize> = (1..batch.num_rows())
        .filter(|&i| {
            batch.op(i) == Some(Op::Read)
                && markers.is_valid(i)
                && matches!(markers.value(i), "first" | "first_in_data_collection")
        })
        .collect();
    split_at(batch, starts)
}

/// `batch` cut before each of the rows `starts` (ascending, none 0), each
/// part with its own offset ranges.
pub(super) fn split_at(batch: ChangeBatch, starts: Vec<usize>) -> Vec<ChangeBatch> {
    if starts.is_empty() {
        return vec![batch];
    }
    let mut bounds = vec![0];
    bounds.extend(starts);
    bounds.push(batch.num_rows());
    let mut parts = Vec::with_capacity(bounds.len() - 1);
    // per partition, the next offset a part's range starts at
    let mut next: std::collections::BTreeMap<i32, i64> = batch
        .offsets
        .iter()
        .map(|r| (r.partition, r.first))
        .collect();
    for (n, w) in bounds.windows(2).enumerate() {
        let (from, to) = (w[0], w[1]);
        let last_part = n + 2 == bounds.len();
        let mut offsets = Vec::new();
        for range in &batch.offsets {
            let rows_last = (from..to)
                .map(|i| batch.position(i))
                .filter(|(p, _)| *p == range.partition)
                .map(|(_, o)| o)
                .max();
            let end = if last_part {
                Some(range.last)
            } else {
                rows_last
            };
            let (Some(end), Some(start)) = (end, next.get(&range.partition).copied()) else {
                continue;
            };
            if start <= end {
                offsets.push(ingest::OffsetRange {
                    partition: range.partition,
                    first: start,
                    last: end,
                });
                next.insert(range.partition, end + 1);
            }
        }
        parts.push(ChangeBatch {
            records: batch.records.slice(from, to - from),
            offsets,
            tombstones: if last_part { batch.tombstones } else { 0 },
            ..batch.clone()
        });
    }
    parts
}
