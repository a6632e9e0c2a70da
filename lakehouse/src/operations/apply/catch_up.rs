//! Bringing a writer's primary-key index up to date after another writer
//! committed: the snapshots between the index's base and the table's
//! current snapshot are read, oldest first, and only what they touched is
//! read back:
//!
//! ```text
//!  each snapshot since the base
//!    ├─ data files it added       every row's key → that file and place,
//!    │                            but for the rows it also deletes
//!    ├─ position deletes it added the key at each deleted place, forgotten
//!    │                            if the index still points there
//!    └─ data files it removed     each row's key, forgotten if the index
//!                                 still points into the file (a row the
//!                                 removal deleted; rows it moved were
//!                                 pointed at their new file above)
//! ```
//!
//! The work is that of the commits lost to (a compaction's files, another
//! writer's batch), never the table's size. Only when the history cannot
//! say what happened (the base snapshot expired, equality deletes, the
//! index columns changed) is the index built again from the table, and
//! that is counted ([`TableWriter::full_index_builds`]).

use std::collections::BTreeMap;

use iceberg::spec::{DataContentType, ManifestStatus, SnapshotRef, Struct};
use iceberg::table::Table;

use super::{Keying, TableWriter};
use crate::error::{iceberg_error, LakehouseError};
use crate::index::pk_index::RowLocation;
use crate::spec::read::{manifest_list, read_fields, read_position_deletes};

/// What catching up did.
pub(super) enum CaughtUp {
    /// The index follows the newer table; this many snapshots were read.
    Snapshots(usize),
    /// History cannot say what happened: the index must be built again.
    Rebuild(String),
}

/// The files one snapshot added and removed.
#[derive(Default)]
struct Touched {
    added: Vec<(String, Struct)>,
    deletes: Vec<String>,
    removed: Vec<String>,
    equality_deletes: bool,
}

impl TableWriter {
    /// Moves the index from `self.table` to `newer`. On an error the index
    /// is as it was (the caller may try again).
    pub(super) async fn catch_up(&mut self, newer: &Table) -> Result<CaughtUp, LakehouseError> {
        if self.keying == Keying::Changelog {
            return Ok(CaughtUp::Snapshots(0));
        }
        let Some(since) = snapshots_since(&self.table, newer) else {
            return Ok(CaughtUp::Rebuild(
                "the snapshot the index was built on is no longer in the table's history".into(),
            ));
        };
        let schema = newer.metadata().current_schema().clone();
        let (ids, types) = self.index_columns(&schema)?;
        let (old_ids, old_types) = self.index_columns(self.table.metadata().current_schema())?;
        let keyed_alike = match &self.keying {
            Keying::Primary(names) => *names == super::key_names(&schema),
            _ => true,
        };
        if ids != old_ids || types != old_types || !keyed_alike {
            return Ok(CaughtUp::Rebuild(
                "another writer changed the columns the index keys by".into(),
            ));
        }
        self.index.begin();
        let mut read = 0;
        for snapshot in &since {
            let touched = match touched(newer, snapshot).await {
                Ok(t) => t,
                Err(e) => {
                    self.index.rollback();
                    return unreadable(e);
                }
            };
            if touched.equality_deletes {
                self.index.rollback();
                return Ok(CaughtUp::Rebuild(format!(
                    "snapshot {} holds equality deletes (another engine's), which name rows by value",
                    snapshot.snapshot_id()
                )));
            }
            if let Err(e) = self.replay(newer, &schema, &ids, touched).await {
                self.index.rollback();
                return unreadable(e);
            }
            read += 1;
        }
        self.index.keep();
        Ok(CaughtUp::Snapshots(read))
    }

    /// Applies what one snapshot did to the index.
    async fn replay(
        &mut self,
        table: &Table,
        schema: &iceberg::spec::Schema,
        ids: &[i32],
        touched: Touched,
    ) -> Result<(), LakehouseError> {
        let mut deleted: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for path in touched.deletes {
            for (file, pos) in read_position_deletes(table, &path).await? {
                deleted.entry(file).or_default().push(pos as u32);
            }
        }
        for positions in deleted.values_mut() {
            positions.sort_unstable();
            positions.dedup();
        }
        for (path, partition) in touched.added {
            let rows = read_fields(table, &path, schema, Some(ids), None).await?;
            let file = self.index.register_file(&path);
            // rows the same snapshot deletes (a compaction deleting again
            // what a commit racing it deleted) were dead on arrival: their
            // key lives in a newer row the index already holds
            let dead = deleted.remove(&path).unwrap_or_default();
            let live: Vec<u32> = (0..rows.num_rows() as u32)
                .filter(|p| dead.binary_search(p).is_err())
                .collect();
            self.index_rows(&rows, file, &live)?;
            self.partitions.insert(path.as_str().into(), partition);
        }
        for (path, positions) in deleted {
            self.forget(table, schema, ids, &path, Some(positions))
                .await?;
        }
        for path in touched.removed {
            self.forget(table, schema, ids, &path, None).await?;
        }
        Ok(())
    }

    /// Forgets the rows of data file `path` (at `positions`, or all) that
    /// the index still places there.
    async fn forget(
        &mut self,
        table: &Table,
        schema: &iceberg::spec::Schema,
        ids: &[i32],
        path: &str,
        positions: Option<Vec<u32>>,
    ) -> Result<(), LakehouseError> {
        // a file the index never pointed into holds none of its rows
        let Some(file) = self.index.file_id(path) else {
            return Ok(());
        };
        let rows = read_fields(table, path, schema, Some(ids), positions.as_deref()).await?;
        let keys = self
            .index
            .batch_keys(&arrow_array::StructArray::from(rows))?;
        for i in 0..keys.len() {
            let pos = positions.as_ref().map_or(i as u32, |p| p[i]);
            if let Some(key) = keys.get(i) {
                self.index.remove_at(key, RowLocation { file, pos });
            }
        }
        Ok(())
    }
}

/// A snapshot's files could not be read: an outage is the caller's to wait
/// out; a file gone (an expiry deleted it meanwhile) leaves a full build.
fn unreadable(e: LakehouseError) -> Result<CaughtUp, LakehouseError> {
    if e.is_retryable() {
        Err(e)
    } else {
        Ok(CaughtUp::Rebuild(format!(
            "a file of the snapshots since could not be read: {e}"
        )))
    }
}

/// The snapshots of `newer` after `older`'s current one, oldest first; None
/// when `older`'s is not an ancestor of `newer`'s (expired, or the table
/// was rolled back).
fn snapshots_since(older: &Table, newer: &Table) -> Option<Vec<SnapshotRef>> {
    let base = older.metadata().current_snapshot_id();
    let metadata = newer.metadata();
    let mut out = Vec::new();
    let mut cursor = metadata.current_snapshot().cloned();
    while let Some(snapshot) = cursor {
        if Some(snapshot.snapshot_id()) == base {
            out.reverse();
            return Some(out);
        }
        let parent = snapshot.parent_snapshot_id();
        out.push(snapshot);
        cursor = match parent {
            Some(p) => Some(metadata.snapshot_by_id(p)?.clone()),
            None => None,
        };
    }
    // reached the first snapshot: the base must have been "no snapshot"
    base.is_none().then(|| {
        out.reverse();
        out
    })
}

/// The files `snapshot` added and removed (its own manifest entries).
async fn touched(table: &Table, snapshot: &SnapshotRef) -> Result<Touched, LakehouseError> {
    let ident = table.identifier();
    let id = snapshot.snapshot_id();
    let mut out = Touched::default();
    let list = manifest_list(table, snapshot).await?;
    for manifest in list.entries().iter().filter(|m| m.added_snapshot_id == id) {
        let loaded = manifest
            .load_manifest(table.file_io())
            .await
            .map_err(iceberg_error("read manifest", ident))?;
        for entry in loaded
            .entries()
            .iter()
            .filter(|e| e.snapshot_id() == Some(id))
        {
            let path = entry.file_path().to_string();
            match (entry.status(), entry.content_type()) {
                (ManifestStatus::Added, DataContentType::Data) => out
                    .added
                    .push((path, entry.data_file().partition().clone())),
                (ManifestStatus::Added, DataContentType::PositionDeletes) => out.deletes.push(path),
                (ManifestStatus::Added, DataContentType::EqualityDeletes) => {
                    out.equality_deletes = true
                }
                (ManifestStatus::Deleted, DataContentType::Data) => out.removed.push(path),
                // a delete file removed deleted nothing more (its rows are
                // gone with their data files, or deleted again elsewhere)
                _ => {}
            }
        }
    }
    Ok(out)
}
