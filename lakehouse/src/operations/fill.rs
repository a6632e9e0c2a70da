//! Columns added at the source with a `DEFAULT`: PostgreSQL gives every
//! existing row the default, so the lake must too.
//!
//! Iceberg v3's `initial-default` would say it in the schema alone, and
//! pyiceberg 0.12 and DuckDB 1.5.5 honour it even in v2 metadata, but v2
//! does not define it and other engines reading floe's v2 tables may not.
//! So floe rewrites the table's live data files with the column filled in,
//! in the same snapshot as the schema change and the batch that brought it
//! (`docs/types.md`; the cost is in `docs/benchmarks.md`). Rows deleted by
//! position are left out of the new files, so their delete files go too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use futures::TryStreamExt;
use iceberg::spec::{DataContentType, DataFile, Schema};
use iceberg::table::Table;

use crate::error::LakehouseError;
use crate::spec::parquet::FileTier;
use crate::spec::read::{read_fields, read_position_deletes};
use crate::spec::write::{conform_column, write_rows_as};

/// The table's live rows, rewritten.
pub(crate) struct Refilled {
    /// The new data files.
    pub files: Vec<DataFile>,
    /// For each old data file, where each of its rows went: `(index into
    /// files, position)`, or None for a row that was deleted.
    pub moved: HashMap<Arc<str>, Vec<Option<(u32, u32)>>>,
    pub rows: u64,
}

/// Rewrites every live data file of `table`'s current snapshot in
/// `schema`, with the columns named in `defaults` holding their default in
/// every row (the batch's one-row arrays, cast to the table's types).
/// `each` sees the rows of every new file with their positions.
pub(crate) async fn fill_defaults(
    table: &Table,
    schema: &Arc<Schema>,
    defaults: &[(&str, &ArrayRef)],
    file_prefix: &str,
    mut each: impl FnMut(&RecordBatch, u32),
) -> Result<Refilled, LakehouseError> {
    let name = table.identifier().to_string();
    let iceberg = |operation| {
        let table = name.clone();
        move |source| LakehouseError::Iceberg {
            operation,
            table,
            source: Box::new(source),
        }
    };
    let mut out = Refilled {
        files: Vec::new(),
        moved: HashMap::new(),
        rows: 0,
    };
    if table.metadata().current_snapshot().is_none() {
        return Ok(out);
    }
    let tasks: Vec<_> = table
        .scan()
        .build()
        .map_err(iceberg("plan rewrite"))?
        .plan_files()
        .await
        .map_err(iceberg("plan rewrite"))?
        .try_collect()
        .await
        .map_err(iceberg("plan rewrite"))?;
    let mut delete_rows: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    for (n, task) in tasks.iter().enumerate() {
        let mut deleted: HashSet<i64> = HashSet::new();
        for delete in task
            .deletes
            .iter()
            .filter(|d| d.file_type == DataContentType::PositionDeletes)
        {
            if !delete_rows.contains_key(&delete.file_path) {
                let rows = read_position_deletes(table, &delete.file_path).await?;
                delete_rows.insert(delete.file_path.clone(), rows);
            }
            deleted.extend(
                delete_rows[&delete.file_path]
                    .iter()
                    .filter(|(p, _)| *p == task.data_file_path)
                    .map(|(_, pos)| *pos),
            );
        }
        let all = read_fields(table, &task.data_file_path, schema, None, None).await?;
        let keep: Vec<u32> = (0..all.num_rows() as u32)
            .filter(|p| !deleted.contains(&i64::from(*p)))
            .collect();
        let arrow_error = |source| LakehouseError::Arrow {
            context: format!("filling defaults into {}", task.data_file_path),
            source,
        };
        let live = arrow_select::take::take_record_batch(&all, &UInt32Array::from(keep.clone()))
            .map_err(arrow_error)?;
        let rows = with_defaults(&live, defaults, &name)?;
        let written = write_rows_as(
            table,
            schema,
            &rows,
            &format!("{file_prefix}-fill-{n}"),
            FileTier::Settled,
        )
        .await?;
        let first = out.files.len() as u32;
        let mut moved = vec![None; all.num_rows()];
        for (k, &old) in keep.iter().enumerate() {
            let (file, pos) = written.locations[k];
            moved[old as usize] = Some((first + file, pos));
        }
        // the rows of each new file, for callers that key by whole row
        for (f, _) in written.files.iter().enumerate() {
            let positions: Vec<u32> = (0..rows.num_rows() as u32)
                .filter(|&r| written.locations[r as usize].0 == f as u32)
                .collect();
            let part = arrow_select::take::take_record_batch(&rows, &UInt32Array::from(positions))
                .map_err(arrow_error)?;
            each(&part, first + f as u32);
        }
        out.rows += rows.num_rows() as u64;
        out.files.extend(written.files);
        out.moved
            .insert(Arc::from(task.data_file_path.as_str()), moved);
    }
    Ok(out)
}

/// `rows` with each column named in `defaults` set to its default.
fn with_defaults(
    rows: &RecordBatch,
    defaults: &[(&str, &ArrayRef)],
    table: &str,
) -> Result<RecordBatch, LakehouseError> {
    let mut columns = rows.columns().to_vec();
    let schema = rows.schema();
    for (name, default) in defaults {
        let Ok(at) = schema.index_of(name) else {
            continue;
        };
        let default = conform_column(default, schema.field(at), table)?;
        let zeros = UInt32Array::from(vec![0u32; rows.num_rows()]);
        columns[at] =
            arrow_select::take::take(default.as_ref(), &zeros, None).map_err(|source| {
                LakehouseError::Arrow {
                    context: format!("default of {name} in {table}"),
                    source,
                }
            })?;
    }
    RecordBatch::try_new(schema, columns).map_err(|source| LakehouseError::Arrow {
        context: format!("rows with defaults for {table}"),
        source,
    })
}

/// Whether a one-row default array holds a value.
pub(crate) fn is_set(default: &ArrayRef) -> bool {
    default.len() == 1 && default.is_valid(0)
}
