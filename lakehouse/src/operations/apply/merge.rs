//! Merging inside ingest: between commits, the writer rewrites a
//! partition's small data files (with the rows its position deletes
//! remove dropped) into larger ones, so a table committed every second
//! stays a table readers scan at close to compacted speed, with nothing
//! else running.
//!
//! ```text
//!  files in tiers by rows, powers of `fanout` (fanout 4: 1-3 rows,
//!  4-15, 16-63, ...); files of `target_file_bytes` and more are full
//!
//!  per partition, in order:
//!   a tier holds `fanout` files   → merge it with the tiers below it
//!   over 2/3 of `max_files` small → merge the smallest ones, down to
//!   files                           1/3 of `max_files`
//!   a file's deleted share above  → rewrite it (with its tier's files)
//!   `max_deleted_share`
//!
//!  after each commit round: a partition over `max_files` small files
//!  waits for the merge under way, and for more rounds, until within it
//!
//!  a partition's tail (`super::tail`) is never merged, but counts:
//!  readers open it like any other file
//! ```
//!
//! A round in the background is paced to `cpu_share` of one core
//! (`cpu_budget`), so the commits keep the cores; a round the commits
//! wait for runs unpaced.
//!
//! `max_files` is a bound readers can count on after every commit round,
//! not only after merges: a merge runs beside the commits (several of
//! them at 200 ms commits), so it starts at two thirds of the bound and
//! leaves headroom for the files those commits add; the commits wait only
//! when merging falls behind them.
//!
//! Like an LSM tree's size tiers, a row is rewritten about once per tier
//! (log_fanout of the rows of a full file, times), not once per merge.
//! Tiers count rows, not bytes: a merged file is compressed better than
//! the small files it came from (and sheds their per-file overhead), so
//! by bytes it could stay in their tier and be rewritten again and again. The merge is a
//! `replace` through the transaction layer; the writer moves its own index
//! entries to the new files (it owns the index, so it never races its own
//! commits). A merge that loses to another writer (a `floe maintain`
//! compaction, another instance) is dropped: the writer's next commit loses
//! the same race and catches its index up, and the merge is planned again
//! from the table as it then is. A crash before the merge's swap leaves
//! only unreferenced files; after it, a finished merge.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use iceberg::spec::Struct;

use super::cpu_budget::{BudgetHandle, Budgeted};
use super::ledger::{FileLedger, LiveFile};
use super::TableWriter;
use crate::config::MergePolicy;
use crate::error::LakehouseError;
use crate::index::pk_index::RowLocation;
use crate::operations::maintain::compact::{rewrite, Replace, Rewrite, RewriteGroup};
use crate::transaction::{Removal, SourcePositions, StateChange, Transaction};

impl MergePolicy {
    /// The size tier of a file of `records` rows: floor(log_fanout).
    pub fn tier(&self, records: u64) -> u32 {
        let fanout = self.fanout.max(2) as u64;
        let mut bound = fanout;
        let mut tier = 0;
        while records >= bound && tier < 64 {
            bound = bound.saturating_mul(fanout);
            tier += 1;
        }
        tier
    }

    /// Small files a partition may hold before a merge starts in the
    /// background: two thirds of the bound.
    pub fn merge_at(&self) -> usize {
        (self.max_files * 2 / 3).max(2)
    }

    /// Small files a merge started over [`Self::merge_at`] leaves: a third
    /// of the bound, so the next one is several commits away.
    fn merge_down_to(&self) -> usize {
        (self.max_files / 3).max(1)
    }
}

/// The data files of one partition a merge rewrites together.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MergeGroup {
    pub(crate) partition: Struct,
    pub(crate) files: Vec<Arc<str>>,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
}

/// A merge round whose files are being written beside the writer's
/// commits; dropped (with its writer), the writing stops and the files
/// written are orphans.
pub(crate) struct MergeInFlight {
    /// The snapshot the merge was planned on: its commit reads the
    /// snapshots since (see `compact::since`), so expiry keeps them.
    pub(crate) base_snapshot: Option<i64>,
    partitions: usize,
    started: Instant,
    budget: BudgetHandle,
    task: Option<tokio::task::JoinHandle<Result<Rewrite, LakehouseError>>>,
}

impl MergeInFlight {
    /// Whether its files are written (or writing them failed).
    fn written(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for MergeInFlight {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What one merge round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Partitions merged.
    pub partitions: usize,
    pub data_files_removed: usize,
    pub delete_files_removed: usize,
    /// Delete files carrying the deletes of files left as they are.
    pub delete_files_added: usize,
    pub files_added: usize,
    pub rows_written: u64,
    /// Bytes of the data files rewritten.
    pub bytes_rewritten: u64,
    /// The merge was dropped: another writer committed first.
    pub lost_race: bool,
    /// The commit round waited for merges: a partition was past the bound.
    pub waited: bool,
    /// From planning to the commit (the files written in the background).
    pub took: std::time::Duration,
    /// CPU the rewrite took, on the threads that polled it.
    pub cpu: std::time::Duration,
    /// Time the rewrite was paused to keep within `cpu_share`.
    pub paused: std::time::Duration,
}

impl MergeReport {
    /// Adds what another round did.
    fn add(&mut self, other: MergeReport) {
        self.partitions += other.partitions;
        self.data_files_removed += other.data_files_removed;
        self.delete_files_removed += other.delete_files_removed;
        self.delete_files_added += other.delete_files_added;
        self.files_added += other.files_added;
        self.rows_written += other.rows_written;
        self.bytes_rewritten += other.bytes_rewritten;
        self.lost_race |= other.lost_race;
        self.waited |= other.waited;
        self.took += other.took;
        self.cpu += other.cpu;
        self.paused += other.paused;
    }
}

/// The merges `ledger` is due for under `policy`, most urgent first,
/// within the round's row budget (at least one). Files in `tails` are
/// left alone (the next commit into their partition writes them again),
/// but count toward the bound: readers open them too.
pub(crate) fn plan(
    ledger: &FileLedger,
    policy: &MergePolicy,
    tails: &HashSet<Arc<str>>,
) -> Vec<MergeGroup> {
    let mut due: Vec<(usize, MergeGroup)> = Vec::new();
    for (partition, files) in ledger.by_partition() {
        if ledger.has_equality_deletes(partition) {
            continue;
        }
        let all = files.len();
        let files: Vec<_> = files
            .into_iter()
            .filter(|(path, _)| !tails.contains(*path))
            .collect();
        let held = all - files.len();
        let small = files
            .iter()
            .filter(|(_, f)| f.bytes < policy.target_file_bytes)
            .count();
        let picked = pick(files, policy, held);
        if picked.is_empty() {
            continue;
        }
        let group = MergeGroup {
            partition: partition.clone(),
            rows: picked.iter().map(|(_, f)| f.records).sum(),
            bytes: picked.iter().map(|(_, f)| f.bytes).sum(),
            files: picked.into_iter().map(|(p, _)| p.clone()).collect(),
        };
        due.push((small, group));
    }
    // the partitions furthest over their bound first; ties by path, so a
    // plan is the same for the same files
    due.sort_by(|(a, x), (b, y)| b.cmp(a).then_with(|| x.files.cmp(&y.files)));
    let mut budget = policy.max_rows_per_round;
    let mut groups = Vec::new();
    for (_, group) in due {
        if !groups.is_empty() && group.rows > budget {
            continue;
        }
        budget = budget.saturating_sub(group.rows);
        groups.push(group);
    }
    groups
}

/// Whether a partition merging can shrink holds more small files than
/// the bound.
fn past_the_bound(ledger: &FileLedger, policy: &MergePolicy) -> bool {
    ledger.by_partition().iter().any(|(partition, files)| {
        files
            .iter()
            .filter(|(_, f)| f.bytes < policy.target_file_bytes)
            .count()
            > policy.max_files
            && !ledger.has_equality_deletes(partition)
    })
}

/// Merge rounds a commit round waits for at most to get back within the
/// bound (each takes the partitions furthest over it first).
const ROUNDS_TO_THE_BOUND: usize = 8;

/// The files of one partition to rewrite together, smallest first; none
/// when the partition is within its bounds. `held` small files of the
/// partition are not the merge's to take (tails) but count toward them.
fn pick<'a>(
    mut files: Vec<(&'a Arc<str>, &'a LiveFile)>,
    policy: &MergePolicy,
    held: usize,
) -> Vec<(&'a Arc<str>, &'a LiveFile)> {
    files.sort_by(|(p, a), (q, b)| a.bytes.cmp(&b.bytes).then_with(|| p.cmp(q)));
    let small: Vec<_> = files
        .iter()
        .copied()
        .filter(|(_, f)| f.bytes < policy.target_file_bytes)
        .collect();
    let mut picked: Vec<(&Arc<str>, &LiveFile)> = Vec::new();
    // a tier with `fanout` files merges, with every tier below it
    let mut per_tier: HashMap<u32, usize> = HashMap::new();
    for (_, f) in &small {
        *per_tier.entry(policy.tier(f.records)).or_default() += 1;
    }
    let full_tier = per_tier
        .iter()
        .filter(|(_, n)| **n >= policy.fanout.max(2))
        .map(|(t, _)| *t)
        .min();
    if let Some(top) = full_tier {
        picked.extend(
            small
                .iter()
                .copied()
                .filter(|(_, f)| policy.tier(f.records) <= top),
        );
    }
    // nearing the bound: the smallest files, enough to get well within it
    let keep = policy.merge_down_to();
    let open = small.len() + held;
    if open > policy.merge_at() {
        let take = (open - keep + 1).min(small.len());
        if picked.len() < take {
            picked = small[..take].to_vec();
        }
    }
    // files whose deletes pass the share, full ones included
    for (path, f) in &files {
        if f.deleted_share() >= policy.max_deleted_share && !picked.iter().any(|(p, _)| p == path) {
            picked.push((path, f));
        }
    }
    // one small file alone gains nothing, unless it sheds deleted rows
    if picked.len() == 1 && picked[0].1.deleted == 0 {
        picked.clear();
    }
    picked
}

impl TableWriter {
    /// How this writer merges its table's files (default:
    /// [`MergePolicy::default`]).
    pub fn with_merge_policy(mut self, policy: MergePolicy) -> Self {
        self.merge_policy = policy;
        self
    }

    /// Runs one merge round on the table, if any partition is past its
    /// bounds, and waits for it: planned, written and committed. Call
    /// between commits; a lost race or an outage leaves the table and the
    /// writer as they were (the writer follows on its next commit). A
    /// round already under way ([`Self::merge_beside`]) is finished first,
    /// and the report covers both. Nothing with a commit in flight (land
    /// it first).
    pub async fn merge(&mut self) -> Result<MergeReport, LakehouseError> {
        let mut report = MergeReport::default();
        if self.in_flight() {
            // merges commit on the table as it is: after the commit in
            // flight has landed (`land`)
            return Ok(report);
        }
        if let Some(flight) = self.merging.take() {
            // waited for: no longer paced
            flight.budget.make_urgent();
            report = self.finish_merge(flight).await?;
        }
        if let Some(flight) = self.start_merge(true).await? {
            report.add(self.finish_merge(flight).await?);
        }
        Ok(report)
    }

    /// Merging beside the writer's commits, as `floe ingest` does: call
    /// after each commit round. With no round under way, plans one and
    /// starts writing its files in the background; with one whose files
    /// are written, commits it on the table as it now is (rows the
    /// writer's commits deleted meanwhile are deleted again from the new
    /// files); with one still writing, returns at once. Only when a
    /// partition is past `max_files` does it wait, for the round under way
    /// and more, until the table is within the bound again: readers can
    /// count on it after every commit round. With a commit in flight (see
    /// `launch`) it does nothing: land it first.
    pub async fn merge_beside(&mut self) -> Result<MergeReport, LakehouseError> {
        if self.in_flight() {
            return Ok(MergeReport::default());
        }
        let mut report = match self.merging.take() {
            Some(flight) if flight.written() => self.finish_merge(flight).await?,
            Some(flight) => {
                self.merging = Some(flight);
                MergeReport::default()
            }
            None => {
                self.merging = self.start_merge(false).await?;
                MergeReport::default()
            }
        };
        // a writer that followed another's commits knows its files again
        // before it can tell whether a partition is past the bound
        if self.merge_policy.enabled && !self.poisoned && self.ledger.is_none() {
            self.ledger = Some(FileLedger::read(&self.table).await?);
        }
        let waiting = Instant::now();
        for _ in 0..ROUNDS_TO_THE_BOUND {
            if !self.past_the_bound() {
                break;
            }
            let round = self.merge().await?;
            let merged = round.data_files_removed > 0;
            let lost = round.lost_race;
            report.add(round);
            report.waited = true;
            // a lost race leaves the bound to the next round, after the
            // writer has followed the table
            if lost || !merged {
                break;
            }
        }
        if report.waited {
            tracing::info!(
                table = %self.table.identifier(),
                max_files = self.merge_policy.max_files,
                within = !self.past_the_bound(),
                ms = waiting.elapsed().as_millis() as u64,
                "a partition was past the merge bound; the commit round waited for merges"
            );
        }
        Ok(report)
    }

    /// Whether a snapshot is being read again into the table (merges
    /// wait for its end; see `resnapshot` and `incremental`).
    pub(super) fn resnapshotting(&self) -> bool {
        let reading = self
            .incremental_reads_at
            .is_some_and(|at| at.elapsed() < super::incremental::MERGES_WAIT);
        self.incremental_open || reading || SourcePositions::of(&self.table).resnapshotting()
    }

    /// Whether a partition is past the merge bound, as the writer knows
    /// the table.
    fn past_the_bound(&self) -> bool {
        self.merge_policy.enabled
            && !self.poisoned
            && !self.resnapshotting()
            && self
                .ledger
                .as_ref()
                .is_some_and(|l| past_the_bound(l, &self.merge_policy))
    }

    /// Whether a merge round's files are being written.
    pub fn merging(&self) -> bool {
        self.merging.is_some()
    }

    /// Whether [`merge_beside`](Self::merge_beside) would commit a round
    /// or plan one, which it does only on the table as it is: after the
    /// commit in flight has landed.
    pub fn merge_due(&self) -> bool {
        self.merge_policy.enabled && self.merging.as_ref().is_none_or(|f| f.written())
    }

    /// Plans a merge round from the ledger and starts writing its files,
    /// within the policy's CPU share unless the writer waits for it.
    async fn start_merge(&mut self, urgent: bool) -> Result<Option<MergeInFlight>, LakehouseError> {
        if !self.merge_policy.enabled || self.poisoned || self.resnapshotting() {
            return Ok(None);
        }
        let started = Instant::now();
        if self.ledger.is_none() {
            self.ledger = Some(FileLedger::read(&self.table).await?);
        }
        let Some(ledger) = &self.ledger else {
            return Ok(None);
        };
        let groups = plan(ledger, &self.merge_policy, &self.tails.paths());
        let dead = ledger.dead_deletes();
        if groups.is_empty() && dead.is_empty() {
            return Ok(None);
        }
        let mut rewrite_groups = Vec::new();
        for group in &groups {
            let files: HashSet<&str> = group.files.iter().map(|f| f.as_ref()).collect();
            let (deletes, kept) = ledger.partition_deletes(&group.partition, &files);
            rewrite_groups.push(RewriteGroup {
                partition: group.partition.clone(),
                data_files: group.files.iter().map(|f| f.to_string()).collect(),
                delete_files: deletes,
                kept_files: kept,
                rows: group.rows,
                data_bytes: group.bytes,
            });
        }
        // delete files of other partitions naming only removed files go too:
        // read as deletes of a group without data files, they carry nothing
        let merged: HashSet<&Struct> = groups.iter().map(|g| &g.partition).collect();
        let dead: Vec<String> = dead
            .into_iter()
            .filter(|d| {
                ledger
                    .deletes
                    .get(d.as_str())
                    .is_some_and(|l| !merged.contains(&l.partition))
            })
            .collect();
        if !dead.is_empty() {
            rewrite_groups.push(RewriteGroup {
                partition: Struct::empty(),
                data_files: Vec::new(),
                delete_files: dead,
                kept_files: HashSet::new(),
                rows: 0,
                data_bytes: 0,
            });
        }
        let table = self.table.clone();
        let base_snapshot = table.metadata().current_snapshot_id();
        let target = self.merge_policy.target_file_bytes;
        let budget = BudgetHandle::default();
        if urgent {
            budget.make_urgent();
        }
        let paced = Budgeted::new(
            async move { rewrite(&table, rewrite_groups, target).await },
            self.merge_policy.cpu_share,
            budget.clone(),
        );
        let task = tokio::spawn(paced);
        Ok(Some(MergeInFlight {
            base_snapshot,
            partitions: groups.len(),
            started,
            budget,
            task: Some(task),
        }))
    }

    /// Waits for a merge round's files and commits them on the table as
    /// it now is.
    async fn finish_merge(
        &mut self,
        mut flight: MergeInFlight,
    ) -> Result<MergeReport, LakehouseError> {
        let mut report = MergeReport::default();
        let Some(task) = flight.task.take() else {
            return Ok(report);
        };
        let rewritten = match task.await {
            Ok(rewritten) => rewritten?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => return Err(LakehouseError::ShuttingDown { operation: "merge" }),
        };
        crate::fault::point("merge.rewritten");
        // while a snapshot is read again, rows must stay in the files
        // they were in: the reconciliation tells rows read again by
        // their files being newer
        if self.poisoned || self.resnapshotting() {
            return Ok(report);
        }
        let rewrite_ms = flight.started.elapsed().as_millis() as u64;
        report.cpu = flight.budget.cpu();
        report.paused = flight.budget.paused();
        report.partitions = flight.partitions;
        report.data_files_removed = rewritten.moved.len();
        report.delete_files_removed = rewritten.removed.len() - rewritten.moved.len();
        report.delete_files_added = rewritten.carried.len();
        report.files_added = rewritten.added.len();
        report.rows_written = rewritten.rows;
        report.bytes_rewritten = rewritten.bytes_read;
        let mut action = Replace::new(rewritten);
        let lost = MergeReport {
            lost_race: true,
            ..MergeReport::default()
        };
        // a lost race is not retried here: the next commit follows the
        // table and the next round plans again
        let committed = Transaction::new(
            self.catalog.as_ref(),
            &self.pointer,
            self.table.clone(),
            &mut action,
        )
        .state(StateChange::maintenance("merge"))
        .retry(self.outages_only())
        .commit()
        .await;
        let committed = match committed {
            Ok(c) => c,
            Err(e) if e.is_conflict() => {
                tracing::info!(table = %self.table.identifier(), "another writer committed during a merge, or removed what it merged; the merge is dropped and planned again later");
                return Ok(lost);
            }
            Err(e) => return Err(e),
        };
        crate::fault::point("merge.committed");
        report.took = flight.started.elapsed();
        self.table = committed.table;
        self.move_index(&action.rewrite.moved, &action.rewrite.added);
        if let Some(ledger) = &mut self.ledger {
            let rewritten = &action.rewrite;
            ledger.replaced(
                &rewritten.removed,
                &rewritten.added,
                &rewritten.carried,
                &rewritten.carried_hits,
            );
            // rows the writer deleted while the files were written
            ledger.committed(
                &[],
                &action.redeleted,
                &action.redeleted_hits,
                &Removal::Nothing,
            );
        }
        self.deleted_again += action.redeleted_hits.values().sum::<u64>();
        tracing::info!(
            table = %self.table.identifier(),
            partitions = report.partitions,
            files_in = report.data_files_removed,
            deletes_in = report.delete_files_removed,
            deletes_out = report.delete_files_added,
            files_out = report.files_added,
            rows = report.rows_written,
            deleted_again = action.redeleted_hits.values().sum::<u64>(),
            rewrite_ms,
            cpu_ms = report.cpu.as_millis() as u64,
            paused_ms = report.paused.as_millis() as u64,
            ms = flight.started.elapsed().as_millis() as u64,
            "merged small files"
        );
        Ok(report)
    }

    /// Points the index's rows of merged files at their new places.
    fn move_index(
        &mut self,
        moved: &HashMap<String, crate::operations::maintain::compact::Moved>,
        added: &[iceberg::spec::DataFile],
    ) {
        let new_ids: Vec<u32> = added
            .iter()
            .map(|f| self.index.register_file(f.file_path()))
            .collect();
        for f in added {
            self.partitions
                .insert(Arc::from(f.file_path()), f.partition().clone());
        }
        let by_id: HashMap<u32, &crate::operations::maintain::compact::Moved> = moved
            .iter()
            .filter_map(|(path, m)| Some((self.index.file_id(path)?, m)))
            .collect();
        if by_id.is_empty() {
            return;
        }
        self.index.relocate(|loc| {
            let (file, pos) = by_id.get(&loc.file)?.to(loc.pos)?;
            Some(RowLocation {
                file: *new_ids.get(file as usize)?,
                pos,
            })
        });
        for path in moved.keys() {
            self.partitions.remove(path.as_str());
        }
    }

    /// The live data files of each partition, as the writer knows them
    /// (read from the table when it does not): paths and rows.
    pub async fn files_by_partition(
        &mut self,
    ) -> Result<Vec<(Struct, Vec<(String, u64)>)>, LakehouseError> {
        if self.ledger.is_none() {
            self.ledger = Some(FileLedger::read(&self.table).await?);
        }
        let Some(ledger) = &self.ledger else {
            return Ok(Vec::new());
        };
        let mut parts: Vec<(Struct, Vec<(String, u64)>)> = ledger
            .by_partition()
            .into_iter()
            .map(|(p, files)| {
                let mut files: Vec<(String, u64)> = files
                    .into_iter()
                    .map(|(path, f)| (path.to_string(), f.records))
                    .collect();
                files.sort();
                (p.clone(), files)
            })
            .collect();
        parts.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::Literal;

    fn part(day: i32) -> Struct {
        Struct::from_iter([Some(Literal::int(day))])
    }

    /// Files as (day, path, rows, deleted rows); 100 bytes a row.
    fn ledger(files: &[(i32, &str, u64, u64)]) -> FileLedger {
        let mut l = FileLedger::default();
        for (day, path, records, deleted) in files {
            l.data.insert(
                Arc::from(*path),
                LiveFile {
                    partition: part(*day),
                    records: *records,
                    bytes: records * 100,
                    deleted: *deleted,
                },
            );
        }
        l
    }

    fn names(groups: &[MergeGroup]) -> Vec<Vec<&str>> {
        groups
            .iter()
            .map(|g| g.files.iter().map(|f| f.as_ref()).collect())
            .collect()
    }

    /// Rows of a full file at 100 bytes a row and the default target.
    const FULL: u64 = (128 << 20) / 100;

    #[test]
    fn a_tail_is_never_merged_but_counts_toward_the_bound() {
        let p = MergePolicy {
            max_files: 4,
            ..MergePolicy::default()
        };
        let tail: HashSet<Arc<str>> = [Arc::from("tail")].into_iter().collect();
        let l = ledger(&[
            (1, "merged", 20_000, 0),
            (1, "sealed", 90, 0),
            (1, "tail", 40, 0),
        ]);
        // three small files are past two thirds of 4: all merge
        assert_eq!(
            names(&plan(&l, &p, &HashSet::new())),
            vec![vec!["tail", "sealed", "merged"]]
        );
        // one of them a tail: readers still open three, so the other two
        // merge and the tail stays
        assert_eq!(names(&plan(&l, &p, &tail)), vec![vec!["sealed", "merged"]]);
        // a tail alone beside one file: nothing to gain
        let l = ledger(&[(1, "merged", 20_000, 0), (1, "tail", 40, 0)]);
        assert!(plan(&l, &p, &tail).is_empty());
    }

    #[test]
    fn tiers_grow_by_the_fanout() {
        let p = MergePolicy::default();
        assert_eq!(p.tier(0), 0);
        assert_eq!(p.tier(3), 0);
        assert_eq!(p.tier(4), 1);
        assert_eq!(p.tier(15), 1);
        assert_eq!(p.tier(16), 2);
        assert_eq!(p.tier(1_000_000), 9);
    }

    #[test]
    fn a_full_tier_merges_with_the_tiers_below() {
        let p = MergePolicy::default();
        // three files of tier 3 (64-255 rows): within bounds
        let l = ledger(&[(1, "a", 100, 0), (1, "b", 100, 0), (1, "c", 100, 0)]);
        assert!(plan(&l, &p, &HashSet::new()).is_empty());
        // a fourth: tier 3 merges, the tier-5 file stays
        let l = ledger(&[
            (1, "a", 100, 0),
            (1, "b", 200, 0),
            (1, "c", 100, 0),
            (1, "d", 250, 0),
            (1, "big", 2000, 0),
        ]);
        assert_eq!(
            names(&plan(&l, &p, &HashSet::new())),
            vec![vec!["a", "c", "b", "d"]]
        );
        // their merge (650 rows, tier 4) is not merged again with them
        let l = ledger(&[(1, "merged", 650, 0), (1, "e", 100, 0), (1, "big", 2000, 0)]);
        assert!(plan(&l, &p, &HashSet::new()).is_empty());
        // four tier-5 files merge with the smaller file below them
        let l = ledger(&[
            (1, "s", 10, 0),
            (1, "m1", 2000, 0),
            (1, "m2", 2000, 0),
            (1, "m3", 3000, 0),
            (1, "m4", 2000, 0),
            (1, "full", 2 * FULL, 0),
        ]);
        assert_eq!(
            names(&plan(&l, &p, &HashSet::new())),
            vec![vec!["s", "m1", "m2", "m4", "m3"]]
        );
    }

    #[test]
    fn nearing_the_bound_the_smallest_files_merge_down_to_a_third() {
        let p = MergePolicy {
            max_files: 6,
            fanout: 8,
            ..MergePolicy::default()
        };
        assert_eq!((p.merge_at(), p.merge_down_to()), (4, 2));
        // one file a tier (8-63, 64-511, ...): no tier fills
        let files = [
            (1, "a", 10, 0),
            (1, "b", 100, 0),
            (1, "c", 1000, 0),
            (1, "d", 10_000, 0),
            (1, "e", 100_000, 0),
            (1, "f", 1_000_000, 0),
        ];
        // four small files: not past two thirds of the bound
        assert!(plan(&ledger(&files[..4]), &p, &HashSet::new()).is_empty());
        // six: the five smallest become one, leaving two
        assert_eq!(
            names(&plan(&ledger(&files), &p, &HashSet::new())),
            vec![vec!["a", "b", "c", "d", "e"]]
        );
        // past the bound itself only with seven
        assert!(!past_the_bound(&ledger(&files), &p));
        let mut seven = files.to_vec();
        seven.push((1, "g", 20, 0));
        assert!(past_the_bound(&ledger(&seven), &p));
        // full files do not count
        seven[5] = (1, "f", 2 * FULL, 0);
        assert!(!past_the_bound(&ledger(&seven), &p));
    }

    #[test]
    fn deleted_rows_past_the_share_rewrite_a_file_even_a_full_one() {
        let p = MergePolicy::default();
        let l = ledger(&[(1, "full", 2 * FULL, FULL), (1, "ok", 2 * FULL, FULL / 10)]);
        assert_eq!(names(&plan(&l, &p, &HashSet::new())), vec![vec!["full"]]);
        // a lone small file without deletes is left alone
        let l = ledger(&[(1, "lone", 10, 0)]);
        assert!(plan(&l, &p, &HashSet::new()).is_empty());
    }

    #[test]
    fn the_budget_takes_the_worst_partitions_first() {
        let p = MergePolicy {
            max_rows_per_round: 500,
            ..MergePolicy::default()
        };
        let mut files = Vec::new();
        let names_of: Vec<String> = (0..9).map(|i| format!("f{i}")).collect();
        for (i, n) in names_of.iter().enumerate() {
            // partition 1: 5 files, partition 2: 4 files, 100 rows each
            files.push((if i < 5 { 1 } else { 2 }, n.as_str(), 100, 0));
        }
        let l = ledger(&files);
        let groups = plan(&l, &p, &HashSet::new());
        // 500 rows: partition 1 (500 rows) fits, partition 2 waits
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].partition, part(1));
        // a budget below any group still merges the worst one
        let p = MergePolicy {
            max_rows_per_round: 1,
            ..p
        };
        assert_eq!(plan(&l, &p, &HashSet::new()).len(), 1);
    }

    #[test]
    fn partitions_with_equality_deletes_are_left_alone() {
        let p = MergePolicy::default();
        let mut l = ledger(&[
            (1, "a", 100, 0),
            (1, "b", 100, 0),
            (1, "c", 100, 0),
            (1, "d", 100, 0),
        ]);
        l.deletes.insert(
            Arc::from("eq"),
            super::super::ledger::LiveDeletes {
                partition: part(1),
                names: None,
            },
        );
        assert!(plan(&l, &p, &HashSet::new()).is_empty());
    }
}
