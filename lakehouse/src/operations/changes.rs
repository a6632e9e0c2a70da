//! The changes feed: the rows added to and removed from a table since one
//! of its snapshots, read from the files the later snapshots added and
//! removed. Incremental jobs use it to find what to recompute.
//!
//! The feed is a superset of the net change: a row added and removed again
//! in between appears twice, once each way, and a removed file lists all of
//! its rows. That is what recomputation needs (every key that may have
//! changed), not a diff to apply. Compaction's `replace` snapshots move
//! rows without changing them and are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow_array::{new_null_array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, SchemaRef};
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::{DataContentType, ManifestStatus, Operation};
use iceberg::table::Table;

use crate::error::LakehouseError;
use crate::spec::read::{manifest_list, read_fields, read_position_deletes};

/// The column naming which way a row changed: `added` or `removed`.
pub const CHANGE_COLUMN: &str = "_change";

/// Rows of a table that changed between two snapshots.
#[derive(Debug, Clone)]
pub struct TableChanges {
    /// The snapshot the changes start after.
    pub since: i64,
    /// The snapshot they end at (the table's current one).
    pub until: i64,
    /// The table's current columns and [`CHANGE_COLUMN`].
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl TableChanges {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// The files the snapshots after `since` added and removed.
#[derive(Default)]
struct ChangedFiles {
    added_data: Vec<String>,
    added_deletes: Vec<String>,
    removed_data: Vec<String>,
}

/// The rows added to or removed from `table` since its snapshot `since`,
/// in the current schema plus [`CHANGE_COLUMN`]. `None` when `since` is not
/// an ancestor of the current snapshot (expired, or never this table's):
/// the caller must then read the whole table.
pub async fn changes_since(
    table: &Table,
    since: i64,
) -> Result<Option<TableChanges>, LakehouseError> {
    let metadata = table.metadata();
    let name = table.identifier().to_string();
    let Some(current) = metadata.current_snapshot() else {
        return Ok(None);
    };
    let mut later = Vec::new();
    let mut cursor = Some(current.clone());
    loop {
        match cursor {
            None => return Ok(None),
            Some(s) if s.snapshot_id() == since => break,
            Some(s) => {
                cursor = s
                    .parent_snapshot_id()
                    .and_then(|p| metadata.snapshot_by_id(p).cloned());
                later.push(s);
            }
        }
    }
    let iceberg_schema = metadata.current_schema();
    let mut fields: Vec<Field> = schema_to_arrow_schema(iceberg_schema)
        .map_err(|source| LakehouseError::Iceberg {
            operation: "arrow schema",
            table: name.clone(),
            source: Box::new(source),
        })?
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(CHANGE_COLUMN, DataType::Utf8, false));
    let schema = Arc::new(ArrowSchema::new(fields));

    let mut files = ChangedFiles::default();
    // a replace (compaction) moves rows without changing them
    for snapshot in later
        .iter()
        .filter(|s| s.summary().operation != Operation::Replace)
    {
        let list = manifest_list(table, snapshot).await?;
        let id = snapshot.snapshot_id();
        for manifest in list.entries().iter().filter(|m| m.added_snapshot_id == id) {
            let loaded = manifest
                .load_manifest(table.file_io())
                .await
                .map_err(|source| LakehouseError::Iceberg {
                    operation: "read manifest",
                    table: name.clone(),
                    source: Box::new(source),
                })?;
            for entry in loaded.entries() {
                if entry.snapshot_id() != Some(id) {
                    continue;
                }
                let path = entry.file_path().to_string();
                match (entry.status(), entry.content_type()) {
                    (ManifestStatus::Added, DataContentType::Data) => files.added_data.push(path),
                    (ManifestStatus::Added, DataContentType::PositionDeletes) => {
                        files.added_deletes.push(path)
                    }
                    (ManifestStatus::Deleted, DataContentType::Data) => {
                        files.removed_data.push(path)
                    }
                    _ => {}
                }
            }
        }
    }

    let mut batches = Vec::new();
    for path in &files.added_data {
        let rows = read_fields(table, path, iceberg_schema, None, None).await?;
        batches.push(conform(&schema, &rows, "added", path)?);
    }
    for path in &files.removed_data {
        let rows = read_fields(table, path, iceberg_schema, None, None).await?;
        batches.push(conform(&schema, &rows, "removed", path)?);
    }
    let mut deleted: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for path in &files.added_deletes {
        for (file, pos) in read_position_deletes(table, path).await? {
            let pos = u32::try_from(pos).map_err(|_| LakehouseError::SchemaMismatch {
                table: name.clone(),
                reason: format!("position {pos} in {path} is out of range"),
            })?;
            deleted.entry(file).or_default().insert(pos);
        }
    }
    for (file, positions) in deleted {
        let positions: Vec<u32> = positions.into_iter().collect();
        let rows = read_fields(table, &file, iceberg_schema, None, Some(&positions)).await?;
        batches.push(conform(&schema, &rows, "removed", &file)?);
    }
    Ok(Some(TableChanges {
        since,
        until: current.snapshot_id(),
        schema,
        batches,
    }))
}

/// `rows` of one file in the table's current columns (a column the file
/// predates is null; a narrower type is widened), tagged `change`.
fn conform(
    schema: &SchemaRef,
    rows: &RecordBatch,
    change: &str,
    path: &str,
) -> Result<RecordBatch, LakehouseError> {
    let arrow_error = |source| LakehouseError::Arrow {
        context: format!("changes from {path}"),
        source,
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        if field.name() == CHANGE_COLUMN {
            columns.push(Arc::new(StringArray::from(vec![change; rows.num_rows()])));
            continue;
        }
        let column = match rows.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => c.clone(),
            Some(c) => arrow_cast::cast(c, field.data_type()).map_err(arrow_error)?,
            None => new_null_array(field.data_type(), rows.num_rows()),
        };
        columns.push(column);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(arrow_error)
}
