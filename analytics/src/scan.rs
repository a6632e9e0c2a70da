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

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{Stream, TryStreamExt};
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
}

/// `plan`, widened if it is an Iceberg table scan.
pub fn widen(plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    if plan.as_any().is::<IcebergTableScan>() {
        Arc::new(WideScan {
            scan: plan,
            files_at_once: files_at_once(),
        })
    } else {
        plan
    }
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

/// The batches of `scan`, read `files_at_once` files at a time.
async fn batches(scan: &IcebergTableScan, files_at_once: usize) -> Result<BatchStream> {
    let table = scan.table();
    let builder = match scan.snapshot_id() {
        Some(id) => table.scan().snapshot_id(id),
        None => table.scan(),
    };
    let mut builder = match scan.projection() {
        Some(columns) => builder.select(columns.iter().cloned()),
        None => builder.select_all(),
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
    Ok(Box::pin(stream))
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
        let limit = self.iceberg()?.limit();
        let stream = futures::stream::once(async move {
            let iceberg = scan
                .as_any()
                .downcast_ref::<IcebergTableScan>()
                .ok_or_else(|| DataFusionError::Internal("WideScan over another plan".into()))?;
            batches(iceberg, files_at_once).await
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
        match self.iceberg() {
            Ok(scan) => scan.fmt_as(t, f),
            Err(_) => Ok(()),
        }
    }
}
