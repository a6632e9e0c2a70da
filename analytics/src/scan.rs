//! Lake table scans that keep many file reads in flight.
//!
//! iceberg-datafusion 0.10.1 reads a table's manifests, delete files and
//! data files as many at a time as the machine has cores. Reading a file
//! from an object store is mostly waiting for it (about 30 ms a file on
//! Garage), so on two cores a table in 100 small files, which is what
//! ingest leaves between merge rounds, scanned many times slower than the
//! same rows compacted. [`WideScan`] runs the very same Iceberg scan
//! (snapshot, columns, predicate, limit) with [`files_at_once`] reads in
//! flight instead.
//!
//! A scan that needs no column (`count(*)`) reads one: iceberg 0.10.1
//! reads every column of every file for an empty selection, so a
//! `count(*)` decoded the whole table. [`WideScan`] selects the table's
//! narrowest column instead (of those, the oldest, so that files written
//! before later columns were added hold it) and hands DataFusion batches
//! of row counts only.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{Stream, TryStreamExt};
use iceberg::spec::{PrimitiveType, Schema, SchemaRef, Type};
use iceberg_datafusion::physical_plan::IcebergTableScan;

/// The environment variable that sets [`files_at_once`] (a positive
/// number; scripts/bench-scan.sh compares settings with it).
pub const FILES_AT_ONCE_ENV: &str = "FLOE_SCAN_FILES_AT_ONCE";

/// File reads one scan keeps in flight: `FLOE_SCAN_FILES_AT_ONCE`, else
/// four per core, 4 to 16 (as many as the commit path writes at once, for
/// the same reason).
pub fn files_at_once() -> usize {
    std::env::var(FILES_AT_ONCE_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores * 4).clamp(4, 16)
        })
}

/// An Iceberg table scan with more file reads in flight.
#[derive(Debug)]
pub struct WideScan {
    /// Always an [`IcebergTableScan`]: what to read, and the plan
    /// properties DataFusion planned with.
    scan: Arc<dyn ExecutionPlan>,
    files_at_once: usize,
    /// The column read for row counts when the scan wants none.
    rows_from: Option<String>,
}

/// `plan`, widened if it is an Iceberg table scan.
pub fn widen(plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    let Some(iceberg) = plan.as_any().downcast_ref::<IcebergTableScan>() else {
        return plan;
    };
    let rows_from = match iceberg.projection() {
        Some([]) => scanned_schema(iceberg).and_then(|s| narrowest_column(&s)),
        _ => None,
    };
    Arc::new(WideScan {
        scan: plan,
        files_at_once: files_at_once(),
        rows_from,
    })
}

/// The schema `scan` reads: its snapshot's, else the table's current one.
fn scanned_schema(scan: &IcebergTableScan) -> Option<SchemaRef> {
    let metadata = scan.table().metadata();
    match scan.snapshot_id() {
        Some(id) => metadata.snapshot_by_id(id)?.schema(metadata).ok(),
        None => Some(metadata.current_schema().clone()),
    }
}

/// The top-level primitive column cheapest to read for row counts: the
/// narrowest type, then the lowest field id (the oldest column, so the
/// one data files written before later columns were added still hold).
pub fn narrowest_column(schema: &Schema) -> Option<String> {
    fn width(t: &PrimitiveType) -> u8 {
        match t {
            PrimitiveType::Boolean => 1,
            PrimitiveType::Int | PrimitiveType::Float | PrimitiveType::Date => 4,
            PrimitiveType::Long
            | PrimitiveType::Double
            | PrimitiveType::Time
            | PrimitiveType::Timestamp
            | PrimitiveType::Timestamptz
            | PrimitiveType::TimestampNs
            | PrimitiveType::TimestamptzNs => 8,
            PrimitiveType::Decimal { .. } | PrimitiveType::Uuid => 16,
            PrimitiveType::Fixed(_) => 32,
            PrimitiveType::String | PrimitiveType::Binary => 64,
        }
    }
    schema
        .as_struct()
        .fields()
        .iter()
        .filter_map(|f| match f.field_type.as_ref() {
            Type::Primitive(p) => Some(((width(p), f.id), f.name.clone())),
            _ => None,
        })
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, name)| name)
}

impl WideScan {
    fn iceberg(&self) -> Result<&IcebergTableScan> {
        self.scan
            .as_any()
            .downcast_ref::<IcebergTableScan>()
            .ok_or_else(|| DataFusionError::Internal("WideScan over another plan".into()))
    }
}

type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>;

/// The batches of `scan`, read `files_at_once` files at a time; with
/// `rows_from`, that column is read and only the row counts are kept.
async fn batches(
    scan: &IcebergTableScan,
    files_at_once: usize,
    rows_from: Option<&str>,
) -> Result<BatchStream> {
    let table = scan.table();
    let builder = match scan.snapshot_id() {
        Some(id) => table.scan().snapshot_id(id),
        None => table.scan(),
    };
    let mut builder = match (rows_from, scan.projection()) {
        (Some(column), _) => builder.select([column]),
        (None, Some(columns)) => builder.select(columns.iter().cloned()),
        (None, None) => builder.select_all(),
    }
    .with_concurrency_limit(files_at_once);
    if let Some(predicate) = scan.predicates() {
        builder = builder.with_filter(predicate.clone());
    }
    let iceberg = |e: iceberg::Error| DataFusionError::External(Box::new(e));
    let stream = builder
        .build()
        .map_err(iceberg)?
        .to_arrow()
        .await
        .map_err(iceberg)?
        .map_err(iceberg);
    if rows_from.is_none() {
        return Ok(Box::pin(stream));
    }
    let schema = scan.schema();
    Ok(Box::pin(stream.and_then(move |batch| {
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let counted = RecordBatch::try_new_with_options(schema.clone(), vec![], &options)
            .map_err(|e| DataFusionError::ArrowError(Box::new(e), None));
        futures::future::ready(counted)
    })))
}

impl ExecutionPlan for WideScan {
    fn name(&self) -> &str {
        "WideScan"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.scan.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let scan = self.scan.clone();
        let files_at_once = self.files_at_once;
        let rows_from = self.rows_from.clone();
        let limit = self.iceberg()?.limit();
        let stream = futures::stream::once(async move {
            let iceberg = scan
                .as_any()
                .downcast_ref::<IcebergTableScan>()
                .ok_or_else(|| DataFusionError::Internal("WideScan over another plan".into()))?;
            batches(iceberg, files_at_once, rows_from.as_deref()).await
        })
        .try_flatten();
        let stream: BatchStream = match limit {
            // a LIMIT the scan was given: stop once it has that many rows
            Some(limit) => {
                let mut remaining = limit;
                Box::pin(stream.try_filter_map(move |batch| {
                    let take = batch.num_rows().min(remaining);
                    remaining -= take;
                    futures::future::ready(Ok((take > 0).then(|| batch.slice(0, take))))
                }))
            }
            None => Box::pin(stream),
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            stream,
        )))
    }
}

impl DisplayAs for WideScan {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "WideScan files_at_once:[{}] ", self.files_at_once)?;
        if let Some(column) = &self.rows_from {
            write!(f, "rows_from:[{column}] ")?;
        }
        match self.iceberg() {
            Ok(scan) => scan.fmt_as(t, f),
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::{NestedField, StructType};

    fn schema(fields: Vec<NestedField>) -> Schema {
        Schema::builder()
            .with_fields(fields.into_iter().map(Arc::new))
            .build()
            .unwrap()
    }

    #[test]
    fn row_counts_come_from_the_narrowest_then_oldest_column() {
        let long =
            |id, name: &str| NestedField::required(id, name, Type::Primitive(PrimitiveType::Long));
        let int =
            |id, name: &str| NestedField::optional(id, name, Type::Primitive(PrimitiveType::Int));
        let string = |id, name: &str| {
            NestedField::optional(id, name, Type::Primitive(PrimitiveType::String))
        };
        let nested = NestedField::optional(
            9,
            "address",
            Type::Struct(StructType::new(vec![Arc::new(NestedField::optional(
                10,
                "flag",
                Type::Primitive(PrimitiveType::Boolean),
            ))])),
        );
        // a nested column is not read on its own
        let s = schema(vec![long(1, "trip_id"), string(2, "zone"), nested.clone()]);
        assert_eq!(narrowest_column(&s).as_deref(), Some("trip_id"));
        // narrower first; of equal width, the lowest field id
        let s = schema(vec![
            long(1, "trip_id"),
            int(5, "added_later"),
            int(3, "vendor_id"),
        ]);
        assert_eq!(narrowest_column(&s).as_deref(), Some("vendor_id"));
        let s = schema(vec![string(1, "name"), nested]);
        assert_eq!(narrowest_column(&s).as_deref(), Some("name"));
        let s = schema(vec![NestedField::optional(
            1,
            "only",
            Type::Struct(StructType::new(vec![])),
        )]);
        assert_eq!(narrowest_column(&s), None);
    }
}
