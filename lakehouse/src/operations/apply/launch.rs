//! Writing the next batch's files while the last batch's metadata is
//! swapped in.
//!
//! ```text
//!  batch N   plan ─ write files ─ launch ┄┄ metadata swap ┄┄┐
//!  batch N+1            plan ─ write files ─ (wait) ─ land N ─ launch ┄┄
//! ```
//!
//! [`TableWriter::launch`] prepares a batch (plans it, moves its index
//! entries, writes its data and delete files) on top of the commit in
//! flight, as if that commit had landed: the offsets and source positions
//! it reads are the ones that commit records, its tails are that commit's
//! files. Only then does it wait for that commit, and it starts its own in
//! the background. The index journals the two batches apart, so:
//!
//! - the commit in flight lands: its journal is dropped and the batch's
//!   commit is launched on the table it made;
//! - it does not land (a lost race, an outage): both batches' index
//!   changes are undone, the prepared files are left unreferenced, and the
//!   two batches are applied again, in order, on the table as it is. The
//!   table's offsets skip whatever did land;
//! - it cannot land (an error no retry fixes): the writer refuses further
//!   work and keeps the batch ([`TableWriter::take_unlanded`]), so whoever
//!   opens the table again applies it before anything later.
//!
//! Only a plain batch is launched: inserts, updates and deletes by primary
//! key, with the table's columns, no snapshot being read again and no
//! expiry due. Anything else lands the commit in flight and is applied as
//! [`TableWriter::apply`] does. Merges and expiry never run with a commit
//! in flight: they commit on the table as it is.

use std::time::Instant;

use ingest::{ChangeBatch, Op};
use tokio::task::JoinHandle;

use super::{ApplyStats, Keying, TableWriter};
use crate::error::LakehouseError;
use crate::transaction::{
    Committed, KafkaOffsets, OnThisTable, SnapshotUpdate, SourcePositions, StateChange, Transaction,
};

/// A batch whose commit has landed, for the caller to account for.
#[derive(Debug, Clone)]
pub struct Landed {
    pub batch: ChangeBatch,
    pub stats: ApplyStats,
    /// When the writer began to apply the batch.
    pub started: Instant,
    /// When its commit landed.
    pub landed: Instant,
    /// Whether its files were written while the commit before it was
    /// being made.
    pub overlapped: bool,
}

/// A prepared batch's commit, not made yet.
pub(super) struct Prepared {
    pub(super) update: SnapshotUpdate,
    pub(super) state: StateChange,
}

/// A launched batch and its commit, running in the background.
pub(super) struct InFlight {
    batch: ChangeBatch,
    stats: ApplyStats,
    started: Instant,
    overlapped: bool,
    /// What the commit records: a batch planned on top of it reads this.
    state: StateChange,
    commit: Option<JoinHandle<(Result<Committed, LakehouseError>, Instant)>>,
    /// The commit's result and when it came, once it has come back.
    result: Option<(Result<Committed, LakehouseError>, Instant)>,
}

impl TableWriter {
    /// Applies `batch` as one snapshot, writing its files while the commit
    /// launched before is being made, and returns once its own commit is
    /// launched. What landed meanwhile is in
    /// [`take_landed`](Self::take_landed); [`land`](Self::land) waits for
    /// the rest. See the module's documentation.
    pub async fn launch(&mut self, batch: &ChangeBatch) -> Result<(), LakehouseError> {
        let table = self.table.identifier().clone();
        self.launch_batch(batch)
            .await
            .map_err(|e| e.in_table(&table))
    }

    async fn launch_batch(&mut self, batch: &ChangeBatch) -> Result<(), LakehouseError> {
        if self.poisoned {
            return Err(LakehouseError::WriterPoisoned {
                table: self.table.identifier().to_string(),
            });
        }
        let started = Instant::now();
        if !self.can_launch(batch) {
            self.land().await?;
            return self.apply_landed(batch, started).await;
        }
        let sorted = super::in_source_order(batch)?;
        let overlapped = self.in_flight.is_some();
        self.launching = true;
        self.begin();
        let prepared = self.apply_inner(&sorted).await;
        match &prepared {
            // its index changes stay journaled apart until it lands
            Ok(_) => self.keep(),
            Err(_) => self.rollback(),
        }
        self.launching = false;
        let stats = match prepared {
            Ok(stats) => stats,
            Err(e) => {
                // whatever it was (an outage reading a row, a lost race),
                // the batch is applied as any other, after the commit in
                // flight
                self.prepared = None;
                tracing::debug!(table = %self.table.identifier(), "a batch is applied after the commit in flight instead of beside it: {e}");
                self.land().await?;
                return self.apply_landed(batch, started).await;
            }
        };
        let prepared = self.prepared.take();
        if let Err((earlier, error)) = self.settle_in_flight().await {
            // both batches are planned again on the table as it is
            self.recover(earlier, error).await?;
            return self.apply_landed(batch, started).await;
        }
        let Some(Prepared { update, state }) = prepared else {
            // the table held the whole batch: nothing to commit
            self.index.keep();
            self.landed.push(Landed {
                batch: batch.clone(),
                stats,
                started,
                landed: Instant::now(),
                overlapped,
            });
            return Ok(());
        };
        self.index.hold();
        let (catalog, pointer, base) = (
            self.catalog.clone(),
            self.pointer.clone(),
            self.table.clone(),
        );
        let (recorded, policy) = (state.clone(), self.outages_only());
        let commit = tokio::spawn(async move {
            let committed = Transaction::new(catalog.as_ref(), &pointer, base, OnThisTable(update))
                .state(recorded)
                .retry(policy)
                .commit()
                .await;
            (committed, Instant::now())
        });
        self.in_flight = Some(InFlight {
            batch: batch.clone(),
            stats,
            started,
            overlapped,
            state,
            commit: Some(commit),
            result: None,
        });
        Ok(())
    }

    /// Waits for the commit in flight and accounts for it (in
    /// [`take_landed`](Self::take_landed)). One that did not land is
    /// applied again from its batch; one that cannot land leaves the
    /// writer refusing further work, its batch in
    /// [`take_unlanded`](Self::take_unlanded).
    pub async fn land(&mut self) -> Result<(), LakehouseError> {
        match self.settle_in_flight().await {
            Ok(()) => {
                if !self.batch_running() {
                    self.index.keep();
                }
                Ok(())
            }
            Err((earlier, error)) => self.recover(earlier, error).await,
        }
    }

    /// Waits until the commit in flight has come back, without accounting
    /// for it. Cancel-safe: dropped before then, the commit goes on and a
    /// later call waits again.
    pub async fn commit_done(&mut self) {
        let Some(flight) = self.in_flight.as_mut() else {
            return;
        };
        if let Some(commit) = flight.commit.as_mut() {
            let result = commit.await.unwrap_or_else(|e| {
                let operation = if e.is_cancelled() {
                    "a commit in flight (cancelled)"
                } else {
                    "a commit in flight (it panicked)"
                };
                (
                    Err(LakehouseError::ShuttingDown { operation }),
                    Instant::now(),
                )
            });
            flight.commit = None;
            flight.result = Some(result);
        }
    }

    /// Whether a launched batch's commit has not been accounted for yet.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The batches whose commits landed since the last call, in order.
    pub fn take_landed(&mut self) -> Vec<Landed> {
        std::mem::take(&mut self.landed)
    }

    /// A launched batch whose commit did not land and that the writer
    /// could not apply again: it must be applied before anything later.
    pub fn take_unlanded(&mut self) -> Option<ChangeBatch> {
        self.unlanded
            .take()
            .or_else(|| self.in_flight.take().map(|f| f.batch))
    }

    /// The offsets and source positions a batch starts from: the table's,
    /// advanced by what the commit in flight records.
    pub(super) fn state_after_in_flight(&self) -> (KafkaOffsets, SourcePositions) {
        match &self.in_flight {
            Some(flight) => {
                let properties = flight.state.properties(self.table.metadata());
                (
                    KafkaOffsets::from_summary(&properties).unwrap_or_default(),
                    SourcePositions::from_summary(&properties).unwrap_or_default(),
                )
            }
            None => (
                KafkaOffsets::of(&self.table),
                SourcePositions::of(&self.table),
            ),
        }
    }

    /// Whether `batch` can be prepared on top of a commit in flight: only
    /// changes by primary key of rows with the table's columns, while no
    /// snapshot is read again and no expiry is due.
    fn can_launch(&self, batch: &ChangeBatch) -> bool {
        let plain_ops = (0..batch.num_rows())
            .all(|i| matches!(batch.op(i), Some(Op::Create | Op::Update | Op::Delete)));
        let asked = match (&self.signals, &batch.source) {
            (Some(log), Some(source)) => log.open_ask(source).is_some(),
            _ => false,
        };
        let expiry_due = self
            .expiry
            .as_ref()
            .is_some_and(|e| self.since_expiry + 1 >= e.every_commits);
        let schema = self.table.metadata().current_schema();
        let same_columns = self
            .plan_evolution(schema, batch)
            .is_ok_and(|e| e.is_empty());
        matches!(self.keying, Keying::Primary(_))
            && batch.num_rows() > 0
            && plain_ops
            && !asked
            && self.incremental.is_none()
            && self.incremental_finish.is_none()
            && self.replaced_index.is_none()
            && !self.resnapshotting()
            && !expiry_due
            && same_columns
    }

    /// Waits for the commit in flight and takes in its result: landed, the
    /// table is the one it made and its index changes stay; not landed,
    /// every index change since the table was last known is undone and the
    /// batch comes back with the error.
    async fn settle_in_flight(&mut self) -> Result<(), (ChangeBatch, LakehouseError)> {
        self.commit_done().await;
        let Some(flight) = self.in_flight.take() else {
            return Ok(());
        };
        let (result, landed) = flight.result.unwrap_or_else(|| {
            let operation = "a commit in flight";
            (
                Err(LakehouseError::ShuttingDown { operation }),
                Instant::now(),
            )
        });
        match result {
            Ok(committed) => {
                self.table = committed.table;
                self.since_expiry += 1;
                self.index.release_held();
                self.landed.push(Landed {
                    batch: flight.batch,
                    stats: flight.stats,
                    started: flight.started,
                    landed,
                    overlapped: flight.overlapped,
                });
                Ok(())
            }
            Err(error) => {
                self.index.rollback_all();
                self.tails.clear();
                self.ledger = None;
                Err((flight.batch, error))
            }
        }
    }

    /// A launched batch whose commit did not land: applied again on the
    /// table as it is (its offsets skip it if it did land after all).
    async fn recover(
        &mut self,
        batch: ChangeBatch,
        error: LakehouseError,
    ) -> Result<(), LakehouseError> {
        let started = Instant::now();
        if !error.is_conflict() && !error.is_retryable() {
            self.poisoned = true;
            self.unlanded = Some(batch);
            return Err(error);
        }
        tracing::warn!(table = %self.table.identifier(), "a commit made in the background did not land; its batch is applied again: {error}");
        let applied = self.apply_landed(&batch, started).await;
        if applied.is_err() {
            self.unlanded = Some(batch);
        }
        applied
    }

    /// Applies `batch` as [`apply`](Self::apply) does, with nothing in
    /// flight, and accounts for it as landed.
    async fn apply_landed(
        &mut self,
        batch: &ChangeBatch,
        started: Instant,
    ) -> Result<(), LakehouseError> {
        let stats = self.apply_batch(batch).await?;
        self.landed.push(Landed {
            batch: batch.clone(),
            stats,
            started,
            landed: Instant::now(),
            overlapped: false,
        });
        Ok(())
    }
}
