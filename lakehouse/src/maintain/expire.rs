//! Snapshot expiry: snapshots older than a threshold, beyond the newest
//! few of the table's history and not named by a branch or tag, leave the
//! metadata; then the files only they reached (manifest lists, manifests,
//! data and delete files) are deleted. The current snapshot, which carries
//! the Kafka offsets ingest resumes from, is always kept.
//!
//! The metadata commit comes first: a crash before the deletions leaves
//! unreferenced files (orphans), never a reference to a missing file.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iceberg::spec::SnapshotRef;
use iceberg::table::Table;
use iceberg::TableIdent;

use crate::catalog::Lake;
use crate::commit::{commit_metadata, CommitError};
use crate::error::LakehouseError;
use crate::read::manifest_list;
use crate::sink::iceberg_error;

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
    for _ in 0..5 {
        let table = lake
            .catalog
            .load_table(ident)
            .await
            .map_err(iceberg_error("load table", ident))?;
        let metadata = table.metadata();
        let keep = kept(&table, policy);
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
        // a lost race is retried on the newer metadata without reading
        // the manifests again: commits after the plan only add snapshots
        // (kept, being younger) or remove files from the live set (files
        // the plan keeps), so the files to delete stay right as long as the
        // policy still expires the same snapshots
        let mut table = table;
        let mut committed = false;
        for _ in 0..20 {
            let location = table
                .metadata_location()
                .map(str::to_string)
                .ok_or_else(|| LakehouseError::Commit {
                    table: ident.to_string(),
                    source: CommitError::NoMetadataLocation(ident.to_string()),
                })?;
            let next = table
                .metadata()
                .clone()
                .into_builder(Some(location))
                .remove_snapshots(&report.expired)
                .build()
                .map_err(iceberg_error("expire snapshots", ident))?;
            match commit_metadata(&lake.pointer, &table, next).await {
                Ok(_) => {
                    committed = true;
                    break;
                }
                Err(CommitError::Conflict { .. }) => {}
                Err(source) => {
                    return Err(LakehouseError::Commit {
                        table: ident.to_string(),
                        source,
                    })
                }
            }
            table = lake
                .catalog
                .load_table(ident)
                .await
                .map_err(iceberg_error("reload table", ident))?;
            let keep = kept(&table, policy);
            let still_expired = report
                .expired
                .iter()
                .all(|id| !keep.contains(id) && table.metadata().snapshot_by_id(*id).is_some());
            if !still_expired {
                break;
            }
        }
        if !committed {
            continue;
        }
        for file in &report.files {
            // a file that cannot be deleted is an orphan, not an error
            if let Err(e) = table.file_io().delete(file).await {
                tracing::warn!(table = %ident, file, "cannot delete an expired file: {e}");
            }
        }
        return Ok(report);
    }
    Err(LakehouseError::Commit {
        table: ident.to_string(),
        source: CommitError::Conflict {
            table: ident.to_string(),
            expected: "a table no other writer changes for five attempts".into(),
        },
    })
}

/// The snapshots `policy` keeps: the current one and the newest
/// `retain_last` of its history, every one younger than `older_than`, and
/// every one a branch or tag names.
fn kept(table: &Table, policy: &ExpirePolicy) -> HashSet<i64> {
    let metadata = table.metadata();
    let mut keep = HashSet::new();
    let mut cursor = metadata.current_snapshot().cloned();
    let mut n = 0;
    while let Some(s) = cursor {
        if n >= policy.retain_last.max(1) {
            break;
        }
        keep.insert(s.snapshot_id());
        n += 1;
        cursor = s
            .parent_snapshot_id()
            .and_then(|p| metadata.snapshot_by_id(p).cloned());
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(i64::MAX);
    let cutoff = now_ms - policy.older_than.as_millis() as i64;
    keep.extend(
        metadata
            .snapshots()
            .filter(|s| s.timestamp_ms() >= cutoff)
            .map(|s| s.snapshot_id()),
    );
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
