//! Applying change batches to a table.
//!
//! ```text
//!  ChangeBatch ──▶ the table's columns follow the batch's row type
//!                  (added, dropped, renamed, widened, nullable; evolve.rs);
//!                  columns added with a DEFAULT are filled into every
//!                  existing row (fill.rs)
//!              ──▶ final event per key (after the last truncate, whose
//!                  commit removes every file the table had)
//!              ──▶ unchanged TOAST columns filled from earlier rows of the
//!                  batch, else from the table (read through the index)
//!              ──▶ upserted rows written (one data file per partition);
//!                  replaced and deleted rows become position deletes,
//!                  grouped by the partition of the file they delete from
//!              ──▶ one commit: the new schema (if any), the files and the
//!                  Kafka offsets, in one metadata swap
//! ```
//!
//! How rows are identified depends on the table ([`Keying`]): by primary
//! key; by the whole row for a source table without one (updates and
//! deletes name their row by its `REPLICA IDENTITY FULL` before-image);
//! not at all for a changelog (`append` mode), where every change is a row.
//!
//! The [`TableWriter`] owns the table's index, built from the current
//! snapshot when it opens and only then. A batch's changes to the index are
//! journaled: a commit lost to another writer (a compaction, another
//! instance) rolls them back, catches the index up with the snapshots
//! committed since ([`catch_up`]) and plans the batch again on the newer
//! table, skipping what it already holds by its Kafka offsets. A batch from
//! several partitions of a topic is applied in source order
//! ([`source_order`]). A snapshot Debezium sends again deletes, when it
//! ends, the rows it did not read ([`resnapshot`]; an incremental one,
//! placed by what the signal table said, [`incremental`]). An outage
//! is waited out by the writer's [`RetryPolicy`]. Any other failure leaves
//! the writer refusing further work until it is opened again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Array, ArrayRef, RecordBatch, StructArray, UInt32Array};
use arrow_schema::DataType;
use futures::TryStreamExt;
use iceberg::spec::{DataContentType, DataFile, Schema, Struct};
use iceberg::table::Table;
use iceberg::Catalog;
use ingest::{ChangeBatch, Op};

use crate::config::SnapshotExpiry;
use crate::error::LakehouseError;
use crate::index::pk_index::{BatchKeys, Key, PrimaryKeyIndex, RowLocation};
use crate::operations::append::changelog_rows;
use crate::operations::fill::{fill_defaults, is_set};
use crate::spec::evolve::{self, Evolution};
use crate::spec::parquet::FileTier;
use crate::spec::position_delete::{write_partitioned_deletes, PositionDelete};
use crate::spec::read::{live_entries, read_fields, read_position_deletes};
use crate::spec::write::{table_rows, write_rows_as, WrittenRows};
use crate::table::{append_columns, ensure_table, TableTarget};
use crate::transaction::{
    reload, CatalogPointer, KafkaOffsets, OnThisTable, Removal, RetryPolicy, SnapshotUpdate,
    SourcePositions, StateChange, StreamPosition, Transaction,
};
use crate::Lake;

mod catch_up;
mod cpu_budget;
mod incremental;
mod launch;
mod ledger;
mod merge;
mod resent;
mod resnapshot;
mod source_order;
mod tail;

use catch_up::CaughtUp;
pub use incremental::SignalLog;
pub use launch::Landed;
use ledger::FileLedger;
pub use merge::MergeReport;
use resent::Resent;
use resnapshot::Resnapshot;
pub use source_order::{join_held, SourceReader};

use crate::config::MergePolicy;

/// What one batch did to the table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    pub rows_written: usize,
    pub rows_deleted: usize,
    /// Deletes of keys that were not live: counted, not an error.
    pub absent_deletes: usize,
    pub truncated: bool,
    /// Events at or below the offsets the table had already applied (a
    /// replay after a crash), or older than its last truncate: skipped, so
    /// nothing is applied twice or after a truncate that removed it.
    pub already_applied: usize,
    /// Of those, events older than the table's last truncate (they came
    /// on another partition than the truncate, and later).
    pub before_truncate: usize,
    /// Changes applied again after a truncate that arrived after them
    /// (made later, on another partition): read again from the source.
    pub applied_again: usize,
    /// Of the skipped events, changes Debezium sent again under new
    /// offsets (after a Kafka Connect crash or rebalance), told by their
    /// source position (see `resent`).
    pub resent: usize,
    /// Rows a snapshot read again did not read (deleted at the source
    /// while the slot was lost), deleted when it ended (see `resnapshot`).
    pub reconciled: usize,
    /// The batch changed the table's columns.
    pub schema_changed: bool,
    /// Existing rows rewritten to hold a new column's default.
    pub rows_filled: u64,
    /// Old snapshots the writer expired after the batch (see
    /// [`TableWriter::with_snapshot_expiry`]).
    pub expired: usize,
    /// Rows of partitions' newest files written again with the batch's
    /// own, in place of those files (see `tail`).
    pub tail_rows_rewritten: usize,
    /// Of those, the old rows sealed in files of their own.
    pub rows_sealed: usize,
    /// Milliseconds writing the batch's data and delete files, before its
    /// metadata was committed.
    pub files_ms: u64,
}

impl ApplyStats {
    /// Adds the stats of another part of the same batch.
    fn add(&mut self, other: &ApplyStats) {
        self.rows_written += other.rows_written;
        self.rows_deleted += other.rows_deleted;
        self.absent_deletes += other.absent_deletes;
        self.truncated |= other.truncated;
        self.already_applied += other.already_applied;
        self.before_truncate += other.before_truncate;
        self.applied_again += other.applied_again;
        self.resent += other.resent;
        self.reconciled += other.reconciled;
        self.schema_changed |= other.schema_changed;
        self.rows_filled += other.rows_filled;
        self.expired += other.expired;
        self.tail_rows_rewritten += other.tail_rows_rewritten;
        self.rows_sealed += other.rows_sealed;
        self.files_ms += other.files_ms;
    }
}

/// How a table's rows are identified.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Keying {
    /// By the primary key (the table's identifier fields), by name.
    Primary(Vec<String>),
    /// By the whole row: a source table without a primary key.
    WholeRow,
    /// Not at all: an `append`-mode changelog, one row per change.
    Changelog,
}

/// Applies change batches to one table.
pub struct TableWriter {
    catalog: Arc<dyn Catalog>,
    table: Table,
    pointer: CatalogPointer,
    index: PrimaryKeyIndex,
    /// The index as the batch found it, when the batch replaced it whole
    /// (a fill of a keyless table, its columns changed): a rollback puts
    /// it back.
    replaced_index: Option<PrimaryKeyIndex>,
    keying: Keying,
    /// Partition of each data file the index points into (entries of
    /// files since removed are never looked up again).
    partitions: HashMap<Arc<str>, Struct>,
    retry: RetryPolicy,
    commits: u64,
    /// A batch is running (its index changes are journaled).
    batch: bool,
    poisoned: bool,
    full_builds: u64,
    rebuilt_after_race: u64,
    caught_up: u64,
    /// The table's live files, for merging: `None` until read, and again
    /// whenever the writer follows another writer's commits.
    ledger: Option<FileLedger>,
    merge_policy: MergePolicy,
    /// A merge round whose files are being written beside the commits.
    merging: Option<merge::MergeInFlight>,
    /// Each partition's newest file, which the next commit into it
    /// writes again with its own rows (see `tail`).
    tails: tail::Tails,
    deleted_again: u64,
    /// Where changes are read again when a truncate arrives late.
    source: Option<Arc<dyn SourceReader>>,
    /// Whether a snapshot read again deletes the rows it did not read.
    reconcile_snapshots: bool,
    /// How the writer expires its table's old snapshots (`None`: never).
    expiry: Option<SnapshotExpiry>,
    /// Commits since the last expiry.
    since_expiry: u64,
    /// What the signal table said (incremental snapshots asked for).
    signals: Option<SignalLog>,
    /// An incremental snapshot asked for of this table, and the sequence
    /// number it reconciles at (see `incremental`).
    incremental: Option<((i64, i64), i64)>,
    /// Whether one is under way (merges wait).
    incremental_open: bool,
    /// When this writer first saw it asked for, or last applied its reads:
    /// merges wait at most [`incremental::MERGES_WAIT`] after (a
    /// snapshot paused, or one whose end never shows, must not stop them
    /// for good).
    incremental_seen: Option<((i64, i64), Instant)>,
    /// When the writer last committed incremental snapshot reads (merges
    /// wait from then too, whether or not the signals have come).
    incremental_reads_at: Option<Instant>,
    /// Marked finished in the log when the batch commits.
    incremental_finish: Option<(ingest::SourceTable, (i64, i64))>,
    /// The last batch launched whose commit has not landed yet (see
    /// `launch`).
    in_flight: Option<launch::InFlight>,
    /// A batch is being prepared on top of the commit in flight: its
    /// commit is stashed in `prepared`, not made.
    launching: bool,
    prepared: Option<launch::Prepared>,
    /// Batches whose commits landed, for the caller to account for.
    landed: Vec<Landed>,
    /// A launched batch whose commit did not land and could not be
    /// applied again: whoever drops the writer applies it first.
    unlanded: Option<ChangeBatch>,
}

fn iceberg_error(operation: &'static str, table: &Table, source: iceberg::Error) -> LakehouseError {
    LakehouseError::Iceberg {
        operation,
        table: table.identifier().to_string(),
        source: Box::new(source),
    }
}

fn arrow_error(context: String) -> impl FnOnce(arrow_schema::ArrowError) -> LakehouseError {
    move |source| LakehouseError::Arrow { context, source }
}

impl Lake {
    /// The writer for the source table of `first`, creating its Iceberg
    /// table from `first` if it does not exist yet. A batch of truncates
    /// alone creates nothing ([`LakehouseError::NoTableYet`]): there is
    /// nothing to truncate, and it cannot say whether the table has a key.
    pub async fn writer(&self, first: &ChangeBatch) -> Result<TableWriter, LakehouseError> {
        let target = TableTarget::for_batch(first, &self.config().tables)?;
        if !first.has_row_events() {
            let exists = self
                .catalog()
                .table_exists(&target.ident)
                .await
                .map_err(|source| LakehouseError::Iceberg {
                    operation: "look up table",
                    table: target.ident.to_string(),
                    source: Box::new(source),
                })?;
            if !exists {
                return Err(LakehouseError::NoTableYet {
                    table: target.ident.to_string(),
                });
            }
        }
        let table = ensure_table(self.catalog().as_ref(), &target, first).await?;
        let merge = (target.config.merge.as_ref())
            .unwrap_or(&self.config().tables.merge)
            .clone();
        Ok(
            TableWriter::open(self.catalog().clone(), table, self.pointer().clone())
                .await?
                .with_merge_policy(merge)
                .with_snapshot_reconciliation(target.config.reconcile_snapshots)
                .with_snapshot_expiry(
                    (target.config.expire.as_ref())
                        .unwrap_or(&self.config().tables.expire)
                        .clone(),
                ),
        )
    }
}

impl TableWriter {
    /// Opens a writer on `table`, building its index from the table's
    /// current snapshot (live rows of every data file, minus position
    /// deletes).
    pub async fn open(
        catalog: Arc<dyn Catalog>,
        table: Table,
        pointer: impl Into<CatalogPointer>,
    ) -> Result<Self, LakehouseError> {
        let schema = table.metadata().current_schema().clone();
        let keys = key_names(&schema);
        let keying = if !keys.is_empty() {
            Keying::Primary(keys)
        } else if schema.field_by_name(append_columns::OP).is_some() {
            Keying::Changelog
        } else {
            Keying::WholeRow
        };
        let mut writer = Self {
            catalog,
            index: PrimaryKeyIndex::new(&[])?,
            replaced_index: None,
            keying,
            table,
            pointer: pointer.into(),
            partitions: HashMap::new(),
            retry: RetryPolicy::default(),
            commits: 0,
            batch: false,
            poisoned: false,
            full_builds: 0,
            rebuilt_after_race: 0,
            caught_up: 0,
            ledger: None,
            merge_policy: MergePolicy::default(),
            merging: None,
            tails: tail::Tails::default(),
            deleted_again: 0,
            source: None,
            reconcile_snapshots: true,
            expiry: None,
            since_expiry: 0,
            signals: None,
            incremental: None,
            incremental_open: false,
            incremental_seen: None,
            incremental_reads_at: None,
            incremental_finish: None,
            in_flight: None,
            launching: false,
            prepared: None,
            landed: Vec::new(),
            unlanded: None,
        };
        let table = writer.table.identifier().clone();
        writer
            .load_index(&schema)
            .await
            .map_err(|e| e.in_table(&table))?;
        Ok(writer)
    }

    /// How the writer waits out lost races and outages (default:
    /// [`RetryPolicy::default`]).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Where the writer reads a topic's changes again when a truncate
    /// arrives after changes made later on another partition (without
    /// one, such a truncate is an error).
    pub fn with_source_reader(mut self, reader: Arc<dyn SourceReader>) -> Self {
        self.source = Some(reader);
        self
    }

    /// Whether a snapshot Debezium sends again deletes, when it ends, the
    /// rows it did not read (default on; see `resnapshot`).
    pub fn with_snapshot_reconciliation(mut self, on: bool) -> Self {
        self.reconcile_snapshots = on;
        self
    }

    /// What the signal table says, so an incremental snapshot asked for
    /// of this table deletes at its end the rows it did not read (with
    /// snapshot reconciliation on; see `incremental`).
    pub fn with_signals(mut self, log: SignalLog) -> Self {
        self.signals = Some(log);
        self
    }

    /// How the writer expires its table's old snapshots, in commits of
    /// their own that change metadata only (default: never; ingest's
    /// writers take `[lake.tables.expire]`).
    pub fn with_snapshot_expiry(mut self, expiry: SnapshotExpiry) -> Self {
        self.expiry = expiry.enabled.then_some(expiry);
        self
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    /// How often the index was built by reading the whole table: once on
    /// open, and again only when history could not say what another
    /// writer did.
    pub fn full_index_builds(&self) -> u64 {
        self.full_builds
    }

    /// Of those, the builds after a lost race (history could not say what
    /// the other writer did: its snapshots expired, equality deletes).
    pub fn index_rebuilds_after_races(&self) -> u64 {
        self.rebuilt_after_race
    }

    /// How often the index was caught up with other writers' snapshots
    /// after a lost race.
    pub fn index_catch_ups(&self) -> u64 {
        self.caught_up
    }

    /// Rows the writer's commits deleted while a merge wrote their files,
    /// deleted again from the merged files when the merge committed.
    pub fn rows_deleted_again_by_merges(&self) -> u64 {
        self.deleted_again
    }

    pub fn live_rows(&self) -> usize {
        self.index.len()
    }

    /// Heap bytes of the primary-key index.
    pub fn index_heap_bytes(&self) -> usize {
        self.index.heap_bytes()
    }

    /// The columns the index keys by in `schema` (field ids), and their
    /// Arrow types; none for a changelog.
    fn index_columns(&self, schema: &Schema) -> Result<(Vec<i32>, Vec<DataType>), LakehouseError> {
        let arrow = iceberg::arrow::schema_to_arrow_schema(schema)
            .map_err(|e| iceberg_error("schema", &self.table, e))?;
        let ids: Vec<i32> = match &self.keying {
            Keying::Primary(_) => key_ids(schema),
            Keying::WholeRow => schema.as_struct().fields().iter().map(|f| f.id).collect(),
            Keying::Changelog => Vec::new(),
        };
        let types = ids
            .iter()
            .filter_map(|id| schema.name_by_field_id(*id))
            .filter_map(|name| arrow.field_with_name(name).ok())
            .map(|f| f.data_type().clone())
            .collect();
        Ok((ids, types))
    }

    /// (Re)builds the index from the current snapshot, keying rows as
    /// `schema` has them (the table's, or the one a batch is about to make
    /// current).
    async fn load_index(&mut self, schema: &Schema) -> Result<(), LakehouseError> {
        let (ids, types) = self.index_columns(schema)?;
        let empty = match self.keying {
            Keying::WholeRow => PrimaryKeyIndex::whole_rows(&types)?,
            _ => PrimaryKeyIndex::new(&types)?,
        };
        self.replace_index(empty);
        self.ledger = None;
        self.tails.clear();
        if self.keying == Keying::Changelog || self.table.metadata().current_snapshot().is_none() {
            return Ok(());
        }
        self.full_builds += 1;
        let scan = self
            .table
            .scan()
            .build()
            .map_err(|e| iceberg_error("plan index scan", &self.table, e))?;
        let tasks: Vec<_> = scan
            .plan_files()
            .await
            .map_err(|e| iceberg_error("plan index scan", &self.table, e))?
            .try_collect()
            .await
            .map_err(|e| iceberg_error("plan index scan", &self.table, e))?;
        let mut delete_files: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for task in tasks {
            let mut deleted: Vec<i64> = Vec::new();
            for delete in task
                .deletes
                .iter()
                .filter(|d| d.file_type == DataContentType::PositionDeletes)
            {
                if !delete_files.contains_key(&delete.file_path) {
                    let rows = read_position_deletes(&self.table, &delete.file_path).await?;
                    delete_files.insert(delete.file_path.clone(), rows);
                }
                deleted.extend(
                    delete_files[&delete.file_path]
                        .iter()
                        .filter(|(p, _)| *p == task.data_file_path)
                        .map(|(_, pos)| *pos),
                );
            }
            deleted.sort_unstable();
            let rows =
                read_fields(&self.table, &task.data_file_path, schema, Some(&ids), None).await?;
            let file = self.index.register_file(&task.data_file_path);
            let live: Vec<u32> = (0..rows.num_rows() as u32)
                .filter(|pos| deleted.binary_search(&i64::from(*pos)).is_err())
                .collect();
            self.index_rows(&rows, file, &live)?;
            self.partitions.insert(
                Arc::from(task.data_file_path.as_str()),
                task.partition.clone().unwrap_or(Struct::empty()),
            );
        }
        Ok(())
    }

    /// Adds the rows of one data file at `positions` to the index (`rows`
    /// holds the index columns, every position of the file).
    fn index_rows(
        &mut self,
        rows: &RecordBatch,
        file: u32,
        positions: &[u32],
    ) -> Result<(), LakehouseError> {
        let keys = StructArray::from(rows.clone());
        let keys = self.index.batch_keys(&keys)?;
        for &pos in positions {
            if let Some(key) = keys.get(pos as usize) {
                let loc = RowLocation { file, pos };
                match self.keying {
                    Keying::WholeRow => self.index.insert_copy(key, loc),
                    _ => {
                        self.index.upsert(key, loc);
                    }
                }
            }
        }
        Ok(())
    }

    /// The Kafka offsets the table has applied.
    pub fn applied_offsets(&self) -> BTreeMap<(String, i32), i64> {
        KafkaOffsets::of(&self.table).into_map()
    }

    /// Puts `index` in place of the current one; the first replacement in
    /// a batch keeps the old one for a rollback.
    fn replace_index(&mut self, index: PrimaryKeyIndex) {
        let old = std::mem::replace(&mut self.index, index);
        if self.batch_running() && self.replaced_index.is_none() {
            self.replaced_index = Some(old);
        }
    }

    fn batch_running(&self) -> bool {
        self.batch
    }

    /// The writer's retry policy for outages, with no retry of a lost
    /// race: the writer follows the table itself and plans again.
    fn outages_only(&self) -> RetryPolicy {
        RetryPolicy {
            conflicts: 0,
            ..self.retry.clone()
        }
    }

    /// Applies one change batch as one snapshot. A commit launched before
    /// (see [`launch`](Self::launch)) lands first.
    pub async fn apply(&mut self, batch: &ChangeBatch) -> Result<ApplyStats, LakehouseError> {
        let table = self.table.identifier().clone();
        let applied = match self.land().await {
            Ok(()) => self.apply_batch(batch).await,
            Err(e) => Err(e),
        };
        applied.map_err(|e| e.in_table(&table))
    }

    async fn apply_batch(&mut self, batch: &ChangeBatch) -> Result<ApplyStats, LakehouseError> {
        if self.poisoned {
            return Err(LakehouseError::WriterPoisoned {
                table: self.table.identifier().to_string(),
            });
        }
        let batch = in_source_order(batch)?;
        let mut stats = ApplyStats::default();
        for part in resnapshot::split_at_starts(batch) {
            for part in self.split_at_ask(part) {
                stats.add(&self.apply_sorted(&part).await?);
            }
        }
        stats.expired = self.expire_if_due().await;
        Ok(stats)
    }

    /// Expires the table's old snapshots when `every_commits` commits have
    /// passed since the last time. A merge under way reads the snapshots
    /// since the one it was planned on when it commits, so those are kept
    /// (at 200 ms commits a merge is nearly always under way: waiting for
    /// none let the history grow without end). The table's data is
    /// untouched, so a failure costs only metadata size: it is logged and
    /// tried again after as many commits. How many snapshots expired.
    async fn expire_if_due(&mut self) -> usize {
        let Some(expiry) = &self.expiry else {
            return 0;
        };
        if self.since_expiry < expiry.every_commits {
            return 0;
        }
        self.since_expiry = 0;
        let merge_base = self.merging.as_ref().and_then(|m| m.base_snapshot);
        let since_merge_base = merge_base.map_or(0, |base| snapshots_since(&self.table, base));
        let policy = crate::maintain::ExpirePolicy {
            older_than: std::time::Duration::from_secs(expiry.keep_minutes.saturating_mul(60)),
            retain_last: expiry.keep_last.max(since_merge_base),
        };
        let at_most = expiry.max_snapshots.max(since_merge_base);
        let started = std::time::Instant::now();
        let name = self.table.identifier().to_string();
        match crate::maintain::expire::expire_metadata(
            self.catalog.as_ref(),
            &self.pointer,
            self.table.clone(),
            &policy,
            Some(at_most),
            self.outages_only(),
        )
        .await
        {
            Ok(Some((table, expired))) => {
                self.table = table;
                let metadata = self.table.metadata();
                let oldest = metadata.snapshots().map(|s| s.timestamp_ms()).min();
                tracing::info!(
                    table = %name,
                    expired,
                    kept = metadata.snapshots().count(),
                    reaches_back_s = oldest.map(|t| (metadata.last_updated_ms() - t) / 1000),
                    ms = started.elapsed().as_millis() as u64,
                    "expired old snapshots (metadata only: `floe maintain orphans` deletes the files only they reached)"
                );
                expired
            }
            Ok(None) => 0,
            Err(e) => {
                tracing::warn!(table = %name, "cannot expire old snapshots now: {e}");
                0
            }
        }
    }

    /// Applies a batch in source order as one snapshot, retrying lost
    /// races and outages.
    async fn apply_sorted(&mut self, batch: &ChangeBatch) -> Result<ApplyStats, LakehouseError> {
        let mut schedule = self.retry.schedule();
        let mut stale = false;
        loop {
            let result = if stale {
                self.refresh().await.map(|()| None)
            } else {
                self.begin();
                let result = self.apply_inner(batch).await;
                match &result {
                    Ok(_) => self.keep(),
                    Err(_) => self.rollback(),
                }
                result.map(Some)
            };
            let error = match result {
                Ok(Some(stats)) => return Ok(stats),
                Ok(None) => {
                    stale = false;
                    continue;
                }
                Err(e) => e,
            };
            // Another writer committed first, or the catalog or the store
            // did not answer: the index is back where the batch found it;
            // after a wait it follows the table as it is now and the batch
            // is planned again, skipping what the table already holds.
            let wait = if error.is_conflict() {
                schedule.after_conflict()
            } else if error.is_retryable() {
                schedule.after_outage()
            } else {
                None
            };
            let Some(wait) = wait else {
                self.poisoned = true;
                return Err(error);
            };
            tracing::warn!(table = %self.table.identifier(), wait_ms = wait.as_millis() as u64, "cannot commit yet: {error}");
            tokio::time::sleep(wait).await;
            stale = true;
        }
    }

    /// Starts a batch: its index changes are journaled.
    fn begin(&mut self) {
        self.batch = true;
        self.replaced_index = None;
        self.incremental_finish = None;
        self.index.begin();
    }

    /// The batch committed (or, while launching, is ready to): its index
    /// changes stay.
    fn keep(&mut self) {
        self.batch = false;
        self.replaced_index = None;
        if self.launching {
            // journaled until its commit lands (see `launch`)
            return;
        }
        if let (Some((table, ask)), Some(log)) = (self.incremental_finish.take(), &self.signals) {
            log.finish(&table, ask);
            self.incremental = None;
            self.incremental_open = false;
            self.incremental_reads_at = None;
        }
        self.index.keep();
    }

    /// The batch did not commit: the index is as the batch found it.
    fn rollback(&mut self) {
        self.batch = false;
        self.incremental_finish = None;
        match self.replaced_index.take() {
            Some(before) => self.index = before,
            None => self.index.rollback(),
        }
    }

    /// Follows the table as the catalog has it now: the index catches up
    /// with the snapshots committed since its own, or is built again when
    /// history cannot say what they did.
    async fn refresh(&mut self) -> Result<(), LakehouseError> {
        let started = Instant::now();
        let newer = reload(self.catalog.as_ref(), self.table.identifier()).await?;
        self.ledger = None;
        self.tails.clear();
        match self.catch_up(&newer).await? {
            CaughtUp::Snapshots(n) => {
                self.caught_up += 1;
                tracing::info!(table = %self.table.identifier(), snapshots = n, live_rows = self.index.len(), ms = started.elapsed().as_millis() as u64, "key index caught up with the commits it lost to");
                self.table = newer;
            }
            CaughtUp::Rebuild(why) => {
                tracing::warn!(table = %self.table.identifier(), "building the key index again from the table: {why}");
                self.table = newer;
                self.rebuilt_after_race += 1;
                let schema = self.table.metadata().current_schema().clone();
                self.load_index(&schema).await?;
            }
        }
        Ok(())
    }

    async fn apply_inner(&mut self, batch: &ChangeBatch) -> Result<ApplyStats, LakehouseError> {
        let table_name = self.table.identifier().to_string();
        let mut stats = ApplyStats::default();

        // a truncate that arrived after changes made later on another
        // partition: those are applied again after it
        let reread = self.reread_overtaken(batch).await?;
        let none = HashSet::new();
        let (batch, again) = match &reread {
            Some((combined, again)) => (combined, again),
            None => (batch, &none),
        };

        // a replay: events the table already holds are skipped, and so are
        // changes older than its last truncate
        // a batch prepared on top of a commit in flight reads the state
        // that commit records
        let (applied, positions) = self.state_after_in_flight();
        if self.keying == Keying::WholeRow {
            source_order::one_partition(batch, &applied, &table_name)?;
        }
        let truncated = positions.truncated(&batch.topic);
        let changelog = self.keying == Keying::Changelog;
        let lsns = source_order::Lsns::of(batch);
        let resent = Resent::scan(batch, &applied, &positions);
        let rows: Vec<bool> = (0..batch.num_rows())
            .map(|i| {
                let (partition, offset) = batch.position(i);
                let new = applied
                    .get(&batch.topic, partition)
                    .is_none_or(|done| offset > done);
                if again.contains(&(partition, offset)) {
                    stats.applied_again += usize::from(!new);
                    return true;
                }
                let (op, lsn) = (batch.op(i), lsns.get(i));
                // a truncate sent again to another partition than the first
                // time: a changelog records it once
                let sent_again = resent.rows[i]
                    || (changelog && op == Some(Op::Truncate) && lsn.is_some() && lsn == truncated);
                if new && sent_again {
                    stats.resent += 1;
                    return false;
                }
                let old = !changelog && source_order::before_truncate(op, lsn, truncated);
                if new && old {
                    stats.before_truncate += 1;
                }
                new && !old
            })
            .collect();
        let resnapshot = if self.reconcile_snapshots && matches!(self.keying, Keying::Primary(_)) {
            Resnapshot::scan(
                batch,
                &rows,
                positions.resnapshot(&batch.topic),
                positions.snapshot_lsn(&batch.topic),
                self.table.metadata().last_sequence_number(),
            )
        } else {
            Resnapshot::default()
        };
        let incremental_read = incremental::read_closes(batch)
            .into_iter()
            .zip(&rows)
            .filter_map(|(close, fresh)| close.filter(|_| *fresh))
            .max();
        let fresh = Fresh {
            rows,
            stream: resent.stream,
            resnapshot: resnapshot.change,
            snapshot_lsn: resnapshot.snapshot_lsn,
            incremental_read,
        };
        stats.already_applied = fresh.iter().filter(|f| !**f).count();
        if stats.already_applied == batch.num_rows()
            && batch.offsets.iter().all(|r| {
                applied
                    .get(&batch.topic, r.partition)
                    .is_some_and(|d| r.last <= d)
            })
        {
            return Ok(stats);
        }
        // nothing new, but Kafka moved on (tombstones only): record the offsets
        // with an empty commit
        if stats.already_applied == batch.num_rows() {
            self.commit(
                batch,
                &applied,
                &fresh,
                Written::default(),
                Removal::Nothing,
                None,
            )
            .await?;
            return Ok(stats);
        }

        let incremental_end = self.follow_incremental(batch, &fresh);

        // the table's columns follow the source's, never back to older ones
        let schema = self.table.metadata().current_schema().clone();
        let older = source_order::older_columns(batch, positions.columns_changed(&batch.topic));
        let evolution = if older {
            Evolution::default()
        } else {
            self.plan_evolution(&schema, batch)?
        };
        let next: Arc<Schema> = if evolution.is_empty() {
            schema.clone()
        } else {
            let last_id = self.table.metadata().last_column_id();
            Arc::new(evolution.apply(&schema, last_id).map_err(|source| {
                LakehouseError::Schema {
                    table: table_name.clone(),
                    source,
                }
            })?)
        };
        stats.schema_changed = !evolution.is_empty();
        if stats.schema_changed {
            tracing::info!(table = %table_name, change = %evolution.describe(&schema), "the table's columns follow a change at the source");
        }
        let key_names = key_names(&next);
        // a source table re-keyed in Postgres cannot be applied by key
        if let Keying::Primary(_) = self.keying {
            let mut theirs = batch.key_fields.clone();
            theirs.sort();
            let mut ours = key_names.clone();
            ours.sort();
            if batch.key().is_some() && theirs != ours {
                return Err(LakehouseError::SchemaMismatch {
                    table: table_name.clone(),
                    reason: format!(
                        "the source's primary key is now {:?} but the table's is {:?}; floe cannot re-key a table",
                        batch.key_fields, key_names
                    ),
                });
            }
            self.keying = Keying::Primary(key_names);
        }
        let new_schema = stats.schema_changed.then(|| next.as_ref().clone());
        if self.keying == Keying::Changelog {
            return self
                .append(batch, &applied, &fresh, stats, new_schema, older)
                .await;
        }

        // everything before the last truncate is gone
        let start = (0..batch.num_rows())
            .rev()
            .find(|&i| fresh[i] && batch.op(i) == Some(Op::Truncate))
            .map_or(0, |t| t + 1);
        let mut removal = Removal::Nothing;
        let mut data_files: Vec<DataFile> = Vec::new();
        if start > 0 {
            stats.truncated = true;
            // every file goes: the commit removes them all, no deletes needed
            self.index.clear();
            removal = Removal::All;
        } else if stats.schema_changed {
            let defaults: Vec<(&str, &ArrayRef)> =
                evolution.defaults().filter(|(_, d)| is_set(d)).collect();
            if !defaults.is_empty() && !self.index.is_empty() {
                let (rows, files) = self.fill(&next, &defaults).await?;
                stats.rows_filled = rows;
                removal = Removal::All;
                data_files = files;
            } else if self.keying == Keying::WholeRow {
                // whole-row keys change with the columns
                self.load_index(&next).await?;
            }
        }

        let (planned, mut deletes) = match self.keying {
            Keying::WholeRow => self.plan_whole_rows(batch, &fresh, start, &next, &mut stats)?,
            _ => self.plan_by_key(batch, &fresh, start, &mut stats)?,
        };
        let mut picked = self.picked_rows(batch, &planned, &next).await?;
        if older {
            picked = source_order::only_columns_of(picked, &next);
        }
        self.commits += 1;
        let prefix = format!("{}-{}", uuid::Uuid::new_v4(), self.commits);
        let new_rows = table_rows(&picked, &next, &table_name)?;
        let tails_written = start == 0
            && matches!(self.keying, Keying::Primary(_))
            && !stats.schema_changed
            && data_files.is_empty()
            && resnapshot.reconcile.is_none()
            && fresh.resnapshot.is_none()
            && incremental_end.is_none()
            && fresh.incremental_read.is_none()
            && !self.resnapshotting();
        // tails only save files: when they cannot be taken, the commit
        // adds files as it would without them
        let taken = match tails_written.then(|| self.take_tails(&planned, &new_rows)) {
            Some(Ok(taken)) => taken,
            Some(Err(e)) => {
                tracing::warn!(table = %table_name, "the partitions' newest files are not written again: {e}");
                self.tails.clear();
                tail::TakenTails::default()
            }
            None => {
                self.tails.clear();
                tail::TakenTails::default()
            }
        };
        let table_rows = if taken.is_empty() {
            new_rows.clone()
        } else {
            let mut all = vec![&new_rows];
            all.extend(taken.kept_rows());
            arrow_select::concat::concat_batches(&new_rows.schema(), all).map_err(|source| {
                LakehouseError::Arrow {
                    context: format!("a commit's rows and its partitions' tails in {table_name}"),
                    source,
                }
            })?
        };
        let writing = Instant::now();
        // the tails' old rows, sealed in files of their own (none most
        // commits), written beside the commit's own
        let sealed: Vec<&RecordBatch> = taken.sealed_rows().collect();
        let sealed =
            arrow_select::concat::concat_batches(&new_rows.schema(), sealed).map_err(|source| {
                LakehouseError::Arrow {
                    context: format!("the tails' sealed rows in {table_name}"),
                    source,
                }
            })?;
        let sealed_prefix = format!("{prefix}-sealed");
        let (written, sealed) = tokio::try_join!(
            write_rows_as(&self.table, &next, &table_rows, &prefix, FileTier::Fresh),
            write_rows_as(&self.table, &next, &sealed, &sealed_prefix, FileTier::Fresh),
        )?;
        deletes.extend(self.index_written(&planned, &written));
        if !taken.is_empty() {
            stats.rows_sealed = taken.sealed_rows().map(RecordBatch::num_rows).sum();
            self.remember_partitions(&sealed.files);
            data_files.extend(sealed.files.iter().cloned());
            tail::relocate(
                &mut self.index,
                &taken,
                &written,
                new_rows.num_rows(),
                &sealed,
            );
            // the tails' rows the batch replaced are simply not written
            // again: the commit removes the tails' files
            deletes.retain(|d| !taken.paths.contains(d.file_path.as_ref()));
            removal = Removal::Files(Arc::new(taken.paths.clone()));
            stats.tail_rows_rewritten = taken.num_rows();
        }
        if let (Some(before), 0) = (resnapshot.reconcile, start) {
            let stale = self.not_read_again(before).await?;
            stats.reconciled = stale.len();
            tracing::info!(table = %table_name, rows = stale.len(), "a snapshot read again has ended: the rows it did not read are deleted");
            deletes.extend(stale);
        } else if let (Some(before), 0) = (incremental_end, start) {
            let stale = self.not_read_again(before).await?;
            stats.reconciled = stale.len();
            tracing::info!(table = %table_name, rows = stale.len(), "an incremental snapshot has ended: the rows it did not read, and no change touched since it was asked for, are deleted");
            deletes.extend(stale);
        }
        stats.rows_written = new_rows.num_rows();
        let mut files = self.write_deletes(deletes, &prefix).await?;
        stats.files_ms = writing.elapsed().as_millis() as u64;
        data_files.extend(written.files.iter().cloned());
        files.data = data_files;
        self.commit(batch, &applied, &fresh, files, removal, new_schema)
            .await?;
        if tails_written && new_rows.num_rows() == 0 {
            // a commit of deletes alone wrote no data file, so every tail
            // is still its partition's newest file: dropping them would
            // make the next commit add a file and delete files to every
            // partition. A tail a delete hit is named by the delete file
            // now, and no commit takes it again (`Tails::take`).
        } else if tails_written && self.merge_policy.tail_rewrites > 0 {
            let metadata = self.table.metadata();
            let at = (
                metadata.current_schema_id(),
                metadata.default_partition_spec_id(),
            );
            // the commit is made: what fails here only loses the tails
            let commit = self.commits;
            if let Err(e) = self
                .tails
                .committed(&table_rows, &written, &taken, at, commit)
            {
                tracing::warn!(table = %table_name, "the next commit adds files: {e}");
                self.tails.clear();
            }
        } else {
            self.tails.clear();
        }
        Ok(stats)
    }

    /// `batch` cut where an incremental snapshot of the table was asked
    /// for, when it holds changes from before and after (see
    /// `incremental`).
    fn split_at_ask(&self, batch: ChangeBatch) -> Vec<ChangeBatch> {
        let ask = match (&self.signals, &batch.source) {
            (Some(log), Some(source)) if self.reconcile_snapshots => log.open_ask(source),
            _ => None,
        };
        match ask.and_then(|ask| incremental::first_after(&batch, ask)) {
            Some(first) if first > 0 => resnapshot::split_at(batch, vec![first]),
            _ => vec![batch],
        }
    }

    /// Follows an incremental snapshot of the table asked for through the
    /// signal table: notes when one is under way (merges wait) and, when
    /// `batch` ends it, the sequence number at or below which rows were
    /// neither read nor changed since (see `incremental`).
    fn follow_incremental(&mut self, batch: &ChangeBatch, fresh: &[bool]) -> Option<i64> {
        self.incremental_open = false;
        if !self.reconcile_snapshots || !matches!(self.keying, Keying::Primary(_)) {
            return None;
        }
        let (Some(log), Some(source)) = (self.signals.clone(), batch.source.clone()) else {
            return None;
        };
        let ask = log.open_ask(&source)?;
        let reads = incremental::read_closes(batch).iter().any(Option::is_some);
        let seen = match self.incremental_seen {
            Some((asked, at)) if asked == ask && !reads => at,
            _ => Instant::now(),
        };
        self.incremental_seen = Some((ask, seen));
        self.incremental_open = seen.elapsed() < incremental::MERGES_WAIT;
        // a batch all from before the ask leaves the history to say later
        // what came before it
        if !matches!(self.incremental, Some((asked, _)) if asked == ask)
            && incremental::first_after(batch, ask).is_none()
        {
            return None;
        }
        let before = match self.incremental {
            Some((asked, before)) if asked == ask => before,
            _ => match incremental::sequence_before(&self.table, &batch.topic, ask) {
                Some(before) => {
                    tracing::info!(table = %self.table.identifier(), asked_at = ?ask, before, "an incremental snapshot of the table is under way: when it ends, the rows it did not read are deleted");
                    self.incremental = Some((ask, before));
                    before
                }
                None => {
                    tracing::warn!(table = %self.table.identifier(), asked_at = ?ask, "an incremental snapshot of the table was asked for, but its history no longer reaches back to then: the snapshot is applied without deleting the rows it does not read");
                    self.incremental_finish = Some((source, ask));
                    return None;
                }
            },
        };
        let last = SourcePositions::of(&self.table)
            .incremental_read(&batch.topic)
            .filter(|close| *close > ask.1);
        incremental::ends(batch, fresh, ask, last, &log).then(|| {
            self.incremental_finish = Some((source, ask));
            before
        })
    }

    /// The rows a snapshot read again did not read: those still in data
    /// files of sequence number `before` or older. They leave the index;
    /// their position deletes are returned.
    async fn not_read_again(&mut self, before: i64) -> Result<Vec<PositionDelete>, LakehouseError> {
        let stale: HashSet<u32> = live_entries(&self.table)
            .await?
            .iter()
            .filter(|e| e.content_type() == DataContentType::Data)
            .filter(|e| e.sequence_number().is_some_and(|s| s <= before))
            .filter_map(|e| self.index.file_id(e.file_path()))
            .collect();
        if stale.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.index.remove_in_files(|file| stale.contains(&file)))
    }

    /// When `batch` truncates the table after changes made later on
    /// another partition were applied (they arrived first): the batch with
    /// those changes read again, and their positions ([`source_order`]).
    async fn reread_overtaken(
        &self,
        batch: &ChangeBatch,
    ) -> Result<Option<(ChangeBatch, HashSet<(i32, i64)>)>, LakehouseError> {
        if self.keying == Keying::Changelog {
            return Ok(None);
        }
        let applied = KafkaOffsets::of(&self.table);
        let truncated = SourcePositions::of(&self.table).truncated(&batch.topic);
        // the last truncate the table has not applied, by its LSN
        let lsns = source_order::Lsns::of(batch);
        let Some(at) = (0..batch.num_rows()).rev().find_map(|i| {
            let (partition, offset) = batch.position(i);
            let lsn = lsns.get(i);
            let new = applied
                .get(&batch.topic, partition)
                .is_none_or(|done| offset > done);
            let truncate = batch.op(i) == Some(Op::Truncate)
                && new
                && !source_order::before_truncate(batch.op(i), lsn, truncated);
            truncate.then_some(lsn)
        }) else {
            return Ok(None);
        };
        let Some(at) = at else {
            return Ok(None);
        };
        let ranges = source_order::overtaking(self.table.metadata(), &batch.topic, at);
        if ranges.is_empty() {
            return Ok(None);
        }
        let table = self.table.identifier().to_string();
        let error = |reason: String, retryable: bool| LakehouseError::Reread {
            table: table.clone(),
            topic: batch.topic.clone(),
            reason,
            retryable,
        };
        let Some(reader) = &self.source else {
            return Err(error(
                "this writer has no source to read them from; give the topic one partition".into(),
                false,
            ));
        };
        tracing::info!(%table, topic = %batch.topic, truncate_lsn = at, ranges = ?ranges, "a truncate arrived after changes made later on other partitions: reading them again to apply after it");
        let reread = reader
            .reread(&batch.topic, &ranges)
            .await
            .map_err(|reason| error(reason, true))?;
        source_order::with_reread(batch, &reread, at, &table).map(Some)
    }

    /// What the batch changes in the table's columns; an incompatible
    /// change is a permanent error.
    fn plan_evolution(
        &self,
        schema: &Schema,
        batch: &ChangeBatch,
    ) -> Result<Evolution, LakehouseError> {
        let keep: &[&str] = match self.keying {
            Keying::Changelog => &[
                append_columns::OP,
                append_columns::PARTITION,
                append_columns::OFFSET,
                append_columns::SOURCE_TS,
            ],
            _ => &[],
        };
        let partition_sources: Vec<i32> = self
            .table
            .metadata()
            .default_partition_spec()
            .fields()
            .iter()
            .map(|f| f.source_id)
            .collect();
        // a changelog does not give old changes a column's default: they
        // happened before the column existed
        let no_defaults = BTreeMap::new();
        let defaults = match self.keying {
            Keying::Changelog => &no_defaults,
            _ => batch.defaults.as_ref(),
        };
        evolve::plan(
            schema,
            &batch.row_fields(),
            defaults,
            keep,
            &partition_sources,
        )
        .map_err(|source| LakehouseError::Schema {
            table: self.table.identifier().to_string(),
            source,
        })
    }
}

/// What a batch writes and under which keys.
struct PlannedRows {
    /// The key of every batch row: its primary key, or for a table without
    /// one, its `after` image whole.
    keys: BatchKeys,
    /// Batch rows whose `after` image is written, in order.
    upserts: Vec<u32>,
    /// Per written row, where its unchanged (TOAST) columns come from.
    previous: Vec<Previous>,
}

/// Where a written row's unchanged (TOAST) columns come from.
#[derive(Debug, Clone)]
enum Previous {
    /// The latest earlier row of its key in the batch that has the column
    /// (batch rows of the key, in offset order), else the table's row for
    /// the key (primary key).
    ByKey(Vec<usize>),
    /// The same event's before-image (whole-row keys: `REPLICA IDENTITY
    /// FULL` sends every column).
    Before,
}

impl TableWriter {
    /// The rows to write and the deletes, by primary key: the final event of
    /// each key after `start` decides.
    fn plan_by_key(
        &mut self,
        batch: &ChangeBatch,
        fresh: &[bool],
        start: usize,
        stats: &mut ApplyStats,
    ) -> Result<(PlannedRows, Vec<PositionDelete>), LakehouseError> {
        // no key column: every row is keyless (a batch of only a truncate)
        let keys = match (batch.key(), &self.keying) {
            (Some(key), Keying::Primary(names)) => {
                let key =
                    key_in_order(key, names).ok_or_else(|| LakehouseError::SchemaMismatch {
                        table: self.table.identifier().to_string(),
                        reason: format!(
                            "the batch's key {:?} lacks a column of {names:?}",
                            batch.key_fields
                        ),
                    })?;
                self.index.batch_keys(&key)?
            }
            _ => BatchKeys::Absent(batch.num_rows()),
        };
        // each key's fresh rows in offset order, keys in order of first sight
        let mut slot_of: HashMap<Key<'_>, usize> = HashMap::new();
        let mut rows_of: Vec<Vec<usize>> = Vec::new();
        for i in (start..batch.num_rows()).filter(|&i| fresh[i]) {
            let Some(key) = keys.get(i) else {
                continue;
            };
            let slot = *slot_of.entry(key).or_insert_with(|| {
                rows_of.push(Vec::new());
                rows_of.len() - 1
            });
            rows_of[slot].push(i);
        }
        drop(slot_of);
        let mut upserts = Vec::new();
        let mut previous = Vec::new();
        let mut deletes = Vec::new();
        for rows in rows_of {
            let Some(&last) = rows.last() else {
                continue;
            };
            let Some(key) = keys.get(last) else {
                continue;
            };
            match batch.op(last) {
                Some(Op::Delete) => match self.index.remove(key) {
                    Some(d) => {
                        deletes.push(d);
                        stats.rows_deleted += 1;
                    }
                    None => stats.absent_deletes += 1,
                },
                Some(Op::Create | Op::Update | Op::Read) => {
                    upserts.push(last as u32);
                    previous.push(Previous::ByKey(rows));
                }
                _ => {}
            }
        }
        Ok((
            PlannedRows {
                keys,
                upserts,
                previous,
            },
            deletes,
        ))
    }

    /// The rows to write and the deletes of a table keyed by whole rows:
    /// each update and delete removes one copy of its before-image, in
    /// event order (a copy inserted earlier in the batch cancels out).
    fn plan_whole_rows(
        &mut self,
        batch: &ChangeBatch,
        fresh: &[bool],
        start: usize,
        schema: &Schema,
        stats: &mut ApplyStats,
    ) -> Result<(PlannedRows, Vec<PositionDelete>), LakehouseError> {
        let name = self.table.identifier().to_string();
        let after_keys = match batch.after() {
            Some(after) => self.whole_row_keys(after, schema, &name)?,
            None => BatchKeys::Absent(batch.num_rows()),
        };
        let before_keys = match batch.before() {
            Some(before) => self.whole_row_keys(before, schema, &name)?,
            None => BatchKeys::Absent(batch.num_rows()),
        };
        // rows still to write (None once cancelled), and by whole-row hash
        let mut upserts: Vec<Option<usize>> = Vec::new();
        let mut pending: HashMap<u128, Vec<usize>> = HashMap::new();
        let mut deletes = Vec::new();
        for i in (start..batch.num_rows()).filter(|&i| fresh[i]) {
            let op = batch.op(i);
            if matches!(op, Some(Op::Update | Op::Delete)) {
                match before_keys.get(i) {
                    Some(Key::Row(hash)) => {
                        if let Some(slot) = pending.get_mut(&hash).and_then(Vec::pop) {
                            upserts[slot] = None;
                        } else if let Some(d) = self.index.remove_copy(Key::Row(hash)) {
                            deletes.push(d);
                            stats.rows_deleted += 1;
                        } else {
                            stats.absent_deletes += 1;
                        }
                    }
                    _ => stats.absent_deletes += 1,
                }
            }
            if matches!(op, Some(Op::Create | Op::Read | Op::Update)) {
                if let Some(Key::Row(hash)) = after_keys.get(i) {
                    pending.entry(hash).or_default().push(upserts.len());
                }
                upserts.push(Some(i));
            }
        }
        if stats.absent_deletes > 0 {
            tracing::warn!(table = %name, unmatched = stats.absent_deletes, "updates or deletes of a table without a primary key matched no row; Debezium needs the source table's REPLICA IDENTITY FULL to say which row changed");
        }
        let upserts: Vec<u32> = upserts.into_iter().flatten().map(|i| i as u32).collect();
        let previous = vec![Previous::Before; upserts.len()];
        Ok((
            PlannedRows {
                keys: after_keys,
                upserts,
                previous,
            },
            deletes,
        ))
    }

    /// Whole-row keys of a row image (`before` or `after`), as the table's
    /// columns in `schema` hold them; a null image has none.
    fn whole_row_keys(
        &self,
        image: &StructArray,
        schema: &Schema,
        table: &str,
    ) -> Result<BatchKeys, LakehouseError> {
        let rows = table_rows(image, schema, table)?;
        let keys = StructArray::try_new(
            rows.schema().fields().clone(),
            rows.columns().to_vec(),
            image.nulls().cloned(),
        )
        .map_err(arrow_error(format!("whole-row keys of {table}")))?;
        self.index.batch_keys(&keys)
    }

    /// The `after` images of the planned rows, unchanged (TOAST) columns
    /// filled in.
    async fn picked_rows(
        &self,
        batch: &ChangeBatch,
        planned: &PlannedRows,
        schema: &Schema,
    ) -> Result<StructArray, LakehouseError> {
        let table_name = self.table.identifier().to_string();
        let after = batch
            .after()
            .ok_or_else(|| LakehouseError::SchemaMismatch {
                table: table_name.clone(),
                reason: "the change batch has no after-image".into(),
            })?;
        let picked =
            arrow_select::take::take(after, &UInt32Array::from(planned.upserts.clone()), None)
                .map_err(arrow_error(format!("rows for {table_name}")))?;
        let picked = picked
            .as_any()
            .downcast_ref::<StructArray>()
            .cloned()
            .ok_or_else(|| LakehouseError::SchemaMismatch {
                table: table_name.clone(),
                reason: "after-image is not a struct".into(),
            })?;
        self.fill_unchanged(batch, &picked, planned, schema).await
    }

    /// Fills the unchanged (TOAST) columns of the picked rows (see
    /// [`Previous`]); a column with no previous value anywhere stays null.
    async fn fill_unchanged(
        &self,
        batch: &ChangeBatch,
        picked: &StructArray,
        planned: &PlannedRows,
        schema: &Schema,
    ) -> Result<StructArray, LakehouseError> {
        let table_name = self.table.identifier().to_string();
        let Some(after) = batch.after() else {
            return Ok(picked.clone());
        };
        let before = batch.before();
        let unchanged: Vec<Vec<String>> = planned
            .upserts
            .iter()
            .map(|&row| batch.unchanged(row as usize))
            .collect();
        if unchanged.iter().all(Vec::is_empty) {
            return Ok(picked.clone());
        }
        let mut columns: Vec<ArrayRef> = picked.columns().to_vec();
        let names: Vec<String> = picked.fields().iter().map(|f| f.name().clone()).collect();
        for (c, name) in names.iter().enumerate() {
            // (output row, batch row) from `after` or `before`, and table places
            let mut from_after: Vec<(usize, usize)> = Vec::new();
            let mut from_before: Vec<(usize, usize)> = Vec::new();
            let mut from_table: Vec<(usize, Arc<str>, u32)> = Vec::new();
            for (out, &row) in planned.upserts.iter().enumerate() {
                let row = row as usize;
                if !unchanged[out].iter().any(|n| n == name) {
                    continue;
                }
                match &planned.previous[out] {
                    Previous::Before => {
                        if before.is_some_and(|b| b.is_valid(row)) {
                            from_before.push((out, row));
                        }
                    }
                    Previous::ByKey(rows) => {
                        let earlier = rows.iter().rev().copied().filter(|&r| r < row).find(|&r| {
                            matches!(batch.op(r), Some(Op::Create | Op::Update | Op::Read))
                                && !batch.unchanged(r).iter().any(|n| n == name)
                        });
                        match earlier {
                            Some(r) => from_after.push((out, r)),
                            None => {
                                let place = planned.keys.get(row).and_then(|k| self.index.get(k));
                                if let Some((file, pos)) = place {
                                    from_table.push((out, file, pos));
                                }
                            }
                        }
                    }
                }
            }
            if from_after.is_empty() && from_before.is_empty() && from_table.is_empty() {
                continue;
            }
            // gather the previous values into one array aligned with the output
            let mut sources: Vec<ArrayRef> = vec![columns[c].clone(), after.column(c).clone()];
            let mut picks: Vec<(usize, usize)> = (0..picked.len()).map(|i| (0, i)).collect();
            for (out, r) in from_after {
                picks[out] = (1, r);
            }
            if let Some(before) = before.filter(|_| !from_before.is_empty()) {
                sources.push(before.column(c).clone());
                for (out, r) in from_before {
                    picks[out] = (2, r);
                }
            }
            let mut by_file: HashMap<Arc<str>, Vec<(usize, u32)>> = HashMap::new();
            for (out, file, pos) in from_table {
                by_file.entry(file).or_default().push((out, pos));
            }
            let id = schema.field_by_name(name).map(|f| f.id);
            for (file, mut wanted) in by_file {
                let Some(id) = id else { break };
                wanted.sort_by_key(|(_, pos)| *pos);
                let positions: Vec<u32> = wanted.iter().map(|(_, p)| *p).collect();
                let read =
                    read_fields(&self.table, &file, schema, Some(&[id]), Some(&positions)).await?;
                let values = arrow_cast::cast(read.column(0), columns[c].data_type())
                    .map_err(arrow_error(format!("previous {name} of {table_name}")))?;
                let source = sources.len();
                sources.push(values);
                for (i, (out, _)) in wanted.iter().enumerate() {
                    picks[*out] = (source, i);
                }
            }
            let refs: Vec<&dyn Array> = sources.iter().map(|a| a.as_ref()).collect();
            columns[c] = arrow_select::interleave::interleave(&refs, &picks)
                .map_err(arrow_error(format!("previous {name} of {table_name}")))?;
        }
        StructArray::try_new(picked.fields().clone(), columns, None)
            .map_err(arrow_error(format!("rows for {table_name}")))
    }

    /// Notes the partitions of data files the writer wrote, which its
    /// deletes of their rows are filed under.
    fn remember_partitions(&mut self, files: &[DataFile]) {
        for f in files {
            self.partitions
                .insert(Arc::from(f.file_path()), f.partition().clone());
        }
    }

    /// Points the index at the rows just written; returns the position
    /// deletes of the rows they replace (primary key).
    fn index_written(
        &mut self,
        planned: &PlannedRows,
        written: &WrittenRows,
    ) -> Vec<PositionDelete> {
        let file_ids: Vec<u32> = written
            .files
            .iter()
            .map(|f| self.index.register_file(f.file_path()))
            .collect();
        self.remember_partitions(&written.files);
        let mut deletes = Vec::new();
        for (&row, (file, pos)) in planned.upserts.iter().zip(&written.locations) {
            let Some(key) = planned.keys.get(row as usize) else {
                continue;
            };
            let loc = RowLocation {
                file: file_ids[*file as usize],
                pos: *pos,
            };
            match self.keying {
                Keying::WholeRow => self.index.insert_copy(key, loc),
                _ => deletes.extend(self.index.upsert(key, loc)),
            }
        }
        deletes
    }

    /// Position-delete files, one per partition of the rows they delete.
    async fn write_deletes(
        &self,
        deletes: Vec<PositionDelete>,
        prefix: &str,
    ) -> Result<Written, LakehouseError> {
        let mut by_partition: HashMap<Struct, Vec<PositionDelete>> = HashMap::new();
        let mut hits: HashMap<Arc<str>, u64> = HashMap::new();
        for d in deletes {
            *hits.entry(d.file_path.clone()).or_default() += 1;
            // filed under another partition, the delete would be one that
            // readers never match to its data file: its rows would be back
            let Some(partition) = self.partitions.get(&d.file_path).cloned() else {
                return Err(LakehouseError::UnknownDataFile {
                    table: self.table.identifier().to_string(),
                    file: d.file_path.to_string(),
                });
            };
            by_partition.entry(partition).or_default().push(d);
        }
        let deletes =
            write_partitioned_deletes(&self.table, by_partition, prefix, FileTier::Fresh).await?;
        Ok(Written {
            data: Vec::new(),
            deletes,
            hits,
        })
    }

    /// Rewrites the table's live rows with the new columns' defaults
    /// (fill.rs) and moves the index to the new files. Returns the rows
    /// rewritten and the new files, for the commit.
    async fn fill(
        &mut self,
        schema: &Arc<Schema>,
        defaults: &[(&str, &ArrayRef)],
    ) -> Result<(u64, Vec<DataFile>), LakehouseError> {
        let started = std::time::Instant::now();
        let prefix = format!("{}-{}", uuid::Uuid::new_v4(), self.commits);
        let whole_rows = self.keying == Keying::WholeRow;
        let mut by_file: Vec<(RecordBatch, u32)> = Vec::new();
        let refilled = fill_defaults(&self.table, schema, defaults, &prefix, |rows, file| {
            if whole_rows {
                by_file.push((rows.clone(), file));
            }
        })
        .await?;
        if whole_rows {
            // whole-row keys include the new column: key every row again
            let (_, types) = self.index_columns(schema)?;
            self.replace_index(PrimaryKeyIndex::whole_rows(&types)?);
            let new_ids: Vec<u32> = refilled
                .files
                .iter()
                .map(|f| self.index.register_file(f.file_path()))
                .collect();
            for (rows, file) in by_file {
                let positions: Vec<u32> = (0..rows.num_rows() as u32).collect();
                self.index_rows(&rows, new_ids[file as usize], &positions)?;
            }
        } else {
            let new_ids: Vec<u32> = refilled
                .files
                .iter()
                .map(|f| self.index.register_file(f.file_path()))
                .collect();
            let moved: HashMap<u32, &Vec<Option<(u32, u32)>>> = refilled
                .moved
                .iter()
                .map(|(path, m)| (self.index.register_file(path), m))
                .collect();
            self.index.relocate(|loc| {
                let (file, pos) = (*moved.get(&loc.file)?).get(loc.pos as usize).copied()??;
                Some(RowLocation {
                    file: new_ids[file as usize],
                    pos,
                })
            });
        }
        self.remember_partitions(&refilled.files);
        let names: Vec<&str> = defaults.iter().map(|(n, _)| *n).collect();
        tracing::info!(table = %self.table.identifier(), columns = ?names, rows = refilled.rows, files = refilled.files.len(), ms = started.elapsed().as_millis() as u64, "filled new columns' defaults into the existing rows");
        Ok((refilled.rows, refilled.files))
    }

    /// Appends every new change of `batch` as a changelog row.
    async fn append(
        &mut self,
        batch: &ChangeBatch,
        applied: &KafkaOffsets,
        fresh: &Fresh,
        mut stats: ApplyStats,
        new_schema: Option<Schema>,
        older: bool,
    ) -> Result<ApplyStats, LakehouseError> {
        let table_name = self.table.identifier().to_string();
        let schema = match &new_schema {
            Some(next) => Arc::new(next.clone()),
            None => self.table.metadata().current_schema().clone(),
        };
        let schema = &schema;
        let rows: Vec<usize> = (0..batch.num_rows()).filter(|&i| fresh[i]).collect();
        let mut changes = changelog_rows(batch, &rows, &table_name)?;
        if older {
            changes = source_order::only_columns_of(changes, schema);
        }
        let rows = table_rows(&changes, schema, &table_name)?;
        self.commits += 1;
        let prefix = format!("{}-{}", uuid::Uuid::new_v4(), self.commits);
        let written = write_rows_as(&self.table, schema, &rows, &prefix, FileTier::Fresh).await?;
        stats.rows_written = rows.num_rows();
        let files = Written {
            data: written.files,
            ..Written::default()
        };
        self.commit(batch, applied, fresh, files, Removal::Nothing, new_schema)
            .await?;
        Ok(stats)
    }

    /// Commits the files (and a new schema) with the batch's offsets (the
    /// ones the table did not hold yet) and the source positions of its
    /// `fresh` rows in one metadata swap.
    async fn commit(
        &mut self,
        batch: &ChangeBatch,
        applied: &KafkaOffsets,
        fresh: &Fresh,
        files: Written,
        remove: Removal,
        schema: Option<Schema>,
    ) -> Result<(), LakehouseError> {
        let removes = !files.deletes.is_empty() || !matches!(remove, Removal::Nothing);
        let removed = remove.clone();
        let mut update = SnapshotUpdate::new(
            SnapshotUpdate::operation_of(!files.data.is_empty(), removes),
            files.data.clone(),
        );
        update.delete_files = files.deletes.clone();
        update.remove = remove;
        let columns_change = schema.is_some();
        update.schema = schema;
        let ranges = batch.offsets.iter().filter_map(|r| {
            let first = match applied.get(&batch.topic, r.partition) {
                Some(done) => r.first.max(done + 1),
                None => r.first,
            };
            (first <= r.last).then_some((r.partition, first, r.last))
        });
        let mut state = StateChange::offsets(&batch.topic, ranges);
        state.positions = source_order::applied(batch, fresh, columns_change);
        for (partition, at) in &fresh.stream {
            state.positions.set_stream(&batch.topic, *partition, *at);
        }
        if let Some(change) = fresh.resnapshot {
            state.positions.set_resnapshot(&batch.topic, change);
        }
        if let Some(lsn) = fresh.snapshot_lsn {
            state.positions.read_snapshot(&batch.topic, lsn);
        }
        if let Some(close) = fresh.incremental_read {
            state.positions.read_incrementally(&batch.topic, close);
            self.incremental_reads_at = Some(Instant::now());
        }
        crate::fault::point("commit.data-written");
        if self.launching {
            // the next batch's tails count on these files; a commit that
            // does not land drops the ledger
            if let Some(ledger) = &mut self.ledger {
                ledger.committed(&files.data, &files.deletes, &files.hits, &removed);
            }
            // made once the commit in flight has landed (see `launch`)
            self.prepared = Some(launch::Prepared { update, state });
            return Ok(());
        }
        // a lost race comes back here at once: the writer catches its
        // index up and plans the batch again (see `apply`)
        let committed = Transaction::new(
            self.catalog.as_ref(),
            &self.pointer,
            self.table.clone(),
            OnThisTable(update),
        )
        .state(state)
        .retry(self.outages_only())
        .commit()
        .await?;
        self.table = committed.table;
        self.since_expiry += 1;
        if let Some(ledger) = &mut self.ledger {
            ledger.committed(&files.data, &files.deletes, &files.hits, &removed);
        }
        Ok(())
    }
}

/// Which rows of a batch to apply, and where each partition's stream
/// stands after it (what the commit records for telling a change sent
/// again from a new one).
struct Fresh {
    rows: Vec<bool>,
    stream: BTreeMap<i32, StreamPosition>,
    /// A snapshot read again starts (`Some(Some(before))`) or ends.
    resnapshot: Option<Option<i64>>,
    /// The LSN of a newer snapshot than the table knew, whose reads the
    /// batch applies.
    snapshot_lsn: Option<i64>,
    /// The window close of the newest incremental chunk the batch reads.
    incremental_read: Option<i64>,
}

impl std::ops::Deref for Fresh {
    type Target = [bool];

    fn deref(&self) -> &[bool] {
        &self.rows
    }
}

/// The files one commit adds: data, position deletes, and the rows the
/// deletes remove from each data file (for the writer's [`FileLedger`]).
#[derive(Default)]
struct Written {
    data: Vec<DataFile>,
    deletes: Vec<DataFile>,
    hits: HashMap<Arc<str>, u64>,
}

/// `batch` in the order it is applied: a row's changes come in order
/// from its partition; across partitions, the source's log says the order.
fn in_source_order(batch: &ChangeBatch) -> Result<ChangeBatch, LakehouseError> {
    batch
        .clone()
        .in_source_order()
        .map_err(|source| LakehouseError::Arrow {
            context: format!("source order of {}", batch.topic),
            source,
        })
}

/// How many snapshots of `table`'s history lead back to `base`, both
/// ends counted; 0 when `base` is not in it.
fn snapshots_since(table: &Table, base: i64) -> usize {
    let metadata = table.metadata();
    let mut cursor = metadata.current_snapshot();
    let mut n = 0;
    while let Some(s) = cursor {
        n += 1;
        if s.snapshot_id() == base {
            return n;
        }
        cursor = s
            .parent_snapshot_id()
            .and_then(|p| metadata.snapshot_by_id(p));
    }
    0
}

/// The primary-key column names of `schema` (its identifier fields), in
/// the schema's column order: Iceberg keeps identifier fields as a set, and
/// a source's key may list its columns in another order, so keys are
/// always encoded in this one.
fn key_names(schema: &Schema) -> Vec<String> {
    key_ids(schema)
        .into_iter()
        .filter_map(|id| schema.name_by_field_id(id).map(str::to_string))
        .collect()
}

/// The identifier field ids of `schema`, in column order.
fn key_ids(schema: &Schema) -> Vec<i32> {
    let identifier: Vec<i32> = schema.identifier_field_ids().collect();
    schema
        .as_struct()
        .fields()
        .iter()
        .map(|f| f.id)
        .filter(|id| identifier.contains(id))
        .collect()
}

/// A batch's `_key` struct with its columns in `names`' order.
fn key_in_order(key: &StructArray, names: &[String]) -> Option<StructArray> {
    let (fields, columns): (Vec<_>, Vec<_>) = names
        .iter()
        .map(|n| {
            let at = key.fields().iter().position(|f| f.name() == n)?;
            Some((key.fields()[at].clone(), key.column(at).clone()))
        })
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .unzip();
    StructArray::try_new(fields.into(), columns, key.nulls().cloned()).ok()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use ingest::{ChangeBatch, ChangeDecoder, Recording};

    use super::*;
    use crate::config::{LakeConfig, MergePolicy, TableConfig};
    use crate::transaction::SqlCatalogPointer;
    use crate::{ensure_table, open_catalog, TableTarget};

    /// The recorded trips: a batch of the first `first` messages, then
    /// the rest (updates and deletes of the first batch's rows among
    /// them), a batch per schema the decoder met.
    async fn two_batches(first: usize) -> Vec<ChangeBatch> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium");
        let rec = Recording::load(&dir).unwrap();
        let mut decoder = ChangeDecoder::new(rec.schemas.clone());
        let mut out = Vec::new();
        let trips = rec
            .messages
            .iter()
            .filter(|m| m.topic == "taxi.public.trips");
        for (n, m) in trips.enumerate() {
            if n == first {
                out.extend(decoder.flush());
            }
            decoder.push(&m.as_raw()).await.unwrap();
        }
        out.extend(decoder.flush());
        out
    }

    async fn writer(config: &LakeConfig, pointer: &str, first: &ChangeBatch) -> TableWriter {
        let catalog = open_catalog(config).await.unwrap();
        let target = TableTarget::for_batch(first, &config.tables).unwrap();
        let table = ensure_table(catalog.as_ref(), &target, first)
            .await
            .unwrap();
        let pointer = SqlCatalogPointer::connect(pointer).await.unwrap();
        TableWriter::open(catalog, table, pointer).await.unwrap()
    }

    #[tokio::test]
    async fn a_delete_of_a_file_whose_partition_is_unknown_is_refused_not_misfiled() {
        let dir = std::env::temp_dir().join(format!("floe-unknown-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = LakeConfig {
            warehouse: dir.clone().into(),
            ..LakeConfig::default()
        };
        // no tails: an update of a row names its file in a delete
        let merge = MergePolicy {
            enabled: false,
            tail_rewrites: 0,
            ..MergePolicy::default()
        };
        config.tables.by_source.insert(
            "public.trips".into(),
            TableConfig {
                partition: vec!["day(pickup_datetime)".into()],
                merge: Some(merge),
                ..Default::default()
            },
        );
        let pointer = format!("sqlite://{}?mode=rwc", dir.join("catalog.db").display());
        let batches = two_batches(4).await;
        assert!(
            batches.len() >= 2,
            "the recording holds more than 4 trips changes"
        );
        let mut w = writer(&config, &pointer, &batches[0]).await;
        w.apply(&batches[0]).await.unwrap();

        // the writer's state at odds with itself: it no longer knows the
        // partitions of the files its index points into
        w.partitions.clear();
        let rest = &batches[1..];
        let mut refused = None;
        for (i, batch) in rest.iter().enumerate() {
            if let Err(e) = w.apply(batch).await {
                refused = Some((i, e));
                break;
            }
        }
        let (at, e) = refused.expect("a later batch deletes rows of the first one's files");
        assert!(
            matches!(e, LakehouseError::UnknownDataFile { .. }),
            "refused as an unknown file, not misfiled: {e}"
        );
        assert!(!e.is_retryable(), "waiting does not fix the writer");
        assert!(e.to_string().contains(".parquet"), "names the file: {e}");
        let again = w.apply(&rest[at]).await;
        assert!(
            matches!(again, Err(LakehouseError::WriterPoisoned { .. })),
            "the writer is not used again: {again:?}"
        );

        // opened again from the table, the writer applies the same changes
        let mut again = writer(&config, &pointer, &batches[0]).await;
        for batch in &rest[at..] {
            again.apply(batch).await.unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
