//! Position-delete files: which rows of which data files are deleted.
//!
//! Apache iceberg 0.10.1 has no writer for them, so floe writes them
//! itself, as the spec defines: a Parquet file with the reserved columns
//! `file_path` (field id 2147483546) and `pos` (2147483545), rows sorted by
//! path then position. Its statistics keep `file_path` bounds exact (no
//! truncation), so readers can tell which data files a delete file touches.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::io::FileIO;
use iceberg::spec::{DataContentType, DataFile, NestedField, PrimitiveType, Schema, Struct, Type};
use iceberg::table::Table;
use iceberg::writer::file_writer::{FileWriter, FileWriterBuilder, ParquetWriterBuilder};

use crate::error::LakehouseError;
use crate::spec::parallel;
use crate::spec::parquet::{writer_properties, FileTier};

/// Reserved field id of `file_path` in position-delete files.
pub const FILE_PATH_FIELD_ID: i32 = 2_147_483_546;
/// Reserved field id of `pos` in position-delete files.
pub const POS_FIELD_ID: i32 = 2_147_483_545;

/// One deleted row: its data file and its 0-based position in that file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PositionDelete {
    pub file_path: Arc<str>,
    pub pos: i64,
}

/// The Iceberg schema of a position-delete file.
pub fn position_delete_schema() -> Schema {
    Schema::builder()
        .with_fields([
            Arc::new(NestedField::required(
                FILE_PATH_FIELD_ID,
                "file_path",
                Type::Primitive(PrimitiveType::String),
            )),
            Arc::new(NestedField::required(
                POS_FIELD_ID,
                "pos",
                Type::Primitive(PrimitiveType::Long),
            )),
        ])
        .build()
        .unwrap_or_else(|e| unreachable!("the position-delete schema is fixed and valid: {e}"))
}

/// The table property (Iceberg's own) that says how position deletes are
/// grouped into files.
pub const DELETE_GRANULARITY: &str = "write.delete.granularity";

/// How a commit's position deletes are grouped into files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeleteGranularity {
    /// One file per partition a commit deletes from: fewest files.
    #[default]
    Partition,
    /// One file per data file a commit deletes from, with
    /// `referenced_data_file` set: a reader that honours it opens only the
    /// deletes of the files it reads, and a merge that rewrites a data
    /// file drops its delete files whole.
    File,
}

impl DeleteGranularity {
    /// Parses the property's value as Iceberg spells it.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "partition" => Ok(Self::Partition),
            "file" => Ok(Self::File),
            _ => Err(format!(
                "{DELETE_GRANULARITY} = {value:?}: expected \"partition\" or \"file\""
            )),
        }
    }

    /// The granularity `table_properties` ask for (the default without it).
    pub fn of(
        table_properties: &HashMap<String, String>,
        table: &str,
    ) -> Result<Self, LakehouseError> {
        table_properties
            .get(DELETE_GRANULARITY)
            .map(|v| {
                Self::parse(v).map_err(|reason| LakehouseError::TableProperty {
                    table: table.to_string(),
                    reason,
                })
            })
            .unwrap_or(Ok(Self::default()))
    }
}

/// Writes the position deletes `by_partition` holds for `table`, grouped
/// into files as its [`DELETE_GRANULARITY`] says, named
/// `{prefix}-deletes-{n}.parquet` under its `data/` folder, side by side
/// (see [`super::parallel`]), as files of `tier`.
pub async fn write_partitioned_deletes(
    table: &Table,
    by_partition: impl IntoIterator<Item = (Struct, Vec<PositionDelete>)>,
    prefix: &str,
    tier: FileTier,
) -> Result<Vec<DataFile>, LakehouseError> {
    let metadata = table.metadata();
    let spec_id = metadata.default_partition_spec_id();
    let data_dir = format!("{}/data", metadata.location().trim_end_matches('/'));
    let granularity =
        DeleteGranularity::of(metadata.properties(), &table.identifier().to_string())?;
    let properties = Arc::new(metadata.properties().clone());
    let groups: Vec<(Struct, Vec<PositionDelete>)> = match granularity {
        DeleteGranularity::Partition => by_partition.into_iter().collect(),
        DeleteGranularity::File => by_partition
            .into_iter()
            .flat_map(|(partition, deletes)| {
                by_data_file(deletes)
                    .into_iter()
                    .map(move |deletes| (partition.clone(), deletes))
            })
            .collect(),
    };
    let writes: Vec<_> = groups
        .into_iter()
        .enumerate()
        .map(|(n, (partition, deletes))| {
            let location = format!("{data_dir}/{prefix}-deletes-{n:05}.parquet");
            let file_io = table.file_io().clone();
            let properties = properties.clone();
            async move {
                write_position_deletes(
                    &file_io,
                    &properties,
                    &location,
                    deletes,
                    partition,
                    spec_id,
                    tier,
                )
                .await
            }
        })
        .collect();
    let written = parallel::write_each("write position deletes", writes).await?;
    Ok(written.into_iter().flatten().collect())
}

/// `deletes` grouped by the data file they delete from, in path order.
fn by_data_file(deletes: Vec<PositionDelete>) -> Vec<Vec<PositionDelete>> {
    let mut groups: BTreeMap<Arc<str>, Vec<PositionDelete>> = BTreeMap::new();
    for d in deletes {
        groups.entry(d.file_path.clone()).or_default().push(d);
    }
    groups.into_values().collect()
}

/// Writes `deletes` (in any order, duplicates allowed) as one sorted
/// position-delete file at `location`, for a partition of spec `spec_id`,
/// with the Parquet settings of `table_properties` for a file of `tier`
/// (see [`super::parquet`]).
/// Deletes that all hit one data file name it as `referenced_data_file`.
/// Returns the file's manifest entry; nothing is written for no deletes.
pub async fn write_position_deletes(
    file_io: &FileIO,
    table_properties: &HashMap<String, String>,
    location: &str,
    mut deletes: Vec<PositionDelete>,
    partition: Struct,
    spec_id: i32,
    tier: FileTier,
) -> Result<Option<DataFile>, LakehouseError> {
    let fail = |operation: &'static str| {
        let table = location.to_string();
        move |source| LakehouseError::Iceberg {
            operation,
            table,
            source: Box::new(source),
        }
    };
    deletes.sort_unstable();
    deletes.dedup();
    if deletes.is_empty() {
        return Ok(None);
    }
    let schema = Arc::new(position_delete_schema());
    let arrow_schema =
        Arc::new(schema_to_arrow_schema(&schema).map_err(fail("position-delete schema"))?);
    let paths: ArrayRef = Arc::new(StringArray::from_iter_values(
        deletes.iter().map(|d| &*d.file_path),
    ));
    let positions: ArrayRef = Arc::new(Int64Array::from_iter_values(deletes.iter().map(|d| d.pos)));
    let batch = RecordBatch::try_new(arrow_schema, vec![paths, positions]).map_err(|e| {
        LakehouseError::Arrow {
            context: format!("position deletes for {location}"),
            source: e,
        }
    })?;

    let props = writer_properties(table_properties, location, tier, deletes.len())?
        .set_statistics_truncate_length(None)
        .build();
    let output = file_io
        .new_output(location)
        .map_err(fail("open position-delete file"))?;
    let mut writer = ParquetWriterBuilder::new(props, schema)
        .build(output)
        .await
        .map_err(fail("create position-delete writer"))?;
    writer
        .write(&batch)
        .await
        .map_err(fail("write position deletes"))?;
    let mut files = writer
        .close()
        .await
        .map_err(fail("close position-delete file"))?;
    let Some(mut builder) = files.pop() else {
        return Ok(None);
    };
    // the spec's hint for readers, valid when every delete names one file
    let first = &deletes[0].file_path;
    if deletes.iter().all(|d| d.file_path == *first) {
        builder.referenced_data_file(Some(first.to_string()));
    }
    let file = builder
        .content(DataContentType::PositionDeletes)
        .partition(partition)
        .partition_spec_id(spec_id)
        .build()
        .map_err(|e| LakehouseError::Iceberg {
            operation: "describe position-delete file",
            table: location.to_string(),
            source: Box::new(iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                e.to_string(),
            )),
        })?;
    Ok(Some(file))
}
