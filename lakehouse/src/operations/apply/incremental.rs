//! Incremental snapshots, reconciled.
//!
//! An incremental snapshot (Debezium's default ad-hoc snapshot, asked for
//! through the signal table) reads a table in chunks of primary keys among
//! the streamed changes. Each chunk is read inside a window Debezium opens
//! and closes with rows of its own in the signal table; a key changed by a
//! streamed event while its chunk's window is open is not read (the
//! streamed change is newer). The reads carry only their window's close,
//! as `sequence`. Rows deleted at the source before the snapshot (a lost
//! replication slot) are simply not read: without reconciling they stay.
//!
//! The table's topic alone cannot say when such a snapshot began or ended;
//! the signal table's topic can ([`ingest::signal`]). `floe ingest` puts
//! what it reads there in a [`SignalLog`] every writer sees:
//!
//! ```text
//!  asked    execute-snapshot (incremental) naming the table, at X
//!           before = the table's last sequence number whose commits hold
//!                    only changes from before X (found in its history:
//!                    stream positions and incremental reads per snapshot)
//!  reads    op r, snapshot = incremental, each with its window's close
//!  ends     a streamed change of the table past a window close that
//!           comes after the table's last chunk read: that window read
//!           nothing of the table, so its scan is over
//!           → every row still in a data file of sequence `before` or
//!             older is deleted, in that commit
//! ```
//!
//! A row the snapshot read, or a streamed change touched after X, was
//! written again into a newer file, so what is left in older files is what
//! the source no longer has. A key skipped in its chunk because a streamed
//! change touched it inside the window was written by that change, after X.
//!
//! Caveats, by design: the end is seen with the table's next streamed
//! change after the last window (an idle table is reconciled with its next
//! change); a table whose partitions lag one another may see the end while
//! a lagging partition still holds reads, whose rows are then deleted and
//! written again when the reads come; a chunk whose every key was changed
//! inside its window reads nothing and ends the snapshot early, which the
//! later chunks' reads repair the same way; merges inside ingest wait while
//! the snapshot runs (up to ten minutes after it was asked for or last
//! read, so a paused snapshot does not stop them for good), but a merge
//! (or another process's compaction)
//! between X and the moment the writer learns of the snapshot moves old
//! rows into newer files, and those are kept. So merges also wait while a
//! table applies incremental reads at all (up to ten minutes after the
//! last), whether or not the signals have come yet: the signal table's
//! topic is created by the first signal, and a consumer subscribed by
//! pattern may find it only after the reads. Instances that do not read
//! the signal table's topic do not reconcile (nor hold their merges).

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use arrow_array::{Array, Int64Array, StringArray};
use iceberg::table::Table;
use ingest::signal::{Signal, SignalKind};
use ingest::{columns, ChangeBatch, Op, SourceTable};

use crate::transaction::SourcePositions;

/// How long merges inside ingest wait for a snapshot under way after the
/// writer saw it asked for or last applied its reads.
pub(super) const MERGES_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// At most this many window closes are kept: more than any snapshot in
/// flight needs, since each table's scan only asks about the ones after
/// its last chunk.
const CLOSES_KEPT: usize = 100_000;

/// What the signal table said, shared by the writers of one `floe
/// ingest`: incremental snapshots asked for, stops, and window closes.
#[derive(Debug, Clone, Default)]
pub struct SignalLog {
    inner: Arc<Mutex<Log>>,
}

#[derive(Debug, Default)]
struct Log {
    asks: Vec<Signal>,
    stops: Vec<Signal>,
    closes: BTreeSet<(i64, i64)>,
    /// (table, ask) pairs reconciled or given up on.
    finished: HashSet<(String, (i64, i64))>,
}

impl SignalLog {
    /// Records signals read from the signal table's topic.
    pub fn record(&self, signals: impl IntoIterator<Item = Signal>) {
        let Ok(mut log) = self.inner.lock() else {
            return;
        };
        for mut signal in signals {
            signal.at = placed(signal.at);
            match &signal.kind {
                SignalKind::Snapshot {
                    incremental: true, ..
                } => {
                    tracing::info!(at = ?signal.at, kind = ?signal.kind, "an incremental snapshot was asked for through the signal table");
                    log.asks.push(signal);
                }
                SignalKind::Snapshot { .. } => {}
                SignalKind::StopSnapshot { .. } => log.stops.push(signal),
                SignalKind::WindowClose => {
                    log.closes.insert(signal.at);
                    while log.closes.len() > CLOSES_KEPT {
                        log.closes.pop_first();
                    }
                }
            }
        }
    }

    /// The newest incremental snapshot asked for of `table` that is not
    /// stopped nor finished: where it was asked for.
    pub(super) fn open_ask(&self, table: &SourceTable) -> Option<(i64, i64)> {
        let log = self.inner.lock().ok()?;
        let ask = log.asks.iter().rev().find(|a| a.covers(table))?;
        let stopped = log.stops.iter().any(|s| s.at > ask.at && s.covers(table));
        let finished = log.finished.contains(&(name(table), ask.at));
        (!stopped && !finished).then_some(ask.at)
    }

    /// Marks the snapshot asked for at `ask` done for `table`.
    pub(super) fn finish(&self, table: &SourceTable, ask: (i64, i64)) {
        if let Ok(mut log) = self.inner.lock() {
            log.finished.insert((name(table), ask));
        }
    }

    /// Whether a window closed after `after` and before `before`.
    fn closed_between(&self, after: (i64, i64), before: (i64, i64)) -> bool {
        // (a change behind the last read, on a partition behind the
        // others; `range` would panic on it)
        if after >= before {
            return false;
        }
        self.inner.lock().is_ok_and(|log| {
            log.closes
                .range((
                    std::ops::Bound::Excluded(after),
                    std::ops::Bound::Excluded(before),
                ))
                .next()
                .is_some()
        })
    }
}

/// A position in the source's log, comparable across connectors:
/// Debezium sends no last commit (read as 0) until the connector has seen
/// one, so such a change is placed at its own LSN. (Only a new
/// connector's first transaction has none; LSNs are the WAL's, the same
/// for every connector.)
pub(super) fn placed((commit, lsn): (i64, i64)) -> (i64, i64) {
    if commit == 0 {
        (lsn, lsn)
    } else {
        (commit, lsn)
    }
}

fn name(table: &SourceTable) -> String {
    format!("{}.{}.{}", table.database, table.schema, table.table)
}

/// The window close of each incremental read of `batch` (None for other
/// rows).
pub(super) fn read_closes(batch: &ChangeBatch) -> Vec<Option<i64>> {
    let markers = batch
        .records
        .column_by_name(columns::SNAPSHOT)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>());
    let commits = batch
        .records
        .column_by_name(columns::SOURCE_COMMIT_LSN)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>());
    (0..batch.num_rows())
        .map(|i| {
            let (markers, commits) = (markers?, commits?);
            let incremental = batch.op(i) == Some(Op::Read)
                && markers.is_valid(i)
                && markers.value(i) == "incremental";
            (incremental && commits.is_valid(i)).then(|| commits.value(i))
        })
        .collect()
}

/// The first row of `batch` after `ask`: a streamed change past it, or a
/// read of a chunk whose window closed after it. A batch that holds both
/// sides is cut there, so the rows before the snapshot commit in older
/// files than any it reads.
pub(super) fn first_after(batch: &ChangeBatch, ask: (i64, i64)) -> Option<usize> {
    let closes = read_closes(batch);
    let streamed = streamed_at(batch);
    (0..batch.num_rows()).find(|&i| match (closes[i], streamed[i]) {
        (Some(close), _) => close > ask.1,
        (None, Some(at)) => at > ask,
        (None, None) => false,
    })
}

/// Where each streamed change of `batch` sits in the source's log
/// ([`placed`]); None for reads and rows without a position.
fn streamed_at(batch: &ChangeBatch) -> Vec<Option<(i64, i64)>> {
    let long = |name| {
        batch
            .records
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
    };
    let (lsns, commits) = (long(columns::SOURCE_LSN), long(columns::SOURCE_COMMIT_LSN));
    (0..batch.num_rows())
        .map(|i| {
            let (lsns, commits) = (lsns?, commits?);
            let streamed = batch.op(i) != Some(Op::Read) && lsns.is_valid(i) && commits.is_valid(i);
            streamed.then(|| placed((commits.value(i), lsns.value(i))))
        })
        .collect()
}

/// Whether the snapshot asked for at `ask` ends in `batch`: scanning its
/// `fresh` rows in order from the table's newest chunk read (`last`), a
/// streamed change comes after a window close that followed the last
/// chunk read.
pub(super) fn ends(
    batch: &ChangeBatch,
    fresh: &[bool],
    ask: (i64, i64),
    mut last: Option<i64>,
    log: &SignalLog,
) -> bool {
    let closes = read_closes(batch);
    let streamed = streamed_at(batch);
    for i in (0..batch.num_rows()).filter(|&i| fresh.get(i).copied().unwrap_or(false)) {
        if let Some(close) = closes[i] {
            if close > ask.1 {
                last = Some(last.map_or(close, |l| l.max(close)));
            }
            continue;
        }
        let Some(at) = streamed[i] else {
            continue;
        };
        if let Some(l) = last {
            if log.closed_between((l, l), at) {
                return true;
            }
        }
    }
    false
}

/// The table's last sequence number whose commits hold only changes made
/// before `ask` (for `topic`): the newest snapshot along the current
/// ancestry whose stream positions are all before it and that applied no
/// chunk of a later incremental snapshot. Zero when the whole history
/// comes after; None when the history no longer reaches that far.
pub(super) fn sequence_before(table: &Table, topic: &str, ask: (i64, i64)) -> Option<i64> {
    let metadata = table.metadata();
    let mut cursor = metadata.current_snapshot();
    while let Some(snapshot) = cursor {
        if let Some(positions) = SourcePositions::in_snapshot(snapshot) {
            let streamed_before = positions.streams(topic).all(|p| placed(p.at) < ask);
            let read_before = positions
                .incremental_read(topic)
                .is_none_or(|close| close <= ask.1);
            if streamed_before && read_before {
                return Some(snapshot.sequence_number());
            }
        }
        cursor = match snapshot.parent_snapshot_id() {
            Some(parent) => Some(metadata.snapshot_by_id(parent)?),
            None => return Some(0),
        };
    }
    Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trips() -> SourceTable {
        SourceTable {
            database: "taxi".into(),
            schema: "public".into(),
            table: "trips".into(),
        }
    }

    fn ask(at: (i64, i64), tables: &[&str]) -> Signal {
        Signal {
            kind: SignalKind::Snapshot {
                incremental: true,
                collections: tables.iter().map(|t| t.to_string()).collect(),
            },
            at,
        }
    }

    #[test]
    fn the_log_keeps_the_newest_open_ask_per_table() {
        let log = SignalLog::default();
        assert_eq!(log.open_ask(&trips()), None);
        log.record([
            ask((0, 100), &["public.trips"]),
            ask((0, 200), &["public.vendors"]),
        ]);
        // a new connector's first transaction has no last commit: the ask
        // is placed at its own LSN
        assert_eq!(log.open_ask(&trips()), Some((100, 100)));
        log.finish(&trips(), (100, 100));
        assert_eq!(log.open_ask(&trips()), None, "finished");
        log.record([ask((300, 300), &["public.trips"])]);
        assert_eq!(log.open_ask(&trips()), Some((300, 300)));
        log.record([Signal {
            kind: SignalKind::StopSnapshot {
                collections: vec!["public.trips".into()],
            },
            at: (400, 400),
        }]);
        assert_eq!(log.open_ask(&trips()), None, "stopped");
        // a blocking snapshot is reconciled by its reads' markers instead
        log.record([Signal {
            kind: SignalKind::Snapshot {
                incremental: false,
                collections: vec!["public.trips".into()],
            },
            at: (500, 500),
        }]);
        assert_eq!(log.open_ask(&trips()), None);
    }

    #[test]
    fn windows_closed_between_two_positions() {
        let log = SignalLog::default();
        for at in [10, 20, 30] {
            log.record([Signal {
                kind: SignalKind::WindowClose,
                at: (at, at),
            }]);
        }
        assert!(!log.closed_between((20, 20), (25, 25)));
        assert!(log.closed_between((20, 20), (30, 31)));
        assert!(!log.closed_between((20, 20), (30, 30)), "the close itself");
        assert!(log.closed_between((5, 5), (11, 0)));
        assert!(!log.closed_between((30, 30), (i64::MAX, i64::MAX)));
        // a change from before the last read (a partition behind)
        assert!(!log.closed_between((20, 20), (15, 16)));
        assert!(!log.closed_between((20, 20), (20, 20)));
    }
}
