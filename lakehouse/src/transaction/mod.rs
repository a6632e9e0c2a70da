//! The one way anything reaches the catalog.
//!
//! ```text
//!  an operation (apply, sink, dead letters, compaction, expiry)
//!    │ builds a Transaction: an Action (what the table gets) on the
//!    │ table as loaded, and the floe state the commit records
//!    ▼
//!  Transaction::commit, under one RetryPolicy:
//!    │ action.update(base, lost_to)  → a snapshot (files added and
//!    │                                  removed, its operation, a schema)
//!    │                                  or snapshots removed (expiry),
//!    │                                  or table properties set
//!    │ snapshot::produce             → manifests, list, next metadata,
//!    │                                  floe's state in the summary
//!    │ pointer                       → the catalog's compare-and-swap
//!    ├─ swapped: Committed
//!    ├─ lost the race (or the base's files are gone, expired by a newer
//!    │   table): reload, back off, and ask the action again with what it
//!    │   lost to (it rebases, or says Conflict to be planned again)
//!    ├─ an outage: back off, the same attempt again
//!    └─ anything else: the error, at once
//! ```
//!
//! Shaped like iceberg-rust's `transaction/` (actions that turn a table
//! into updates and declare their snapshot operation, one commit with one
//! retry policy) and delta-rs's `kernel/transaction/` (one pipeline for
//! every operation, streaming idempotency in the commit): when upstream
//! ships row-delta, rewrite and overwrite actions, they can replace floe's
//! one by one. [`state`] holds floe's own durable state.

use std::collections::HashMap;
use std::future::Future;

use iceberg::spec::TableMetadataBuildResult;
use iceberg::table::Table;
use iceberg::{Catalog, TableIdent};
use thiserror::Error;

use crate::error::LakehouseError;

mod manifest_merge;
mod pointer;
mod retry;
mod snapshot;
pub mod state;

pub use manifest_merge::{
    MANIFEST_MERGE_ENABLED, MANIFEST_MIN_COUNT_TO_MERGE, MANIFEST_TARGET_SIZE_BYTES,
};
pub use pointer::{
    CatalogPointer, RestCatalogPointer, SqlCatalogPointer, METADATA_DELETE_AFTER_COMMIT,
    METADATA_PREVIOUS_VERSIONS_MAX,
};
pub use retry::{RetryPolicy, Schedule};
pub use snapshot::{Removal, RetryCache, SnapshotUpdate};
pub use state::{JobLineage, KafkaOffsets, SourcePositions, StateChange, StreamPosition};

/// Why a commit did not happen.
#[derive(Debug, Error)]
pub enum CommitError {
    /// Another writer changed the table since it was read: reload and retry
    /// (the table is unchanged).
    #[error("commit conflict on {table}: its metadata is no longer {expected}; reload and retry")]
    Conflict { table: String, expected: String },
    /// The catalog database has no row for the table (dropped meanwhile,
    /// or floe pointed at another catalog database).
    #[error("the catalog database has no table {0} to commit to: was it dropped, or is this another catalog database?")]
    NotInCatalog(String),
    /// The table has no metadata location to swap from.
    #[error("table {0} has no metadata location")]
    NoMetadataLocation(String),
    /// Writing manifests, the manifest list or metadata failed.
    #[error("writing the commit of {table} failed at {step}: {source}")]
    Write {
        table: String,
        step: &'static str,
        source: Box<iceberg::Error>,
    },
    /// The catalog database could not be reached or refused the update.
    #[error("catalog update for {table} failed: {source}")]
    Catalog { table: String, source: sqlx::Error },
    /// The table already holds Kafka offsets this commit would apply: it
    /// is not committed again (plan it again on the table as it is).
    #[error(
        "{table} already holds offsets of {topic} partition {partition} this commit would apply"
    )]
    AlreadyApplied {
        table: String,
        topic: String,
        partition: i32,
    },
    /// The REST catalog could not be reached or refused the commit.
    #[error("REST catalog commit for {table} failed: {reason}")]
    Rest {
        table: String,
        reason: String,
        /// Not reached, or a server error (5xx); a 4xx refusal is not.
        retryable: bool,
    },
}

impl CommitError {
    /// Whether the commit may succeed if tried again (on a reloaded table
    /// for a conflict).
    pub fn is_retryable(&self) -> bool {
        match self {
            CommitError::Conflict { .. } => true,
            CommitError::NoMetadataLocation(_)
            | CommitError::NotInCatalog(_)
            | CommitError::AlreadyApplied { .. } => false,
            CommitError::Write { source, .. } => crate::error::iceberg_is_retryable(source),
            CommitError::Catalog { source, .. } => crate::error::sqlx_is_retryable(source),
            CommitError::Rest { retryable, .. } => *retryable,
        }
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, CommitError::Conflict { .. })
    }

    /// The table the commit was for.
    pub fn table(&self) -> &str {
        match self {
            CommitError::Conflict { table, .. }
            | CommitError::Write { table, .. }
            | CommitError::Catalog { table, .. }
            | CommitError::AlreadyApplied { table, .. }
            | CommitError::Rest { table, .. } => table,
            CommitError::NotInCatalog(table) | CommitError::NoMetadataLocation(table) => table,
        }
    }
}

impl From<CommitError> for LakehouseError {
    fn from(source: CommitError) -> Self {
        LakehouseError::Commit {
            table: source.table().to_string(),
            source,
        }
    }
}

/// Maps an iceberg error at `step` of writing `table`'s commit.
pub(crate) fn write_error(
    table: &str,
    step: &'static str,
) -> impl FnOnce(iceberg::Error) -> CommitError {
    let table = table.to_string();
    move |source| CommitError::Write {
        table,
        step,
        source: Box::new(source),
    }
}

/// What a transaction does to its table.
#[derive(Debug, Clone)]
pub enum Update {
    /// A new snapshot on the current one.
    Snapshot(Box<SnapshotUpdate>),
    /// Snapshots taken out of the metadata (expiry); no new snapshot.
    RemoveSnapshots(Vec<i64>),
    /// Table properties set (Parquet settings, ...); no new snapshot.
    SetProperties(HashMap<String, String>),
}

/// One kind of write, as the transaction layer runs it.
pub trait Action: Send {
    /// The update to commit on `base`, the table as last loaded. After a
    /// lost race `lost_to` is the table the previous attempt was built on:
    /// the action brings its update up to date with what was committed
    /// since (an append need not; a compaction deletes again the rows a
    /// racing commit deleted), or returns a [`CommitError::Conflict`] for
    /// the caller to plan again.
    fn update(
        &mut self,
        base: &Table,
        lost_to: Option<&Table>,
    ) -> impl Future<Output = Result<Update, LakehouseError>> + Send;
}

/// Files added (and a snapshot's other contents) that stay right on any
/// later table: appends, overwrites (of everything, or of the partitions
/// they write), a new result. They commit on top of whatever won a race.
#[derive(Debug, Clone)]
pub struct Rebasable(pub SnapshotUpdate);

impl Action for Rebasable {
    async fn update(&mut self, _: &Table, _: Option<&Table>) -> Result<Update, LakehouseError> {
        Ok(Update::Snapshot(Box::new(self.0.clone())))
    }
}

/// A snapshot built against one table only: after a lost race the caller
/// plans it again (the CDC row delta, whose deletes name rows by place).
#[derive(Debug, Clone)]
pub struct OnThisTable(pub SnapshotUpdate);

impl Action for OnThisTable {
    async fn update(
        &mut self,
        base: &Table,
        lost_to: Option<&Table>,
    ) -> Result<Update, LakehouseError> {
        match lost_to {
            None => Ok(Update::Snapshot(Box::new(self.0.clone()))),
            Some(_) => Err(LakehouseError::Commit {
                table: base.identifier().to_string(),
                source: CommitError::Conflict {
                    table: base.identifier().to_string(),
                    expected: "the table the update was planned on".into(),
                },
            }),
        }
    }
}

/// Table properties set, whatever else was committed meanwhile: they
/// apply to files written from then on (see [`crate::spec::parquet`]).
#[derive(Debug, Clone)]
pub struct SetProperties(pub HashMap<String, String>);

impl Action for SetProperties {
    async fn update(&mut self, _: &Table, _: Option<&Table>) -> Result<Update, LakehouseError> {
        Ok(Update::SetProperties(self.0.clone()))
    }
}

/// A commit that happened.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The table as committed.
    pub table: Table,
    /// Attempts it took (1: no race lost, no outage).
    pub attempts: u32,
}

/// One write to one table: an action, the state it records, the policy it
/// retries by.
pub struct Transaction<'c, A> {
    catalog: &'c dyn Catalog,
    pointer: &'c CatalogPointer,
    base: Table,
    action: A,
    state: StateChange,
    policy: RetryPolicy,
}

impl<'c, A: Action> Transaction<'c, A> {
    /// A transaction of `action` on `base` (the table as loaded), through
    /// `catalog` (for reloads) and `pointer` (the swap).
    pub fn new(
        catalog: &'c dyn Catalog,
        pointer: &'c CatalogPointer,
        base: Table,
        action: A,
    ) -> Self {
        Self {
            catalog,
            pointer,
            base,
            action,
            state: StateChange::default(),
            policy: RetryPolicy::default(),
        }
    }

    /// The floe state the commit records (offsets applied, a job's
    /// lineage, ...); the state the table carries is kept.
    pub fn state(mut self, change: StateChange) -> Self {
        self.state = change;
        self
    }

    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Commits, retrying as the policy allows.
    pub async fn commit(mut self) -> Result<Committed, LakehouseError> {
        let ident = self.base.identifier().clone();
        let name = ident.to_string();
        let mut schedule = self.policy.schedule();
        let mut cache = RetryCache::default();
        let mut lost_to: Option<Table> = None;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let update = self.action.update(&self.base, lost_to.as_ref()).await?;
            let result = self.attempt(update, &mut cache).await;
            let error = match result {
                Ok(table) => return Ok(Committed { table, attempts }),
                Err(e) => e,
            };
            // a base whose files another writer's expiry deleted cannot be
            // read: the table moved on, and that is a lost race
            let error = match error {
                CommitError::Write { .. } if self.moved_on().await? => CommitError::Conflict {
                    table: name.clone(),
                    expected: format!("{error}"),
                },
                e => e,
            };
            if error.is_conflict() {
                let Some(wait) = schedule.after_conflict() else {
                    return Err(error.into());
                };
                tracing::info!(table = %name, attempt = attempts, wait_ms = wait.as_millis() as u64, "lost a commit race; trying again on the newer table");
                tokio::time::sleep(wait).await;
                let newer = reload(self.catalog, &ident).await?;
                lost_to = Some(std::mem::replace(&mut self.base, newer));
            } else if error.is_retryable() {
                let Some(wait) = schedule.after_outage() else {
                    return Err(error.into());
                };
                tracing::warn!(table = %name, wait_ms = wait.as_millis() as u64, "cannot commit yet: {error}");
                tokio::time::sleep(wait).await;
            } else {
                return Err(error.into());
            }
        }
    }

    /// Whether the catalog's table is no longer the base.
    async fn moved_on(&self) -> Result<bool, LakehouseError> {
        let now = reload(self.catalog, self.base.identifier()).await?;
        Ok(now.metadata_location() != self.base.metadata_location())
    }

    /// One attempt: the update on the current base, swapped in.
    async fn attempt(&self, update: Update, cache: &mut RetryCache) -> Result<Table, CommitError> {
        let metadata = self.base.metadata();
        let name = self.base.identifier().to_string();
        let next: TableMetadataBuildResult = match update {
            Update::Snapshot(mut snapshot) => {
                // streaming idempotency: what the table already holds is
                // never committed again
                let held = KafkaOffsets::of(&self.base);
                for (topic, partition, first, _) in &self.state.ranges {
                    if held
                        .get(topic, *partition)
                        .is_some_and(|done| done >= *first)
                    {
                        return Err(CommitError::AlreadyApplied {
                            table: self.base.identifier().to_string(),
                            topic: topic.clone(),
                            partition: *partition,
                        });
                    }
                }
                snapshot.properties.extend(self.state.properties(metadata));
                snapshot::produce(&self.base, &snapshot, cache).await?
            }
            Update::RemoveSnapshots(ids) => {
                let location = pointer::current_location(&self.base)?;
                metadata
                    .clone()
                    .into_builder(Some(location))
                    .remove_snapshots(&ids)
                    .build()
                    .map_err(write_error(&name, "build metadata"))?
            }
            Update::SetProperties(properties) => {
                let location = pointer::current_location(&self.base)?;
                metadata
                    .clone()
                    .into_builder(Some(location))
                    .set_properties(properties)
                    .and_then(|b| b.build())
                    .map_err(write_error(&name, "set properties"))?
            }
        };
        pointer::commit_metadata(self.pointer, &self.base, next).await
    }
}

/// `ident` as the catalog has it now.
pub(crate) async fn reload(
    catalog: &dyn Catalog,
    ident: &TableIdent,
) -> Result<Table, LakehouseError> {
    catalog
        .load_table(ident)
        .await
        .map_err(|source| LakehouseError::Iceberg {
            operation: "reload table",
            table: ident.to_string(),
            source: Box::new(source),
        })
}
