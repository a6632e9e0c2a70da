//! Writes whole results to a table, as batch jobs produce them (not change
//! streams: see [`crate::apply`] for those): the table is created from the
//! result's schema the first time, then each write replaces its rows
//! (`Overwrite`), adds to them (`Append`) or replaces the partitions it
//! has rows in (`OverwritePartitions`), in one snapshot whose summary
//! carries the caller's properties (a job run's id and source snapshots).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, TimeUnit};
use iceberg::spec::Schema;
use iceberg::table::Table;
use iceberg::{Catalog, NamespaceIdent, TableCreation, TableIdent};

use crate::catalog::Lake;
use crate::commit::{commit_row_delta, CommitError, Removal, RowDelta};
use crate::error::LakehouseError;
use crate::partition::partition_spec;
use crate::schema::table_schema;
use crate::write::{table_rows, write_rows};

/// What a write does with the rows already in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// The result replaces every row.
    Overwrite,
    /// The result is added.
    Append,
    /// The result replaces the rows of the partitions it has rows in;
    /// other partitions keep theirs.
    OverwritePartitions,
}

/// What a write committed.
#[derive(Debug, Clone)]
pub struct Written {
    pub rows: usize,
    pub files: usize,
    pub snapshot_id: Option<i64>,
}

pub(crate) fn iceberg_error(
    operation: &'static str,
    table: &TableIdent,
) -> impl FnOnce(iceberg::Error) -> LakehouseError {
    let table = table.to_string();
    move |source| LakehouseError::Iceberg {
        operation,
        table,
        source: Box::new(source),
    }
}

/// Loads `ident`, creating it (and its namespace) with the schema `schema`
/// makes and the partition fields `partition` (as in
/// [`crate::TableConfig::partition`]) if it does not exist.
pub async fn load_or_create(
    catalog: &dyn Catalog,
    ident: &TableIdent,
    schema: impl FnOnce() -> Result<Schema, LakehouseError>,
    partition: &[String],
) -> Result<Table, LakehouseError> {
    if catalog
        .table_exists(ident)
        .await
        .map_err(iceberg_error("check table", ident))?
    {
        return catalog
            .load_table(ident)
            .await
            .map_err(iceberg_error("load table", ident));
    }
    let namespace: &NamespaceIdent = ident.namespace();
    if !catalog
        .namespace_exists(namespace)
        .await
        .map_err(iceberg_error("check namespace", ident))?
    {
        catalog
            .create_namespace(namespace, HashMap::new())
            .await
            .map_err(iceberg_error("create namespace", ident))?;
    }
    let schema = schema()?;
    let spec = partition_spec(&schema, partition)?;
    let creation = TableCreation::builder()
        .name(ident.name().to_string())
        .schema(schema)
        .partition_spec(spec)
        .properties([("write.format.default".to_string(), "parquet".to_string())])
        .build();
    catalog
        .create_table(namespace, creation)
        .await
        .map_err(iceberg_error("create table", ident))
}

/// The Arrow type a result column is stored as: the Iceberg-mappable
/// relative of what query engines produce (views, large and unsigned
/// types, nanosecond and millisecond times).
fn storable(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Date64 => DataType::Date32,
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        DataType::Dictionary(_, value) => storable(value),
        other => other.clone(),
    }
}

/// `batches` with every column in its [`storable`] type.
fn storable_batches(
    schema: &ArrowSchema,
    batches: &[RecordBatch],
    table: &str,
) -> Result<(Arc<ArrowSchema>, Vec<RecordBatch>), LakehouseError> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| Field::new(f.name(), storable(f.data_type()), true))
        .collect();
    let target = Arc::new(ArrowSchema::new(fields));
    let arrow_error = |e| LakehouseError::Arrow {
        context: format!("result for {table}"),
        source: e,
    };
    let cast = batches
        .iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(target.fields())
                .map(|(c, f)| arrow_cast::cast(c, f.data_type()))
                .collect::<Result<Vec<ArrayRef>, _>>()
                .map_err(arrow_error)?;
            RecordBatch::try_new(target.clone(), columns).map_err(arrow_error)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((target, cast))
}

/// Writes `batches` (all of `schema`) to `ident` in one snapshot.
pub async fn write_result(
    lake: &Lake,
    ident: &TableIdent,
    partition: &[String],
    mode: WriteMode,
    schema: &ArrowSchema,
    batches: &[RecordBatch],
    properties: HashMap<String, String>,
) -> Result<Written, LakehouseError> {
    let name = ident.to_string();
    let (arrow, batches) = storable_batches(schema, batches, &name)?;
    let iceberg_schema =
        table_schema(arrow.fields(), &[]).map_err(|source| LakehouseError::Schema {
            table: name.clone(),
            source,
        })?;
    let mut table = load_or_create(
        lake.catalog.as_ref(),
        ident,
        || Ok(iceberg_schema),
        partition,
    )
    .await?;
    let all = arrow_select::concat::concat_batches(&arrow, &batches).map_err(|e| {
        LakehouseError::Arrow {
            context: format!("result for {name}"),
            source: e,
        }
    })?;
    let rows = table_rows(
        &StructArray::from(all),
        table.metadata().current_schema(),
        &name,
    )?;
    let prefix = uuid::Uuid::new_v4().to_string();
    let written = write_rows(&table, &rows, &prefix).await?;
    let files = written.files.len();
    let remove = match mode {
        WriteMode::Overwrite => Removal::All,
        WriteMode::Append => Removal::Nothing,
        WriteMode::OverwritePartitions => Removal::Partitions(Arc::new(
            written
                .files
                .iter()
                .map(|f| f.partition().clone())
                .collect(),
        )),
    };
    // the files stay valid across a lost race: only the commit is redone
    for _ in 0..5 {
        let delta = RowDelta {
            data_files: written.files.clone(),
            delete_files: Vec::new(),
            properties: properties.clone(),
            remove: remove.clone(),
            schema: None,
        };
        match commit_row_delta(&lake.pointer, &table, delta).await {
            Ok(committed) => {
                return Ok(Written {
                    rows: rows.num_rows(),
                    files,
                    snapshot_id: committed.metadata().current_snapshot_id(),
                })
            }
            Err(CommitError::Conflict { .. }) => {
                table = lake
                    .catalog
                    .load_table(ident)
                    .await
                    .map_err(iceberg_error("reload table", ident))?;
            }
            Err(source) => {
                return Err(LakehouseError::Commit {
                    table: name,
                    source,
                })
            }
        }
    }
    Err(LakehouseError::Commit {
        table: name.clone(),
        source: CommitError::Conflict {
            table: name,
            expected: "a table no other writer changes for five attempts".into(),
        },
    })
}
