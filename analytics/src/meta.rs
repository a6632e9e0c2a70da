//! The shell's meta commands, answered from the catalog and the tables'
//! metadata (no data file is read):
//!
//! - `\dt`: every table, with the rows a reader sees (position-deleted
//!   ones not counted), its live data and delete files, and its last commit;
//! - `\d namespace.table`: columns, types, the key, the partition spec;
//! - `\snapshots namespace.table`: the table's snapshots, newest last, with
//!   what each added and removed (ids usable with `as_of`).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use iceberg::{Catalog, TableIdent};
use lakehouse::TableFiles;

use crate::error::AnalyticsError;

/// Builds a batch of text columns from rows.
fn text_batch(columns: &[&str], rows: Vec<Vec<String>>) -> Result<RecordBatch, AnalyticsError> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| {
            Arc::new(StringArray::from(
                rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>(),
            )) as ArrayRef
        })
        .collect();
    Ok(RecordBatch::try_new(schema, arrays)?)
}

fn time(ms: i64) -> String {
    datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// `\dt`
pub async fn list_tables(catalog: &dyn Catalog) -> Result<RecordBatch, AnalyticsError> {
    let mut rows = Vec::new();
    let mut namespaces = catalog.list_namespaces(None).await?;
    namespaces.sort_by_key(|n| n.to_url_string());
    for ns in namespaces {
        let mut tables = catalog.list_tables(&ns).await?;
        tables.sort_by(|a, b| a.name().cmp(b.name()));
        for ident in tables {
            let table = catalog.load_table(&ident).await?;
            let m = table.metadata();
            let files = TableFiles::of(m);
            rows.push(vec![
                ns.to_url_string(),
                ident.name().to_string(),
                files.live_rows().to_string(),
                files.data_files.to_string(),
                files.delete_files.to_string(),
                m.snapshots().len().to_string(),
                m.current_snapshot()
                    .map(|s| time(s.timestamp_ms()))
                    .unwrap_or_default(),
            ]);
        }
    }
    text_batch(
        &[
            "schema",
            "table",
            "rows",
            "data_files",
            "delete_files",
            "snapshots",
            "last_commit_utc",
        ],
        rows,
    )
}

pub fn parse_table(name: &str) -> Result<TableIdent, AnalyticsError> {
    let name = name.trim().trim_end_matches(';');
    if !name.contains('.') {
        return Err(AnalyticsError::Usage(format!(
            "{name:?}: name the table as namespace.table (see \\dt)"
        )));
    }
    TableIdent::from_strs(name.split('.'))
        .map_err(|e| AnalyticsError::Usage(format!("{name:?}: {e}")))
}

/// `\d namespace.table`: the columns, then the partition spec.
pub async fn describe(
    catalog: &dyn Catalog,
    ident: &TableIdent,
) -> Result<Vec<RecordBatch>, AnalyticsError> {
    let table = catalog.load_table(ident).await?;
    let m = table.metadata();
    let schema = m.current_schema();
    let key: Vec<i32> = schema.identifier_field_ids().collect();
    let columns = schema
        .as_struct()
        .fields()
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.field_type.to_string(),
                if f.required { "NOT NULL" } else { "" }.to_string(),
                if key.contains(&f.id) { "key" } else { "" }.to_string(),
            ]
        })
        .collect();
    let spec = m.default_partition_spec();
    let partitions = spec
        .fields()
        .iter()
        .map(|p| {
            let source = schema
                .field_by_id(p.source_id)
                .map(|f| f.name.clone())
                .unwrap_or_else(|| p.source_id.to_string());
            vec![p.name.clone(), format!("{}({source})", p.transform)]
        })
        .collect();
    Ok(vec![
        text_batch(&["column", "type", "null", "key"], columns)?,
        text_batch(&["partition_field", "transform"], partitions)?,
    ])
}

/// `\snapshots namespace.table`
pub async fn snapshots(
    catalog: &dyn Catalog,
    ident: &TableIdent,
) -> Result<RecordBatch, AnalyticsError> {
    let table = catalog.load_table(ident).await?;
    let m = table.metadata();
    let mut all: Vec<_> = m.snapshots().collect();
    all.sort_by_key(|s| (s.timestamp_ms(), s.sequence_number()));
    let current = m.current_snapshot_id();
    let rows = all
        .iter()
        .map(|s| {
            let get = |k: &str| {
                s.summary()
                    .additional_properties
                    .get(k)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            // a row is removed by dropping its file or by a position delete
            let removed = get("deleted-records") + get("added-position-deletes");
            let live = get("total-records").saturating_sub(get("total-position-deletes"));
            vec![
                s.snapshot_id().to_string(),
                time(s.timestamp_ms()),
                s.summary().operation.as_str().to_string(),
                get("added-records").to_string(),
                get("added-position-deletes").to_string(),
                removed.to_string(),
                live.to_string(),
                if Some(s.snapshot_id()) == current {
                    "current"
                } else {
                    ""
                }
                .to_string(),
            ]
        })
        .collect();
    text_batch(
        &[
            "snapshot_id",
            "committed_utc",
            "operation",
            "added_rows",
            "added_position_deletes",
            "removed_rows",
            "live_rows",
            "state",
        ],
        rows,
    )
}
