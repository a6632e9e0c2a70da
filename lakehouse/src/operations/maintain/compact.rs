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
//! between are read. Rows they deleted from rewritten files (position
//! deletes naming them: ingest's deletes and the old side of its updates)
//! are deleted again from the new files — the rewrite knows where each
//! old row went — by position-delete files in the compaction's own
//! snapshot, which also keeps everything they added; their delete files
//! stay (entries naming removed files match nothing). Only when one of them
//! removed a rewritten file (a truncate, an overwrite) is the rewrite
//! thrown away and planned again. A running `floe ingest` loses its next
//! commit race to the compaction, reopens its writer, rebuilds its
//! primary-key index from the new snapshot and applies its batch again, so
//! its index never names a removed file. The transaction carries floe's
//! state (Kafka offsets, job lineage) into the compaction's snapshot, so
//! ingest resumes where it was.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};

use arrow_array::{RecordBatch, StructArray, UInt32Array};
use iceberg::spec::{DataContentType, DataFile, ManifestStatus, Operation, Struct};
use iceberg::table::Table;
use iceberg::TableIdent;

use crate::catalog::Lake;
use crate::error::{iceberg_error, LakehouseError};
use crate::spec::parquet::FileTier;
use crate::spec::position_delete::{write_partitioned_deletes, PositionDelete};
use crate::spec::read::{live_entries, manifest_list, read_columns, read_position_deletes};
use crate::spec::write::{table_rows, write_rows};
use crate::transaction::{
    Action, CommitError, Removal, RetryPolicy, SnapshotUpdate, StateChange, Transaction, Update,
};

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
            max_attempts: 20,
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
    /// Rows that commits racing the compaction deleted from the files it
    /// rewrote, deleted again from the new files.
    pub rows_deleted_again: u64,
    /// Commits tried (1 without a race).
    pub attempts: usize,
    pub snapshot_id: Option<i64>,
}

/// The live files of `table`'s current snapshot, by partition.
pub async fn plan(
    table: &Table,
    policy: &CompactPolicy,
) -> Result<Vec<PartitionPlan>, LakehouseError> {
    let mut by_partition: HashMap<Struct, PartitionPlan> = HashMap::new();
    for entry in live_entries(table).await? {
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
    let mut plans: Vec<PartitionPlan> = by_partition.into_values().collect();
    plans.sort_by(|a, b| a.data_files.first().cmp(&b.data_files.first()));
    Ok(plans)
}

/// Data files of one partition to rewrite as one run of output files.
#[derive(Debug, Clone)]
pub(crate) struct RewriteGroup {
    pub(crate) partition: Struct,
    pub(crate) data_files: Vec<String>,
    /// The position-delete files that may name them (read, and removed).
    pub(crate) delete_files: Vec<String>,
    /// Live data files of the partition left as they are: the deletes
    /// naming them are carried into one new delete file of the partition
    /// (compaction rewrites whole partitions: none).
    pub(crate) kept_files: HashSet<String>,
    /// Rows and bytes of the data files (to size the output files).
    pub(crate) rows: u64,
    pub(crate) data_bytes: u64,
}

impl From<&PartitionPlan> for RewriteGroup {
    fn from(p: &PartitionPlan) -> Self {
        Self {
            partition: p.partition.clone(),
            data_files: p.data_files.clone(),
            delete_files: p.delete_files.clone(),
            kept_files: HashSet::new(),
            rows: p.rows,
            data_bytes: p.data_bytes,
        }
    }
}

/// The rewrite of some files, ready to commit.
pub(crate) struct Rewrite {
    base_snapshot: Option<i64>,
    partitions: Vec<Struct>,
    /// Data and delete files the commit removes.
    pub(crate) removed: Arc<HashSet<String>>,
    /// Each rewritten data file's live rows and where they went.
    pub(crate) moved: HashMap<String, Moved>,
    pub(crate) added: Vec<DataFile>,
    /// Delete files carrying the deletes of files left as they are, and
    /// the rows they name per data file.
    pub(crate) carried: Vec<DataFile>,
    pub(crate) carried_hits: HashMap<Arc<str>, u64>,
    pub(crate) rows: u64,
    /// Bytes of the data files read.
    pub(crate) bytes_read: u64,
}

/// Where the live rows of one rewritten file went.
#[derive(Default)]
pub(crate) struct Moved {
    /// Old positions of the rows kept, ascending.
    pub(crate) kept: Vec<u32>,
    /// For each kept row: (index into `Rewrite::added`, new position).
    pub(crate) to: Vec<(u32, u32)>,
}

impl Moved {
    /// Where the row at old position `pos` went, if kept.
    pub(crate) fn to(&self, pos: u32) -> Option<(u32, u32)> {
        let i = self.kept.binary_search(&pos).ok()?;
        self.to.get(i).copied()
    }
}

/// What the commits after a rewrite's base did to it.
enum Since {
    /// Nothing the rewrite read was touched.
    Untouched,
    /// These rows of rewritten files were deleted (old path, position).
    Deleted(Vec<(String, i64)>),
    /// A rewritten file was removed, or the base is gone: plan again.
    Replan,
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
    for _ in 0..policy.max_attempts.max(1) {
        let table = lake
            .catalog()
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
        let groups = due.iter().map(RewriteGroup::from).collect();
        let rewrite = rewrite(&table, groups, policy.target_file_bytes).await?;
        report.data_files_removed = rewrite.moved.len();
        report.delete_files_removed = rewrite.removed.len() - rewrite.moved.len();
        report.files_added = rewrite.added.len();
        report.bytes_after = rewrite.added.iter().map(DataFile::file_size_in_bytes).sum();
        report.rows_written = rewrite.rows;
        let mut action = Replace::new(rewrite);
        let retry = RetryPolicy {
            conflicts: policy.max_attempts.saturating_sub(1) as u32,
            ..RetryPolicy::default()
        };
        let committed =
            Transaction::new(lake.catalog().as_ref(), lake.pointer(), table, &mut action)
                .state(StateChange::maintenance("compact"))
                .retry(retry)
                .commit()
                .await;
        match committed {
            Ok(committed) => {
                report.attempts += committed.attempts as usize;
                report.rows_deleted_again = action.rows_deleted_again;
                report.snapshot_id = committed.table.metadata().current_snapshot_id();
                return Ok(report);
            }
            Err(LakehouseError::Commit { source, .. }) if source.is_conflict() => {
                report.attempts += 1;
                tracing::info!(table = %ident, "files compacted were removed meanwhile; planning again");
            }
            Err(e) => return Err(e),
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

/// The compaction's commit: the rewrite's files replace the old ones.
/// On a table that moved on from the one the rewrite read (a lost race,
/// or a writer merging beside its own commits) it reads what was committed
/// since: rows deleted from rewritten files are deleted again from the new
/// files; a rewritten file removed means planning again.
pub(crate) struct Replace {
    pub(crate) rewrite: Rewrite,
    /// What each snapshot since the base did, across attempts.
    seen: HashMap<i64, Option<Vec<(String, i64)>>>,
    rows_deleted_again: u64,
    /// The delete files the last attempt wrote for rows deleted again,
    /// and the rows they delete per new file.
    pub(crate) redeleted: Vec<DataFile>,
    pub(crate) redeleted_hits: HashMap<Arc<str>, u64>,
}

impl Replace {
    pub(crate) fn new(rewrite: Rewrite) -> Self {
        Self {
            rewrite,
            seen: HashMap::new(),
            rows_deleted_again: 0,
            redeleted: Vec::new(),
            redeleted_hits: HashMap::new(),
        }
    }
}

impl Action for &mut Replace {
    async fn update(
        &mut self,
        base: &Table,
        lost_to: Option<&Table>,
    ) -> Result<Update, LakehouseError> {
        let mut redeleted = Vec::new();
        self.redeleted_hits.clear();
        let moved_on = base.metadata().current_snapshot_id() != self.rewrite.base_snapshot;
        if lost_to.is_some() || moved_on {
            match since(base, &self.rewrite, &mut self.seen).await? {
                Since::Replan => {
                    return Err(LakehouseError::Commit {
                        table: base.identifier().to_string(),
                        source: CommitError::Conflict {
                            table: base.identifier().to_string(),
                            expected: "a table still holding the files compacted".into(),
                        },
                    })
                }
                Since::Untouched => {}
                Since::Deleted(rows) => {
                    redeleted = delete_again(base, &self.rewrite, &rows).await?;
                    self.redeleted_hits = hits_again(&self.rewrite, &rows);
                    tracing::info!(
                        table = %base.identifier(),
                        "a racing commit deleted {} compacted rows; deleting them from the new files too",
                        rows.len()
                    );
                }
            }
        }
        self.rows_deleted_again = redeleted.iter().map(DataFile::record_count).sum();
        self.redeleted = redeleted.clone();
        // rows deleted again were deleted already: the table's rows stay
        // as they are, which is what `replace` says
        let mut update = SnapshotUpdate::new(Operation::Replace, self.rewrite.added.clone());
        update.delete_files = redeleted;
        update
            .delete_files
            .extend(self.rewrite.carried.iter().cloned());
        update.remove = Removal::Files(self.rewrite.removed.clone());
        Ok(Update::Snapshot(Box::new(update)))
    }
}

/// Groups rewritten at once, and files of one group read ahead: the work
/// is mostly waiting for the object store, one request per file.
const GROUPS_AT_ONCE: usize = 4;
const READS_AHEAD: usize = 4;

/// Reads the live rows of each group's data files and writes them again,
/// in files of about `target_bytes`, a few groups at a time.
pub(crate) async fn rewrite(
    table: &Table,
    groups: Vec<RewriteGroup>,
    target_bytes: u64,
) -> Result<Rewrite, LakehouseError> {
    let name = table.identifier().to_string();
    let started = std::time::Instant::now();
    let mut last_progress = started;
    let total = groups.len();
    let partitions: Vec<Struct> = groups.iter().map(|g| g.partition.clone()).collect();
    let mut done = Rewrite {
        base_snapshot: table.metadata().current_snapshot_id(),
        partitions,
        removed: Arc::new(HashSet::new()),
        moved: HashMap::new(),
        added: Vec::new(),
        carried: Vec::new(),
        carried_hits: HashMap::new(),
        rows: 0,
        bytes_read: 0,
    };
    let mut removed = HashSet::new();
    // collected first: a closure held across the awaits below would make
    // the future not `Send` for every lifetime
    let work: Vec<BoxFuture<'_, Result<GroupRewrite, LakehouseError>>> = groups
        .into_iter()
        .map(|group| rewrite_group(table, group, target_bytes).boxed())
        .collect();
    let mut results = futures::stream::iter(work).buffered(GROUPS_AT_ONCE);
    let mut n = 0;
    while let Some(part) = results.try_next().await? {
        n += 1;
        // the group's file indices follow the files of the groups before it
        let base = done.added.len() as u32;
        for (path, mut m) in part.moved {
            m.to.iter_mut().for_each(|(file, _)| *file += base);
            done.moved.insert(path, m);
        }
        done.added.extend(part.added);
        done.carried.extend(part.carried);
        for (file, hits) in part.carried_hits {
            *done.carried_hits.entry(file).or_default() += hits;
        }
        removed.extend(part.removed);
        done.rows += part.rows;
        done.bytes_read += part.bytes_read;
        // a long rewrite says how far it got every ten seconds
        if last_progress.elapsed() >= std::time::Duration::from_secs(10) {
            last_progress = std::time::Instant::now();
            tracing::info!(
                table = %name,
                "compacting: {n}/{total} partitions rewritten, {:.1} MiB read, {:.0} s so far",
                done.bytes_read as f64 / (1024.0 * 1024.0),
                started.elapsed().as_secs_f64()
            );
        }
    }
    done.removed = Arc::new(removed);
    Ok(done)
}

/// The rewrite of one group; file indices in `moved` count from its own
/// first file.
struct GroupRewrite {
    removed: Vec<String>,
    moved: HashMap<String, Moved>,
    added: Vec<DataFile>,
    carried: Vec<DataFile>,
    carried_hits: HashMap<Arc<str>, u64>,
    rows: u64,
    bytes_read: u64,
}

async fn rewrite_group(
    table: &Table,
    group: RewriteGroup,
    target_bytes: u64,
) -> Result<GroupRewrite, LakehouseError> {
    let name = table.identifier().to_string();
    let schema = table.metadata().current_schema();
    let mut out = GroupRewrite {
        removed: Vec::new(),
        moved: HashMap::new(),
        added: Vec::new(),
        carried: Vec::new(),
        carried_hits: HashMap::new(),
        rows: 0,
        bytes_read: group.data_bytes,
    };
    let mut deleted: HashMap<String, HashSet<i64>> = HashMap::new();
    let rewritten: HashSet<&str> = group.data_files.iter().map(String::as_str).collect();
    let mut carry = Vec::new();
    type DeleteRead<'a> = BoxFuture<'a, Result<Vec<(String, i64)>, LakehouseError>>;
    let delete_reads: Vec<DeleteRead<'_>> = group
        .delete_files
        .iter()
        .map(|path| read_position_deletes(table, path).boxed())
        .collect();
    let mut delete_reads = futures::stream::iter(delete_reads).buffered(READS_AHEAD);
    while let Some(rows) = delete_reads.try_next().await? {
        for (file, pos) in rows {
            if rewritten.contains(file.as_str()) {
                deleted.entry(file).or_default().insert(pos);
            } else if group.kept_files.contains(&file) {
                let file: Arc<str> = Arc::from(file);
                *out.carried_hits.entry(file.clone()).or_default() += 1;
                carry.push(PositionDelete {
                    file_path: file,
                    pos,
                });
            }
        }
    }
    out.removed.extend(group.delete_files.iter().cloned());
    if !carry.is_empty() {
        let prefix = format!("compact-{}", uuid::Uuid::new_v4());
        let written = write_partitioned_deletes(
            table,
            [(group.partition.clone(), carry)],
            &prefix,
            FileTier::Settled,
        )
        .await?;
        out.carried.extend(written);
    }
    // the rows one output file holds, from the group's bytes per row
    let bytes_per_row = group.data_bytes as f64 / group.rows.max(1) as f64;
    let rows_per_file = ((target_bytes as f64 / bytes_per_row.max(1.0)) as usize).max(1);
    // (old file, positions kept, its live rows) waiting for a file
    let mut pending: Vec<(String, Vec<u32>, RecordBatch)> = Vec::new();
    let mut pending_rows = 0usize;
    let count = group.data_files.len();
    type Read<'a> = BoxFuture<'a, Result<(&'a String, RecordBatch), LakehouseError>>;
    let reads: Vec<Read<'_>> = group
        .data_files
        .iter()
        .map(|path| {
            read_columns(table, path, None, None)
                .map(move |batch| batch.map(|batch| (path, batch)))
                .boxed()
        })
        .collect();
    let mut reads = futures::stream::iter(reads).buffered(READS_AHEAD);
    let mut i = 0;
    while let Some((path, batch)) = reads.try_next().await? {
        i += 1;
        let gone = deleted.get(path);
        let keep: Vec<u32> = (0..batch.num_rows() as u32)
            .filter(|p| gone.is_none_or(|g| !g.contains(&(*p as i64))))
            .collect();
        let kept = arrow_select::take::take_record_batch(&batch, &UInt32Array::from(keep.clone()))
            .map_err(|source| LakehouseError::Arrow {
                context: format!("compacting {path}"),
                source,
            })?;
        pending_rows += kept.num_rows();
        let live = table_rows(&StructArray::from(kept), schema, &name)?;
        pending.push((path.clone(), keep, live));
        out.removed.push(path.clone());
        if pending_rows >= rows_per_file || i == count {
            out.rows += pending_rows as u64;
            write_file(
                table,
                &name,
                std::mem::take(&mut pending),
                &mut out.added,
                &mut out.moved,
            )
            .await?;
            pending_rows = 0;
        }
    }
    tracing::debug!(
        table = %name,
        "compacting: a partition's {count} data and {} delete files ({:.1} MiB) into {} files",
        group.delete_files.len(),
        group.data_bytes as f64 / (1024.0 * 1024.0),
        out.added.len(),
    );
    Ok(out)
}

/// Writes the live rows of `pending` (old files of one partition) to new
/// data files appended to `added`, noting in `moved` where each row went.
async fn write_file(
    table: &Table,
    name: &str,
    pending: Vec<(String, Vec<u32>, RecordBatch)>,
    added: &mut Vec<DataFile>,
    moved: &mut HashMap<String, Moved>,
) -> Result<(), LakehouseError> {
    let batches: Vec<&RecordBatch> = pending.iter().map(|(_, _, b)| b).collect();
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let all = arrow_select::concat::concat_batches(&first.schema(), batches.iter().copied())
        .map_err(|source| LakehouseError::Arrow {
            context: format!("compacting {name}"),
            source,
        })?;
    let prefix = format!("compact-{}", uuid::Uuid::new_v4());
    let written = write_rows(table, &all, &prefix).await?;
    let base = added.len() as u32;
    let mut locations = written.locations.into_iter();
    for (path, kept, _) in pending {
        let to = locations
            .by_ref()
            .take(kept.len())
            .map(|(file, pos)| (base + file, pos))
            .collect();
        moved.insert(path, Moved { kept, to });
    }
    added.extend(written.files);
    Ok(())
}

/// Position-delete files, one per partition, deleting from the rewrite's
/// new files the rows `rows` (old file, position) named in the old ones.
async fn delete_again(
    table: &Table,
    rewrite: &Rewrite,
    rows: &[(String, i64)],
) -> Result<Vec<DataFile>, LakehouseError> {
    let mut by_file: BTreeMap<u32, Vec<PositionDelete>> = BTreeMap::new();
    for (old, pos) in rows {
        let Some(m) = rewrite.moved.get(old) else {
            continue;
        };
        // a row the rewrite had already dropped is not in the new files
        let Some((file, new_pos)) = m.to(*pos as u32) else {
            continue;
        };
        by_file.entry(file).or_default().push(PositionDelete {
            file_path: rewrite.added[file as usize].file_path().into(),
            pos: new_pos as i64,
        });
    }
    let mut by_partition: HashMap<Struct, Vec<PositionDelete>> = HashMap::new();
    for (file, deletes) in by_file {
        let partition = rewrite.added[file as usize].partition().clone();
        by_partition.entry(partition).or_default().extend(deletes);
    }
    let prefix = format!("compact-{}", uuid::Uuid::new_v4());
    write_partitioned_deletes(table, by_partition, &prefix, FileTier::Settled).await
}

/// The rows [`delete_again`] deletes from each new file.
fn hits_again(rewrite: &Rewrite, rows: &[(String, i64)]) -> HashMap<Arc<str>, u64> {
    let mut hits: HashMap<Arc<str>, u64> = HashMap::new();
    for (old, pos) in rows {
        let Some((file, _)) = rewrite.moved.get(old).and_then(|m| m.to(*pos as u32)) else {
            continue;
        };
        if let Some(added) = rewrite.added.get(file as usize) {
            *hits.entry(Arc::from(added.file_path())).or_default() += 1;
        }
    }
    hits
}

/// What the commits after the rewrite's base did to what it read: every
/// row of a rewritten file they deleted, or a rewritten file they removed.
/// `seen` keeps what each snapshot did across attempts, so that a retry
/// reads only the commits that are new to it.
async fn since(
    table: &Table,
    rewrite: &Rewrite,
    seen: &mut HashMap<i64, Option<Vec<(String, i64)>>>,
) -> Result<Since, LakehouseError> {
    let metadata = table.metadata();
    let partitions: HashSet<&Struct> = rewrite.partitions.iter().collect();
    let mut cursor = metadata.current_snapshot().cloned();
    let mut deleted = Vec::new();
    while let Some(snapshot) = cursor {
        if Some(snapshot.snapshot_id()) == rewrite.base_snapshot {
            return Ok(if deleted.is_empty() {
                Since::Untouched
            } else {
                Since::Deleted(deleted)
            });
        }
        let id = snapshot.snapshot_id();
        if let std::collections::hash_map::Entry::Vacant(slot) = seen.entry(id) {
            slot.insert(snapshot_deletes(table, &snapshot, rewrite, &partitions).await?);
        }
        match &seen[&id] {
            None => return Ok(Since::Replan),
            Some(rows) => deleted.extend(rows.iter().cloned()),
        }
        cursor = snapshot
            .parent_snapshot_id()
            .and_then(|p| metadata.snapshot_by_id(p).cloned());
    }
    // the base is no longer an ancestor (expired): assume the worst
    Ok(Since::Replan)
}

/// The rows of rewritten files `snapshot` deleted, or `None` when it
/// removed a rewritten file.
async fn snapshot_deletes(
    table: &Table,
    snapshot: &iceberg::spec::SnapshotRef,
    rewrite: &Rewrite,
    partitions: &HashSet<&Struct>,
) -> Result<Option<Vec<(String, i64)>>, LakehouseError> {
    let name = table.identifier().clone();
    let id = snapshot.snapshot_id();
    let mut deleted = Vec::new();
    let list = manifest_list(table, snapshot).await?;
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
                (ManifestStatus::Deleted, _) if rewrite.removed.contains(path) => return Ok(None),
                (ManifestStatus::Added, DataContentType::PositionDeletes)
                    if partitions.contains(entry.data_file().partition()) =>
                {
                    deleted.extend(
                        read_position_deletes(table, path)
                            .await?
                            .into_iter()
                            .filter(|(f, _)| rewrite.moved.contains_key(f)),
                    );
                }
                _ => {}
            }
        }
    }
    Ok(Some(deleted))
}
