//! Compaction: the data files of a partition whose small files or deleted
//! rows pass the policy's thresholds are rewritten, live rows only, into
//! files near the target size, and the snapshot that adds the new files
//! removes the old data files and the position-delete files of that
//! partition (position deletes only ever name data files of their own
//! partition). A partition is read one target file's worth at a time, so
//! memory stays near the target size, not the partition's.
//!
//! Racing ingest: the rewrite is planned on one snapshot and committed by
//! compare-and-swap. When another writer committed first, the commits in
//! between are checked: if none of them deleted a rewritten row (a new
//! position delete naming a rewritten file) or removed a rewritten file (a
//! truncate), the same replacement is committed on top of them, keeping
//! what they added; otherwise the rewrite is thrown away and planned again.
//! A running `floe ingest` loses its next commit race to the compaction,
//! reopens its writer, rebuilds its primary-key index from the new
//! snapshot and applies its batch again, so its index never names a
//! removed file. The Kafka offsets of the snapshot compacted are carried
//! into the compaction's snapshot, so ingest resumes where it was.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow_array::{RecordBatch, StructArray, UInt32Array};
use iceberg::spec::{DataContentType, DataFile, ManifestStatus, Struct};
use iceberg::table::Table;
use iceberg::TableIdent;

use crate::apply::OFFSET_PROPERTY_PREFIX;
use crate::catalog::Lake;
use crate::commit::{commit_row_delta, CommitError, Removal, RowDelta};
use crate::error::LakehouseError;
use crate::read::{manifest_list, read_columns, read_position_deletes};
use crate::sink::iceberg_error;
use crate::write::{table_rows, write_rows};

/// When a partition is worth rewriting.
#[derive(Debug, Clone)]
pub struct CompactPolicy {
    /// A data file smaller than this is small.
    pub small_file_bytes: u64,
    /// Rewrite a partition with at least this many small data files ...
    pub min_small_files: usize,
    /// ... or whose position deletes remove at least this share of its rows.
    pub max_deleted_ratio: f64,
    /// The size rewritten files aim at (estimated from the partition's
    /// bytes per row).
    pub target_file_bytes: u64,
    /// Conflicting commits survived before giving up.
    pub max_attempts: usize,
}

impl Default for CompactPolicy {
    fn default() -> Self {
        Self {
            small_file_bytes: 32 * 1024 * 1024,
            min_small_files: 4,
            max_deleted_ratio: 0.2,
            target_file_bytes: 128 * 1024 * 1024,
            max_attempts: 5,
        }
    }
}

/// One partition's files as a snapshot holds them.
#[derive(Debug, Clone)]
pub struct PartitionPlan {
    pub partition: Struct,
    pub data_files: Vec<String>,
    pub delete_files: Vec<String>,
    pub small_files: usize,
    pub rows: u64,
    pub deleted_rows: u64,
    /// Data and delete files together.
    pub bytes: u64,
    /// Data files only.
    pub data_bytes: u64,
}

impl PartitionPlan {
    fn deleted_ratio(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.deleted_rows as f64 / self.rows as f64
        }
    }

    fn due(&self, policy: &CompactPolicy) -> bool {
        (self.small_files >= policy.min_small_files && self.data_files.len() > 1)
            || (!self.delete_files.is_empty() && self.deleted_ratio() >= policy.max_deleted_ratio)
    }
}

/// What a compaction did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct CompactReport {
    /// The partitions rewritten.
    pub partitions: Vec<PartitionPlan>,
    pub data_files_removed: usize,
    pub delete_files_removed: usize,
    pub files_added: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub rows_written: u64,
    /// Commits tried (1 without a race).
    pub attempts: usize,
    pub snapshot_id: Option<i64>,
}

/// The live files of `table`'s current snapshot, by partition.
pub async fn plan(
    table: &Table,
    policy: &CompactPolicy,
) -> Result<Vec<PartitionPlan>, LakehouseError> {
    let Some(snapshot) = table.metadata().current_snapshot() else {
        return Ok(Vec::new());
    };
    let name = table.identifier().clone();
    let list = manifest_list(table, snapshot).await?;
    let mut by_partition: HashMap<Struct, PartitionPlan> = HashMap::new();
    for manifest in list.entries() {
        let loaded = manifest
            .load_manifest(table.file_io())
            .await
            .map_err(iceberg_error("read manifest", &name))?;
        for entry in loaded.entries().iter().filter(|e| e.is_alive()) {
            let file = entry.data_file();
            let plan = by_partition
                .entry(file.partition().clone())
                .or_insert_with(|| PartitionPlan {
                    partition: file.partition().clone(),
                    data_files: Vec::new(),
                    delete_files: Vec::new(),
                    small_files: 0,
                    rows: 0,
                    deleted_rows: 0,
                    bytes: 0,
                    data_bytes: 0,
                });
            plan.bytes += file.file_size_in_bytes();
            match entry.content_type() {
                DataContentType::Data => {
                    plan.data_files.push(file.file_path().to_string());
                    plan.rows += file.record_count();
                    plan.data_bytes += file.file_size_in_bytes();
                    if file.file_size_in_bytes() < policy.small_file_bytes {
                        plan.small_files += 1;
                    }
                }
                _ => {
                    plan.delete_files.push(file.file_path().to_string());
                    plan.deleted_rows += file.record_count();
                }
            }
        }
    }
    let mut plans: Vec<PartitionPlan> = by_partition.into_values().collect();
    plans.sort_by(|a, b| a.data_files.first().cmp(&b.data_files.first()));
    Ok(plans)
}

/// The rewrite of some partitions, ready to commit.
struct Rewrite {
    base_snapshot: Option<i64>,
    partitions: Vec<PartitionPlan>,
    removed: Arc<HashSet<String>>,
    rewritten_data: HashSet<String>,
    added: Vec<DataFile>,
    rows: u64,
}

/// Compacts the partitions of `ident` the policy says are due; with
/// `dry_run`, only reports them.
pub async fn compact(
    lake: &Lake,
    ident: &TableIdent,
    policy: &CompactPolicy,
    dry_run: bool,
) -> Result<CompactReport, LakehouseError> {
    let mut report = CompactReport::default();
    'replan: for _ in 0..policy.max_attempts {
        let mut table = lake
            .catalog
            .load_table(ident)
            .await
            .map_err(iceberg_error("load table", ident))?;
        let due: Vec<PartitionPlan> = plan(&table, policy)
            .await?
            .into_iter()
            .filter(|p| p.due(policy))
            .collect();
        report.partitions = due.clone();
        report.bytes_before = due.iter().map(|p| p.bytes).sum();
        if dry_run || due.is_empty() {
            return Ok(report);
        }
        let rewrite = rewrite(&table, due, policy.target_file_bytes).await?;
        report.data_files_removed = rewrite.rewritten_data.len();
        report.delete_files_removed = rewrite.removed.len() - rewrite.rewritten_data.len();
        report.files_added = rewrite.added.len();
        report.bytes_after = rewrite.added.iter().map(DataFile::file_size_in_bytes).sum();
        report.rows_written = rewrite.rows;
        loop {
            report.attempts += 1;
            let delta = RowDelta {
                data_files: rewrite.added.clone(),
                delete_files: Vec::new(),
                properties: carried_properties(&table),
                remove: Removal::Files(rewrite.removed.clone()),
            };
            match commit_row_delta(&lake.pointer, &table, delta).await {
                Ok(committed) => {
                    report.snapshot_id = committed.metadata().current_snapshot_id();
                    return Ok(report);
                }
                Err(CommitError::Conflict { .. }) if report.attempts < policy.max_attempts => {
                    table = lake
                        .catalog
                        .load_table(ident)
                        .await
                        .map_err(iceberg_error("reload table", ident))?;
                    if touched_since(&table, &rewrite).await? {
                        tracing::info!(table = %ident, "rows compacted were changed meanwhile; planning again");
                        continue 'replan;
                    }
                    tracing::info!(table = %ident, "lost a commit race; committing on top of it");
                }
                Err(source) => {
                    return Err(LakehouseError::Commit {
                        table: ident.to_string(),
                        source,
                    })
                }
            }
        }
    }
    Err(LakehouseError::Commit {
        table: ident.to_string(),
        source: CommitError::Conflict {
            table: ident.to_string(),
            expected: format!(
                "a table whose compacted rows stay unchanged for {} attempts",
                policy.max_attempts
            ),
        },
    })
}

/// The snapshot summary properties the compaction carries over: the
/// Kafka offsets ingest resumes from.
fn carried_properties(table: &Table) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = table
        .metadata()
        .current_snapshot()
        .map(|s| {
            s.summary()
                .additional_properties
                .iter()
                .filter(|(k, _)| k.starts_with(OFFSET_PROPERTY_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    out.insert("floe.maintenance".into(), "compact".into());
    out
}

/// Reads the live rows of `partitions` and writes them again, in files
/// of about `target_bytes`.
async fn rewrite(
    table: &Table,
    partitions: Vec<PartitionPlan>,
    target_bytes: u64,
) -> Result<Rewrite, LakehouseError> {
    let name = table.identifier().to_string();
    let schema = table.metadata().current_schema();
    let mut removed = HashSet::new();
    let mut rewritten_data = HashSet::new();
    let mut added = Vec::new();
    let mut rows = 0u64;
    let started = std::time::Instant::now();
    let mut last_progress = started;
    let total = partitions.len();
    for (n, partition) in partitions.iter().enumerate() {
        let mut deleted: HashMap<String, HashSet<i64>> = HashMap::new();
        for path in &partition.delete_files {
            for (file, pos) in read_position_deletes(table, path).await? {
                deleted.entry(file).or_default().insert(pos);
            }
            removed.insert(path.clone());
        }
        // the rows one output file holds, from the partition's bytes per row
        let bytes_per_row = partition.data_bytes as f64 / partition.rows.max(1) as f64;
        let rows_per_file = ((target_bytes as f64 / bytes_per_row.max(1.0)) as usize).max(1);
        let mut pending: Vec<RecordBatch> = Vec::new();
        let mut pending_rows = 0usize;
        let first_new = added.len();
        for (i, path) in partition.data_files.iter().enumerate() {
            let batch = read_columns(table, path, None, None).await?;
            let gone = deleted.get(path);
            let keep: Vec<u32> = (0..batch.num_rows() as u32)
                .filter(|p| gone.is_none_or(|g| !g.contains(&(*p as i64))))
                .collect();
            let kept = arrow_select::take::take_record_batch(&batch, &UInt32Array::from(keep))
                .map_err(|source| LakehouseError::Arrow {
                    context: format!("compacting {path}"),
                    source,
                })?;
            pending_rows += kept.num_rows();
            pending.push(table_rows(&StructArray::from(kept), schema, &name)?);
            removed.insert(path.clone());
            rewritten_data.insert(path.clone());
            let last = i + 1 == partition.data_files.len();
            if pending_rows >= rows_per_file || (last && pending_rows > 0) {
                rows += pending_rows as u64;
                added.extend(write_file(table, &name, &std::mem::take(&mut pending)).await?);
                pending_rows = 0;
            }
        }
        let written = added.len() - first_new;
        tracing::debug!(
            table = %name,
            "compacting: partition {}/{total} ({} data and {} delete files, {:.1} MiB) into {written} files",
            n + 1,
            partition.data_files.len(),
            partition.delete_files.len(),
            partition.bytes as f64 / (1024.0 * 1024.0),
        );
        // a long rewrite says how far it got every ten seconds
        if last_progress.elapsed() >= std::time::Duration::from_secs(10) {
            last_progress = std::time::Instant::now();
            tracing::info!(
                table = %name,
                "compacting: {}/{total} partitions rewritten, {:.1} MiB read, {:.0} s so far",
                n + 1,
                partitions[..=n].iter().map(|p| p.bytes).sum::<u64>() as f64 / (1024.0 * 1024.0),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(Rewrite {
        base_snapshot: table.metadata().current_snapshot_id(),
        partitions,
        removed: Arc::new(removed),
        rewritten_data,
        added,
        rows,
    })
}

/// One new data file of `batches` (rows of one partition).
async fn write_file(
    table: &Table,
    name: &str,
    batches: &[RecordBatch],
) -> Result<Vec<DataFile>, LakehouseError> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let all = arrow_select::concat::concat_batches(&first.schema(), batches).map_err(|source| {
        LakehouseError::Arrow {
            context: format!("compacting {name}"),
            source,
        }
    })?;
    let prefix = format!("compact-{}", uuid::Uuid::new_v4());
    Ok(write_rows(table, &all, &prefix).await?.files)
}

/// Whether a commit after the rewrite's base deleted one of its rows or
/// removed one of its files.
async fn touched_since(table: &Table, rewrite: &Rewrite) -> Result<bool, LakehouseError> {
    let name = table.identifier().clone();
    let metadata = table.metadata();
    let partitions: HashSet<&Struct> = rewrite.partitions.iter().map(|p| &p.partition).collect();
    let mut cursor = metadata.current_snapshot().cloned();
    let mut checked: BTreeMap<String, bool> = BTreeMap::new();
    while let Some(snapshot) = cursor {
        if Some(snapshot.snapshot_id()) == rewrite.base_snapshot {
            return Ok(false);
        }
        let id = snapshot.snapshot_id();
        let list = manifest_list(table, &snapshot).await?;
        for manifest in list.entries().iter().filter(|m| m.added_snapshot_id == id) {
            let loaded = manifest
                .load_manifest(table.file_io())
                .await
                .map_err(iceberg_error("read manifest", &name))?;
            for entry in loaded
                .entries()
                .iter()
                .filter(|e| e.snapshot_id() == Some(id))
            {
                let path = entry.file_path();
                match (entry.status(), entry.content_type()) {
                    (ManifestStatus::Deleted, _) if rewrite.removed.contains(path) => {
                        return Ok(true)
                    }
                    (ManifestStatus::Added, DataContentType::PositionDeletes)
                        if partitions.contains(entry.data_file().partition()) =>
                    {
                        if !checked.contains_key(path) {
                            let hits = read_position_deletes(table, path)
                                .await?
                                .iter()
                                .any(|(f, _)| rewrite.rewritten_data.contains(f));
                            checked.insert(path.to_string(), hits);
                        }
                        if checked[path] {
                            return Ok(true);
                        }
                    }
                    _ => {}
                }
            }
        }
        cursor = snapshot
            .parent_snapshot_id()
            .and_then(|p| metadata.snapshot_by_id(p).cloned());
    }
    // the base is no longer an ancestor (expired): assume the worst
    Ok(true)
}
