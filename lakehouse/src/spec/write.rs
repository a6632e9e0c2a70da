//! Writing rows as Parquet data files, one file per partition (written side
//! by side, see [`super::parallel`]), while remembering where each input row
//! landed (data file and position), which the primary-key index needs to
//! delete it later.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch, StructArray, UInt32Array};
use arrow_schema::Schema as ArrowSchema;
use iceberg::arrow::{arrow_struct_to_literal, schema_to_arrow_schema, PartitionValueCalculator};
use iceberg::io::FileIO;
use iceberg::spec::{DataContentType, DataFile, Literal, Schema, Struct};
use iceberg::table::Table;
use iceberg::writer::file_writer::{FileWriter, FileWriterBuilder, ParquetWriterBuilder};

use crate::error::LakehouseError;
use crate::spec::parallel;
use crate::spec::parquet::{writer_properties, FileTier};

/// Data files written for a set of rows, and where each row is.
#[derive(Debug, Clone)]
pub struct WrittenRows {
    pub files: Vec<DataFile>,
    /// For input row `i`: (index into `files`, position in that file).
    pub locations: Vec<(u32, u32)>,
}

/// The `after` images of a change batch as rows of the table's schema:
/// columns matched by name, field ids attached, columns the batch does not
/// have (added to the table later) filled with nulls. A batch column the
/// table does not have is an error: the table's schema must be evolved first.
pub fn table_rows(
    after: &StructArray,
    schema: &Schema,
    table: &str,
) -> Result<RecordBatch, LakehouseError> {
    let arrow =
        schema_to_arrow_schema(schema).map_err(|e| iceberg_error("table schema", table, e))?;
    for name in after.column_names() {
        if arrow.field_with_name(name).is_err() {
            return Err(LakehouseError::SchemaMismatch {
                table: table.to_string(),
                reason: format!("the change batch has column {name:?}, which the table does not"),
            });
        }
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(arrow.fields().len());
    for field in arrow.fields() {
        let column = match after.column_by_name(field.name()) {
            Some(c) => conform_column(c, field, table)?,
            None => new_null_array(field.data_type(), after.len()),
        };
        columns.push(column);
    }
    // Fields as the table declares them (nullability, field ids); the data
    // is the batch's.
    let fields: Vec<_> = arrow
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    RecordBatch::try_new(Arc::new(ArrowSchema::new(fields)), columns).map_err(|e| {
        LakehouseError::Arrow {
            context: format!("rows for {table}"),
            source: e,
        }
    })
}

/// `column` as the table's `field` types it. The values must be the same
/// (or widen without loss); only their Arrow layout may differ: nested
/// field names (`item` vs `element`) and field ids, `Binary` vs Iceberg's
/// `LargeBinary`, a UTC zone's name, a narrower type from before a column
/// was widened. Anything else is a mismatch, which no retry fixes.
pub(crate) fn conform_column(
    column: &ArrayRef,
    field: &arrow_schema::Field,
    table: &str,
) -> Result<ArrayRef, LakehouseError> {
    if column.data_type() == field.data_type() {
        return Ok(column.clone());
    }
    if !same_values(column.data_type(), field.data_type()) {
        return Err(LakehouseError::SchemaMismatch {
            table: table.to_string(),
            reason: format!(
                "column {:?} is {} in the batch but {} in the table",
                field.name(),
                column.data_type(),
                field.data_type()
            ),
        });
    }
    arrow_cast::cast(column, field.data_type()).map_err(|e| LakehouseError::Arrow {
        context: format!("column {} of {table}", field.name()),
        source: e,
    })
}

/// Whether values of Arrow type `from` are values of `to` (see
/// [`conform_column`]).
fn same_values(from: &arrow_schema::DataType, to: &arrow_schema::DataType) -> bool {
    use arrow_schema::DataType as D;
    match (from, to) {
        _ if from.equals_datatype(to) => true,
        (D::Binary | D::LargeBinary, D::Binary | D::LargeBinary)
        | (D::Utf8 | D::LargeUtf8, D::Utf8 | D::LargeUtf8) => true,
        _ if is_utc_timestamp(from) && is_utc_timestamp(to) => true,
        _ if is_arrow_widening(from, to) => true,
        (D::List(a) | D::LargeList(a), D::List(b) | D::LargeList(b)) => {
            same_values(a.data_type(), b.data_type())
        }
        (D::Map(a, _), D::Map(b, _)) => same_values(a.data_type(), b.data_type()),
        (D::Struct(a), D::Struct(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|(x, y)| x.name() == y.name() && same_values(x.data_type(), y.data_type()))
        }
        _ => false,
    }
}

fn is_utc_timestamp(t: &arrow_schema::DataType) -> bool {
    matches!(
        t,
        arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some(tz))
            if matches!(tz.as_ref(), "UTC" | "+00:00" | "Z" | "Etc/UTC")
    )
}

/// Writes `rows` (in the table's schema, as from [`table_rows`]) to one
/// Parquet file per partition under the table's `data/` directory, named
/// `{file_prefix}-{n}.parquet`, as files that stay ([`FileTier::Settled`]).
pub async fn write_rows(
    table: &Table,
    rows: &RecordBatch,
    file_prefix: &str,
) -> Result<WrittenRows, LakehouseError> {
    let schema = table.metadata().current_schema().clone();
    write_rows_as(table, &schema, rows, file_prefix, FileTier::Settled).await
}

/// [`write_rows`] in `schema`, the schema the commit of these files makes
/// current (a batch that changes the table's columns), as files of `tier`.
pub async fn write_rows_as(
    table: &Table,
    schema: &Arc<Schema>,
    rows: &RecordBatch,
    file_prefix: &str,
    tier: FileTier,
) -> Result<WrittenRows, LakehouseError> {
    let name = table.identifier().to_string();
    let metadata = table.metadata();
    let schema = schema.clone();
    let spec = metadata.default_partition_spec().clone();
    if rows.num_rows() == 0 {
        return Ok(WrittenRows {
            files: Vec::new(),
            locations: Vec::new(),
        });
    }

    // group row indices by partition value, keeping input order in a group
    let mut groups: Vec<(Struct, Vec<u32>)> = Vec::new();
    let mut slot: HashMap<Struct, usize> = HashMap::new();
    for (row, key) in partition_values(table, &schema, rows)?
        .into_iter()
        .enumerate()
    {
        let at = *slot.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[at].1.push(row as u32);
    }

    let data_dir = format!("{}/data", metadata.location().trim_end_matches('/'));
    let table_properties = Arc::new(metadata.properties().clone());
    // a codec the table names that floe cannot write fails here, not per file
    writer_properties(&table_properties, &name, tier, 0)?;
    let mut writes = Vec::with_capacity(groups.len());
    let mut row_groups = Vec::with_capacity(groups.len());
    for (n, (partition, indices)) in groups.into_iter().enumerate() {
        let dir = if spec.is_unpartitioned() {
            data_dir.clone()
        } else {
            format!(
                "{data_dir}/{}",
                crate::spec::partition::partition_path(&spec, &partition, &schema)?
            )
        };
        let file = DataFileWrite {
            file_io: table.file_io().clone(),
            location: format!("{dir}/{file_prefix}-{n:05}.parquet"),
            table_properties: table_properties.clone(),
            tier,
            schema: schema.clone(),
            partition,
            spec_id: spec.spec_id(),
            table: name.clone(),
        };
        let indices = UInt32Array::from(indices);
        row_groups.push(indices.clone());
        let rows = rows.clone();
        writes.push(async move { file.write(&rows, &indices).await });
    }
    let written = parallel::write_each("write data files", writes).await?;

    let mut files = Vec::with_capacity(written.len());
    let mut locations = vec![(0u32, 0u32); rows.num_rows()];
    for (file, indices) in written.into_iter().zip(row_groups) {
        let Some(file) = file else {
            continue;
        };
        let file_index = files.len() as u32;
        for (pos, row) in indices.values().iter().enumerate() {
            locations[*row as usize] = (file_index, pos as u32);
        }
        files.push(file);
    }
    Ok(WrittenRows { files, locations })
}

/// The partition of each of `rows` (in `schema`) under the table's
/// default partition spec.
pub fn partition_values(
    table: &Table,
    schema: &Arc<Schema>,
    rows: &RecordBatch,
) -> Result<Vec<Struct>, LakehouseError> {
    let name = table.identifier().to_string();
    let spec = table.metadata().default_partition_spec();
    if spec.is_unpartitioned() {
        return Ok(vec![Struct::empty(); rows.num_rows()]);
    }
    let calculator = PartitionValueCalculator::try_new(spec, schema)
        .map_err(|e| iceberg_error("partition values", &name, e))?;
    let values = calculator
        .calculate(rows)
        .map_err(|e| iceberg_error("partition values", &name, e))?;
    let values = crate::spec::partition::clamp_hours(spec, schema, rows, &values)
        .map_err(|e| iceberg_error("partition values", &name, e))?;
    let partition_type = spec
        .partition_type(schema)
        .map_err(|e| iceberg_error("partition type", &name, e))?;
    let literals = arrow_struct_to_literal(&values, &partition_type)
        .map_err(|e| iceberg_error("partition values", &name, e))?;
    literals
        .into_iter()
        .enumerate()
        .map(|(row, literal)| match literal {
            Some(Literal::Struct(key)) => Ok(key),
            _ => Err(iceberg_error(
                "partition values",
                &name,
                iceberg::Error::new(
                    iceberg::ErrorKind::DataInvalid,
                    format!("row {row} has no partition value"),
                ),
            )),
        })
        .collect()
}

/// One data file to write: the rows of one partition.
struct DataFileWrite {
    file_io: FileIO,
    location: String,
    table_properties: Arc<HashMap<String, String>>,
    tier: FileTier,
    schema: Arc<Schema>,
    partition: Struct,
    spec_id: i32,
    /// The table's name, for errors.
    table: String,
}

impl DataFileWrite {
    /// Writes rows `indices` of `rows`; `None` if the writer produced no
    /// file.
    async fn write(
        self,
        rows: &RecordBatch,
        indices: &UInt32Array,
    ) -> Result<Option<DataFile>, LakehouseError> {
        let name = &self.table;
        let part_rows = arrow_select::take::take_record_batch(rows, indices).map_err(|e| {
            LakehouseError::Arrow {
                context: format!("partition rows for {name}"),
                source: e,
            }
        })?;
        let output = self
            .file_io
            .new_output(&self.location)
            .map_err(|e| iceberg_error("open data file", name, e))?;
        let props = writer_properties(
            &self.table_properties,
            name,
            self.tier,
            part_rows.num_rows(),
        )?
        .build();
        let mut writer = ParquetWriterBuilder::new(props, self.schema)
            .build(output)
            .await
            .map_err(|e| iceberg_error("open data file", name, e))?;
        writer
            .write(&part_rows)
            .await
            .map_err(|e| iceberg_error("write data file", name, e))?;
        let mut built = writer
            .close()
            .await
            .map_err(|e| iceberg_error("close data file", name, e))?;
        let Some(mut builder) = built.pop() else {
            return Ok(None);
        };
        builder
            .content(DataContentType::Data)
            .partition(self.partition)
            .partition_spec_id(self.spec_id)
            .build()
            .map(Some)
            .map_err(|e| {
                iceberg_error(
                    "describe data file",
                    name,
                    iceberg::Error::new(iceberg::ErrorKind::Unexpected, e.to_string()),
                )
            })
    }
}

fn iceberg_error(operation: &'static str, table: &str, source: iceberg::Error) -> LakehouseError {
    LakehouseError::Iceberg {
        operation,
        table: table.to_string(),
        source: Box::new(source),
    }
}

fn is_arrow_widening(from: &arrow_schema::DataType, to: &arrow_schema::DataType) -> bool {
    use arrow_schema::DataType as D;
    match (from, to) {
        (D::Int32, D::Int64) | (D::Float32, D::Float64) => true,
        (D::Decimal128(p1, s1), D::Decimal128(p2, s2)) => s1 == s2 && p2 > p1,
        _ => false,
    }
}
