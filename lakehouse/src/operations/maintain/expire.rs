//! Snapshot expiry: snapshots older than a threshold, beyond the newest
//! few of the table's history and not named by a branch or tag, leave the
//! metadata; then the files only they reached (manifest lists, manifests,
//! data and delete files) are deleted. The current snapshot is always
//! kept, and so is the newest that records floe's state (the Kafka offsets
//! ingest resumes from, a job's lineage).
//!
//! The metadata commit comes first: a crash before the deletions leaves
//! unreferenced files (orphans), never a reference to a missing file.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iceberg::spec::SnapshotRef;
use iceberg::table::Table;
use iceberg::{Catalog, TableIdent};

use crate::catalog::Lake;
use crate::error::{iceberg_error, LakehouseError};
use crate::spec::read::manifest_list;
use crate::transaction::{
    reload, Action, CatalogPointer, CommitError, RetryPolicy, Transaction, Update,
};

/// Which snapshots expire.
#[derive(Debug, Clone)]
pub struct ExpirePolicy {
    /// Only snapshots older than this ...
    pub older_than: Duration,
    /// ... and not among the newest this many of the current history.
    pub retain_last: usize,
}

/// What an expiry did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct ExpireReport {
    pub expired: Vec<i64>,
    pub kept: usize,
    /// Files only the expired snapshots reached.
    pub files: Vec<String>,
}

/// Expires `ident`'s snapshots by `policy`; with `dry_run`, only reports.
pub async fn expire(
    lake: &Lake,
    ident: &TableIdent,
    policy: &ExpirePolicy,
    dry_run: bool,
) -> Result<ExpireReport, LakehouseError> {
    let mut replans = 0;
    loop {
        let table = reload(lake.catalog().as_ref(), ident).await?;
        let metadata = table.metadata();
        let keep = kept(&table, policy, None);
        let (kept_snapshots, expired): (Vec<SnapshotRef>, Vec<SnapshotRef>) = metadata
            .snapshots()
            .cloned()
            .partition(|s| keep.contains(&s.snapshot_id()));
        let mut ids: Vec<i64> = expired.iter().map(|s| s.snapshot_id()).collect();
        ids.sort_unstable();
        let mut report = ExpireReport {
            expired: ids,
            kept: kept_snapshots.len(),
            files: Vec::new(),
        };
        if expired.is_empty() {
            return Ok(report);
        }
        let still = reachable(&table, &kept_snapshots, true).await?;
        let mut files: Vec<String> = reachable(&table, &expired, false)
            .await?
            .into_iter()
            .filter(|f| !still.contains(f))
            .collect();
        files.sort();
        report.files = files;
        if dry_run {
            return Ok(report);
        }
        let action = Expire {
            policy: policy.clone(),
            at_most: None,
            expired: report.expired.clone(),
        };
        let committed = Transaction::new(lake.catalog().as_ref(), lake.pointer(), table, action)
            .commit()
            .await;
        let table = match committed {
            Ok(c) => c.table,
            // the plan no longer holds: plan again, a few times
            Err(LakehouseError::Commit { source, .. }) if source.is_conflict() && replans < 5 => {
                replans += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        for file in &report.files {
            // a file that cannot be deleted is an orphan, not an error
            if let Err(e) = table.file_io().delete(file).await {
                tracing::warn!(table = %ident, file, "cannot delete an expired file: {e}");
            }
        }
        return Ok(report);
    }
}

/// Expires `table`'s snapshots by `policy`, keeping at most `at_most`
/// (see [`kept`]), in a commit that changes its metadata only, as an
/// ingest writer does between its commits (see
/// [`crate::config::SnapshotExpiry`]): the files only expired snapshots
/// reached stay, for `floe maintain orphans`. The new table and how many
/// snapshots expired; `None` when none does.
pub(crate) async fn expire_metadata(
    catalog: &dyn Catalog,
    pointer: &CatalogPointer,
    table: Table,
    policy: &ExpirePolicy,
    at_most: Option<usize>,
    retry: RetryPolicy,
) -> Result<Option<(Table, usize)>, LakehouseError> {
    let keep = kept(&table, policy, at_most);
    let expired: Vec<i64> = table
        .metadata()
        .snapshots()
        .map(|s| s.snapshot_id())
        .filter(|id| !keep.contains(id))
        .collect();
    if expired.is_empty() {
        return Ok(None);
    }
    let count = expired.len();
    let action = Expire {
        policy: policy.clone(),
        at_most,
        expired,
    };
    let committed = Transaction::new(catalog, pointer, table, action)
        .retry(retry)
        .commit()
        .await?;
    Ok(Some((committed.table, count)))
}

/// The expiry's metadata change. A lost race is committed again on the
/// newer metadata without reading the manifests again: commits after the
/// plan only add snapshots (kept, being younger) or remove files from the
/// live set (files the plan keeps), so the files to delete stay right as
/// long as the policy still expires the same snapshots; otherwise the
/// expiry is planned again.
struct Expire {
    policy: ExpirePolicy,
    at_most: Option<usize>,
    expired: Vec<i64>,
}

impl Action for Expire {
    async fn update(
        &mut self,
        base: &Table,
        lost_to: Option<&Table>,
    ) -> Result<Update, LakehouseError> {
        if lost_to.is_some() {
            let keep = kept(base, &self.policy, self.at_most);
            let same = self
                .expired
                .iter()
                .all(|id| !keep.contains(id) && base.metadata().snapshot_by_id(*id).is_some());
            if !same {
                return Err(LakehouseError::Commit {
                    table: base.identifier().to_string(),
                    source: CommitError::Conflict {
                        table: base.identifier().to_string(),
                        expected: "the snapshots the expiry planned on".into(),
                    },
                });
            }
        }
        Ok(Update::RemoveSnapshots(self.expired.clone()))
    }
}

/// The snapshots `policy` keeps: the current one and the newest
/// `retain_last` of its history, every one younger than `older_than`, every
/// one a branch or tag names, and the newest that records floe's state
/// (Kafka offsets, a job's lineage), which a later commit by another
/// engine may not carry.
///
/// With `at_most`, the history keeps at most that many snapshots (but
/// never fewer than `retain_last`): younger ones beyond it expire too,
/// oldest first, and so do young snapshots outside the current history.
fn kept(table: &Table, policy: &ExpirePolicy, at_most: Option<usize>) -> HashSet<i64> {
    let metadata = table.metadata();
    let mut keep = HashSet::new();
    keep.extend(crate::transaction::state::state_snapshot(metadata));
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(i64::MAX);
    let cutoff = now_ms - policy.older_than.as_millis() as i64;
    let retain_last = policy.retain_last.max(1);
    let cap = at_most.map_or(usize::MAX, |n| n.max(retain_last));
    let mut cursor = metadata.current_snapshot().cloned();
    let mut n = 0;
    while let Some(s) = cursor {
        if n >= cap || (n >= retain_last && s.timestamp_ms() < cutoff) {
            break;
        }
        keep.insert(s.snapshot_id());
        n += 1;
        cursor = s
            .parent_snapshot_id()
            .and_then(|p| metadata.snapshot_by_id(p).cloned());
    }
    if at_most.is_none() {
        keep.extend(
            metadata
                .snapshots()
                .filter(|s| s.timestamp_ms() >= cutoff)
                .map(|s| s.snapshot_id()),
        );
    }
    // branches and tags (the metadata's refs have no public accessor)
    if let Ok(json) = serde_json::to_value(metadata) {
        if let Some(refs) = json.get("refs").and_then(|r| r.as_object()) {
            keep.extend(
                refs.values()
                    .filter_map(|r| r.get("snapshot-id").and_then(|i| i.as_i64())),
            );
        }
    }
    keep
}

/// Every file `snapshots` reach: manifest lists, manifests, and the data
/// and delete files their manifests name; with `live_only`, only files a
/// snapshot reads (an entry marking a file deleted does not keep it: every
/// snapshot still reading that file lists it as live).
pub(super) async fn reachable(
    table: &Table,
    snapshots: &[SnapshotRef],
    live_only: bool,
) -> Result<HashSet<String>, LakehouseError> {
    let name = table.identifier().clone();
    let mut files = HashSet::new();
    let mut manifests_seen = HashSet::new();
    for snapshot in snapshots {
        files.insert(snapshot.manifest_list().to_string());
        let list = manifest_list(table, snapshot).await?;
        for manifest in list.entries() {
            if !manifests_seen.insert(manifest.manifest_path.clone()) {
                continue;
            }
            files.insert(manifest.manifest_path.clone());
            let loaded = manifest
                .load_manifest(table.file_io())
                .await
                .map_err(iceberg_error("read manifest", &name))?;
            files.extend(
                loaded
                    .entries()
                    .iter()
                    .filter(|e| !live_only || e.is_alive())
                    .map(|e| e.file_path().to_string()),
            );
        }
    }
    Ok(files)
}
