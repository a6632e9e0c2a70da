//! Orphan cleanup: files in a table's `data/` and `metadata/` folders that
//! no metadata references — what a writer left when it crashed or lost a
//! commit race after writing its files, or what an interrupted expiry did
//! not get to delete.
//!
//! The store is listed first and the references read after, so a file a
//! writer commits while the listing runs is seen as referenced. What stays
//! dangerous is a file written but not yet committed: it looks exactly like
//! an orphan. Files younger than the policy's age are therefore never
//! touched, and the age must exceed the longest a writer may take between
//! writing a file and committing it (the CLI refuses less than an hour).

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use iceberg::table::Table;
use iceberg::TableIdent;

use crate::catalog::Lake;
use crate::error::iceberg_error;
use crate::error::LakehouseError;
use crate::operations::maintain::expire::reachable;
use crate::spec::store::{normalized, ListedFile, Store};

/// Which unreferenced files are deleted.
#[derive(Debug, Clone)]
pub struct OrphanPolicy {
    /// Only files last written longer ago than this.
    pub older_than: Duration,
}

/// What an orphan cleanup found and did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct OrphanReport {
    /// Files listed under the table's `data/` and `metadata/`.
    pub listed: usize,
    /// The unreferenced files old enough to go, deleted unless dry.
    pub orphans: Vec<ListedFile>,
    /// Unreferenced files too young to touch (possibly being committed).
    pub young: Vec<ListedFile>,
}

impl OrphanReport {
    pub fn orphan_bytes(&self) -> u64 {
        self.orphans.iter().map(|f| f.size).sum()
    }
}

/// Finds the files under `ident`'s location that no metadata references
/// and deletes those older than `policy.older_than`; with `dry_run`, only
/// reports.
pub async fn orphans(
    lake: &Lake,
    ident: &TableIdent,
    policy: &OrphanPolicy,
    dry_run: bool,
) -> Result<OrphanReport, LakehouseError> {
    let table = load(lake, ident).await?;
    let s3 = lake.config().s3.resolve(|k| std::env::var(k).ok());
    let store = Store::open(table.metadata().location(), &s3).map_err(|e| store_error(ident, e))?;
    let mut listed = Vec::new();
    for folder in ["data", "metadata"] {
        listed.extend(
            store
                .list(folder, true)
                .await
                .map_err(|e| store_error(ident, e))?,
        );
    }
    // references read after the listing: see the module comment
    let table = load(lake, ident).await?;
    let referenced = references(&table).await?;
    let cutoff = SystemTime::now()
        .checked_sub(policy.older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = OrphanReport {
        listed: listed.len(),
        ..OrphanReport::default()
    };
    for file in listed {
        // a Hadoop-style catalog's pointer names no file but is one
        if referenced.contains(normalized(&file.location))
            || file.name.ends_with("version-hint.text")
        {
            continue;
        }
        // a store that gives no time is treated as "just now": never deleted
        if file.modified.is_some_and(|m| m < cutoff) {
            report.orphans.push(file);
        } else {
            report.young.push(file);
        }
    }
    if !dry_run {
        for (n, file) in report.orphans.iter().enumerate() {
            store
                .delete(&file.name)
                .await
                .map_err(|e| store_error(ident, e))?;
            if (n + 1) % 1000 == 0 {
                tracing::info!(table = %ident, deleted = n + 1, of = report.orphans.len(), "deleting orphans");
            }
        }
    }
    Ok(report)
}

async fn load(lake: &Lake, ident: &TableIdent) -> Result<Table, LakehouseError> {
    lake.catalog()
        .load_table(ident)
        .await
        .map_err(iceberg_error("load table", ident))
}

fn store_error(ident: &TableIdent, e: crate::spec::store::StoreError) -> LakehouseError {
    LakehouseError::Store {
        table: ident.to_string(),
        source: e,
    }
}

/// Every file the table's metadata names, normalized
/// ([`normalized`]): the current and logged metadata files, statistics
/// files, and every snapshot's manifest list, manifests and the data and
/// delete files of all their entries (a deleted entry too: a file is left
/// for expiry to remove, never for orphan cleanup).
async fn references(table: &Table) -> Result<HashSet<String>, LakehouseError> {
    let metadata = table.metadata();
    let snapshots: Vec<_> = metadata.snapshots().cloned().collect();
    let mut files = reachable(table, &snapshots, false).await?;
    files.extend(table.metadata_location().map(str::to_string));
    files.extend(
        metadata
            .metadata_log()
            .iter()
            .map(|m| m.metadata_file.clone()),
    );
    files.extend(
        metadata
            .statistics_iter()
            .map(|s| s.statistics_path.clone()),
    );
    files.extend(
        metadata
            .partition_statistics_iter()
            .map(|s| s.statistics_path.clone()),
    );
    Ok(files.iter().map(|f| normalized(f).to_string()).collect())
}
