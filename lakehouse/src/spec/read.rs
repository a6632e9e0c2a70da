//! Reading a table's Parquet files directly, by path: data-file columns
//! (all rows or given positions) and position-delete files. The primary-key
//! index and the changes feed need rows by position, which a table scan
//! does not give.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    new_null_array, Array, ArrayRef, Int64Array, RecordBatch, RecordBatchReader, StringArray,
    UInt32Array,
};
use arrow_schema::{ArrowError, Schema as ArrowSchema};
use iceberg::spec::{FormatVersion, ManifestList, Schema, Snapshot};
use iceberg::table::Table;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ProjectionMask, PARQUET_FIELD_ID_META_KEY};

use crate::error::LakehouseError;
use crate::spec::write::conform_column;

fn arrow_error(path: &str) -> impl Fn(ArrowError) -> LakehouseError + '_ {
    move |source| LakehouseError::Arrow {
        context: format!("reading {path}"),
        source,
    }
}

/// The bytes of one of `table`'s files.
pub(crate) async fn read_file(table: &Table, path: &str) -> Result<bytes::Bytes, LakehouseError> {
    let iceberg = |operation| {
        let table = table.identifier().to_string();
        move |source| LakehouseError::Iceberg {
            operation,
            table,
            source: Box::new(source),
        }
    };
    table
        .file_io()
        .new_input(path)
        .map_err(iceberg("open file"))?
        .read()
        .await
        .map_err(iceberg("read file"))
}

/// Reads `columns` (every column when `None`; names the file lacks are
/// left out) of a Parquet file, all rows or only `positions` (ascending).
pub(crate) async fn read_columns(
    table: &Table,
    path: &str,
    columns: Option<&[String]>,
    positions: Option<&[u32]>,
) -> Result<RecordBatch, LakehouseError> {
    let bytes = read_file(table, path).await?;
    let parquet_error = |e: parquet::errors::ParquetError| {
        arrow_error(path)(ArrowError::ExternalError(Box::new(e)))
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_error)?;
    let parquet_schema = builder.parquet_schema();
    let mask = match columns {
        None => ProjectionMask::all(),
        Some(columns) => {
            let roots = parquet_schema
                .root_schema()
                .get_fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| columns.iter().any(|c| c == f.name()))
                .map(|(i, _)| i);
            ProjectionMask::roots(parquet_schema, roots)
        }
    };
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(parquet_error)?;
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader
        .collect::<Result<_, _>>()
        .map_err(arrow_error(path))?;
    let all = arrow_select::concat::concat_batches(&schema, &batches).map_err(arrow_error(path))?;
    match positions {
        None => Ok(all),
        Some(p) => arrow_select::take::take_record_batch(&all, &UInt32Array::from(p.to_vec()))
            .map_err(arrow_error(path)),
    }
}

/// Reads columns of a data file as `schema` has them now: the fields with
/// ids `ids` (every field when `None`), matched to the file's columns by
/// Parquet field id, not by name. A renamed column comes under its new
/// name; a column the file predates, or one dropped and added again under
/// the same name (a new id), is null; a narrower type is cast up. All
/// rows, or only `positions` (ascending).
pub(crate) async fn read_fields(
    table: &Table,
    path: &str,
    schema: &Schema,
    ids: Option<&[i32]>,
    positions: Option<&[u32]>,
) -> Result<RecordBatch, LakehouseError> {
    let name = table.identifier().to_string();
    let target = iceberg::arrow::schema_to_arrow_schema(schema).map_err(|source| {
        LakehouseError::Iceberg {
            operation: "table schema",
            table: name.clone(),
            source: Box::new(source),
        }
    })?;
    let wanted: Vec<(i32, &arrow_schema::FieldRef)> = target
        .fields()
        .iter()
        .filter_map(|f| Some((field_id(f)?, f)))
        .filter(|(id, _)| ids.is_none_or(|ids| ids.contains(id)))
        .collect();
    let order: Vec<&arrow_schema::FieldRef> = match ids {
        // the caller's order
        Some(ids) => ids
            .iter()
            .filter_map(|id| wanted.iter().find(|(w, _)| w == id).map(|(_, f)| *f))
            .collect(),
        None => wanted.iter().map(|(_, f)| *f).collect(),
    };

    let bytes = read_file(table, path).await?;
    let parquet_error = |e: parquet::errors::ParquetError| {
        arrow_error(path)(ArrowError::ExternalError(Box::new(e)))
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_error)?;
    // the file's top-level columns by field id
    let in_file: HashMap<i32, usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((field_id(f)?, i)))
        .collect();
    let roots: Vec<usize> = order
        .iter()
        .filter_map(|f| in_file.get(&field_id(f)?).copied())
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(parquet_error)?;
    let file_schema = reader.schema();
    let batches: Vec<RecordBatch> = reader
        .collect::<Result<_, _>>()
        .map_err(arrow_error(path))?;
    let all =
        arrow_select::concat::concat_batches(&file_schema, &batches).map_err(arrow_error(path))?;
    let all = match positions {
        None => all,
        Some(p) => arrow_select::take::take_record_batch(&all, &UInt32Array::from(p.to_vec()))
            .map_err(arrow_error(path))?,
    };
    let by_id: HashMap<i32, &ArrayRef> = file_schema
        .fields()
        .iter()
        .zip(all.columns())
        .filter_map(|(f, c)| Some((field_id(f)?, c)))
        .collect();
    let mut columns = Vec::with_capacity(order.len());
    for field in &order {
        let column = match field_id(field).and_then(|id| by_id.get(&id)) {
            Some(c) => conform_column(c, field, &name)?,
            None => new_null_array(field.data_type(), all.num_rows()),
        };
        columns.push(column);
    }
    let fields: Vec<arrow_schema::Field> = order
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    RecordBatch::try_new_with_options(
        Arc::new(ArrowSchema::new(fields)),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(all.num_rows())),
    )
    .map_err(arrow_error(path))
}

/// The Iceberg field id Arrow carries in a field's metadata.
pub(crate) fn field_id(field: &arrow_schema::Field) -> Option<i32> {
    field
        .metadata()
        .get(PARQUET_FIELD_ID_META_KEY)
        .and_then(|v| v.parse().ok())
}

/// The (data file path, position) rows of a position-delete file.
pub(crate) async fn read_position_deletes(
    table: &Table,
    path: &str,
) -> Result<Vec<(String, i64)>, LakehouseError> {
    let columns = ["file_path".to_string(), "pos".to_string()];
    let batch = read_columns(table, path, Some(&columns), None).await?;
    let paths = batch
        .column_by_name("file_path")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>());
    let positions = batch
        .column_by_name("pos")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>());
    let (Some(paths), Some(positions)) = (paths, positions) else {
        return Err(LakehouseError::SchemaMismatch {
            table: table.identifier().to_string(),
            reason: format!(
                "position-delete file {path} does not have (file_path string, pos long)"
            ),
        });
    };
    Ok((0..positions.len())
        .map(|i| (paths.value(i).to_string(), positions.value(i)))
        .collect())
}

/// The manifest list of one of `table`'s snapshots.
pub(crate) async fn manifest_list(
    table: &Table,
    snapshot: &Snapshot,
) -> Result<ManifestList, LakehouseError> {
    let bytes = read_file(table, snapshot.manifest_list()).await?;
    ManifestList::parse_with_version(&bytes, FormatVersion::V2).map_err(|source| {
        LakehouseError::Iceberg {
            operation: "parse manifest list",
            table: table.identifier().to_string(),
            source: Box::new(source),
        }
    })
}

/// The live entries (data and delete files) of `table`'s current snapshot,
/// read from every manifest it lists.
pub(crate) async fn live_entries(
    table: &Table,
) -> Result<Vec<iceberg::spec::ManifestEntryRef>, LakehouseError> {
    let Some(snapshot) = table.metadata().current_snapshot() else {
        return Ok(Vec::new());
    };
    let list = manifest_list(table, snapshot).await?;
    let mut live = Vec::new();
    for manifest in list.entries() {
        let loaded = manifest
            .load_manifest(table.file_io())
            .await
            .map_err(|source| LakehouseError::Iceberg {
                operation: "read manifest",
                table: table.identifier().to_string(),
                source: Box::new(source),
            })?;
        live.extend(loaded.entries().iter().filter(|e| e.is_alive()).cloned());
    }
    Ok(live)
}
