//! `floe_meta.job_runs`: one row per job run, appended through the same
//! commit path as every table floe writes.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use iceberg::TableIdent;
use lakehouse::sink::{write_result, WriteMode};
use lakehouse::transaction::StateChange;
use lakehouse::Lake;

use crate::error::AnalyticsError;
use crate::jobs::run::RunRecord;

pub const JOB_RUNS: (&str, &str) = ("floe_meta", "job_runs");

fn schema() -> Schema {
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Schema::new(vec![
        Field::new("job", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("started_at", utc(), false),
        Field::new("finished_at", utc(), false),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows_written", DataType::Int64, false),
        Field::new("target_snapshot_id", DataType::Int64, true),
        Field::new("source_snapshots", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
    ])
}

/// Appends `run` to `floe_meta.job_runs`.
pub async fn record_run(lake: &Lake, run: &RunRecord) -> Result<(), AnalyticsError> {
    let schema = Arc::new(schema());
    let ts = |us: i64| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(vec![us]).with_timezone("UTC"))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![run.job.clone()])),
        Arc::new(StringArray::from(vec![run.run_id.clone()])),
        ts(run.started_at_us),
        ts(run.finished_at_us),
        Arc::new(StringArray::from(vec![run.status.as_str()])),
        Arc::new(Int64Array::from(vec![run.rows_written])),
        Arc::new(Int64Array::from(vec![run.target_snapshot_id])),
        Arc::new(StringArray::from(vec![serde_json::to_string(
            &run.source_snapshots,
        )
        .unwrap_or_default()])),
        Arc::new(StringArray::from(vec![run.error.clone()])),
    ];
    append_row(lake, JOB_RUNS, schema, columns).await
}

/// Appends one row (`columns`, one value each) to the bookkeeping table
/// `table` (namespace, name), creating it unpartitioned on first use.
pub(crate) async fn append_row(
    lake: &Lake,
    table: (&str, &str),
    schema: Arc<Schema>,
    columns: Vec<ArrayRef>,
) -> Result<(), AnalyticsError> {
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let ident = TableIdent::from_strs([table.0, table.1])
        .map_err(|e| AnalyticsError::Usage(e.to_string()))?;
    write_result(
        lake,
        &ident,
        &[],
        WriteMode::Append,
        &schema,
        &[batch],
        StateChange::default(),
    )
    .await?;
    Ok(())
}
