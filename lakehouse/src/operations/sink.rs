//! Writes whole results to a table, as batch jobs produce them (not change
//! streams: see [`crate::operations::apply`] for those): the table is created from the
//! result's schema the first time, then each write replaces its rows
//! (`Overwrite`), adds to them (`Append`) or replaces the partitions it
//! has rows in (`OverwritePartitions`), in one snapshot that records the
//! caller's state (a job run's lineage).

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, TimeUnit};
use iceberg::spec::Operation;
use iceberg::TableIdent;

use crate::catalog::Lake;
use crate::error::LakehouseError;
use crate::spec::schema::table_schema;
use crate::spec::write::{table_rows, write_rows};
use crate::table::load_or_create;
use crate::transaction::{Rebasable, Removal, SnapshotUpdate, StateChange, Transaction};

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

/// Writes `batches` (all of `schema`) to `ident` in one snapshot that
/// records `state` (a job run's lineage, a loaded file's name). The files
/// stay right on whatever another writer commits meanwhile (an overwrite
/// removes what is live when it commits), so a lost race commits them
/// again on the newer table.
pub async fn write_result(
    lake: &Lake,
    ident: &TableIdent,
    partition: &[String],
    mode: WriteMode,
    schema: &ArrowSchema,
    batches: &[RecordBatch],
    state: StateChange,
) -> Result<Written, LakehouseError> {
    let name = ident.to_string();
    let (arrow, batches) = storable_batches(schema, batches, &name)?;
    let iceberg_schema =
        table_schema(arrow.fields(), &[]).map_err(|source| LakehouseError::Schema {
            table: name.clone(),
            source,
        })?;
    let table = load_or_create(
        lake.catalog().as_ref(),
        ident,
        || Ok(iceberg_schema),
        partition,
        &Default::default(),
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
    let (operation, remove) = match mode {
        WriteMode::Overwrite => (Operation::Overwrite, Removal::All),
        WriteMode::Append => (Operation::Append, Removal::Nothing),
        WriteMode::OverwritePartitions => (
            Operation::Overwrite,
            Removal::Partitions(Arc::new(
                written
                    .files
                    .iter()
                    .map(|f| f.partition().clone())
                    .collect(),
            )),
        ),
    };
    let mut update = SnapshotUpdate::new(operation, written.files);
    update.remove = remove;
    let committed = Transaction::new(
        lake.catalog().as_ref(),
        lake.pointer(),
        table,
        Rebasable(update),
    )
    .state(state)
    .commit()
    .await?;
    Ok(Written {
        rows: rows.num_rows(),
        files,
        snapshot_id: committed.table.metadata().current_snapshot_id(),
    })
}
