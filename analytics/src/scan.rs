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
//! `count(*)` decoded the whole table. [`WideScan`] counts a file that no
//! delete touches from its manifest entry (`record_count`, which the
//! Iceberg spec makes exact) without opening it, as Spark's and Trino's
//! Iceberg readers do; for the files that have deletes it selects the
//! table's narrowest column (of those, the oldest, so that files written
//! before later columns were added hold it) and hands DataFusion batches
//! of row counts only. `EXPLAIN ANALYZE` shows how many files were read
//! and how many counted (`files_read`, `files_counted`).
//!
//! Files that share a position-delete file are read in rounds
//! ([`rounds_apart`]). iceberg 0.10.1's reader loads a delete file once
//! per scan: the first file read that needs it loads it, and any other
//! read that needs it meanwhile waits on a `tokio::sync::Notify`. That
//! wait is registered after the reader's state lock is let go, so a load
//! that ends in between wakes nobody, and the waiting read, and the query,
//! never end (a lost wakeup; fixed upstream after 0.10.1, apache/iceberg-rust
//! pull request 2859). In rounds, no two reads in flight need a delete
//! file that is not loaded yet: each round loads delete files the rounds
//! before it did not, one read per file, and the last round reads the
//! rest, whose delete files are all loaded, so no read ever waits.

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef as ArrowSchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{Stream, StreamExt, TryStreamExt};
use iceberg::arrow::ArrowReaderBuilder;
use iceberg::scan::{ArrowRecordBatchStream, FileScanTask};
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
    metrics: ExecutionPlanMetricsSet,
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
        metrics: ExecutionPlanMetricsSet::new(),
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

/// `tasks` in rounds to be read one after another, such that no two
/// tasks of a round need a delete file that no earlier round loaded.
/// Tasks whose delete files are all loaded by then (or that have none)
/// make up the last round, which holds most of the work.
pub fn rounds_apart<T>(mut tasks: Vec<T>, deletes_of: impl Fn(&T) -> Vec<&str>) -> Vec<Vec<T>> {
    // the tasks that need the most delete files first: they load the
    // most in one round
    tasks.sort_by_cached_key(|t| std::cmp::Reverse(deletes_of(t).len()));
    let mut loaded: HashSet<String> = HashSet::new();
    let mut rounds = Vec::new();
    let mut last = Vec::new();
    while !tasks.is_empty() {
        let mut claimed: HashSet<String> = HashSet::new();
        let (mut round, mut later) = (Vec::new(), Vec::new());
        for task in tasks {
            let pending: Vec<&str> = deletes_of(&task)
                .into_iter()
                .filter(|d| !loaded.contains(*d))
                .collect();
            if pending.is_empty() {
                last.push(task);
            } else if pending.iter().any(|d| claimed.contains(*d)) {
                later.push(task);
            } else {
                claimed.extend(pending.into_iter().map(str::to_string));
                round.push(task);
            }
        }
        loaded.extend(claimed);
        // a round is empty only when no task was left to it
        if !round.is_empty() {
            rounds.push(round);
        }
        tasks = later;
    }
    if !last.is_empty() {
        rounds.push(last);
    }
    rounds
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

/// Rows in one batch of row counts only: a plan above that makes columns
/// of them (`SELECT 1 FROM t`) makes this many values at once.
const COUNTED_BATCH_ROWS: u64 = 1 << 20;

/// How a [`WideScan`] read its files, for `EXPLAIN ANALYZE`.
#[derive(Clone)]
struct ScanMetrics {
    /// Data files opened and read.
    files_read: Count,
    /// Data files counted from their manifest entries, not opened.
    files_counted: Count,
}

/// The rows of the tasks a row count needs not open, and the others.
/// A task's `record_count` is its whole file's (iceberg sets it only
/// then), so it is the task's row count when no delete and no predicate
/// can take rows away.
fn counted_apart(tasks: Vec<FileScanTask>) -> (u64, usize, Vec<FileScanTask>) {
    let (mut rows, mut files, mut to_read) = (0, 0, Vec::new());
    for task in tasks {
        match task.record_count {
            Some(n) if task.deletes.is_empty() && task.predicate.is_none() => {
                rows += n;
                files += 1;
            }
            _ => to_read.push(task),
        }
    }
    (rows, files, to_read)
}

/// A batch of `schema` (which has no columns) that holds only a row count.
fn rows_only(schema: &ArrowSchemaRef, rows: usize) -> Result<RecordBatch> {
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema.clone(), vec![], &options)
        .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
}

/// `rows` rows of `schema` (which has no columns), in batches of at most
/// [`COUNTED_BATCH_ROWS`].
fn row_count_batches(schema: &ArrowSchemaRef, rows: u64) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    let mut left = rows;
    while left > 0 {
        let n = left.min(COUNTED_BATCH_ROWS);
        left -= n;
        batches.push(rows_only(schema, n as usize)?);
    }
    Ok(batches)
}

/// The batches of `scan`, read `files_at_once` files at a time; with
/// `rows_from`, only row counts: from the manifests where they are exact,
/// else by reading that column.
async fn batches(
    scan: &IcebergTableScan,
    files_at_once: usize,
    rows_from: Option<&str>,
    metrics: ScanMetrics,
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
    let tasks: Vec<FileScanTask> = builder
        .build()
        .map_err(iceberg)?
        .plan_files()
        .await
        .map_err(iceberg)?
        .try_collect()
        .await
        .map_err(iceberg)?;
    let (counted, tasks) = match rows_from {
        Some(_) => {
            let (rows, files, to_read) = counted_apart(tasks);
            metrics.files_counted.add(files);
            (row_count_batches(&scan.schema(), rows)?, to_read)
        }
        None => (Vec::new(), tasks),
    };
    metrics.files_read.add(tasks.len());
    let runtime = iceberg::Runtime::try_current().map_err(iceberg)?;
    // the reader's clones share its delete-file state: a delete file one
    // round loaded, the next finds loaded
    let reader = ArrowReaderBuilder::new(table.file_io().clone(), runtime)
        .with_data_file_concurrency_limit(files_at_once)
        .build();
    let rounds = rounds_apart(tasks, |task| {
        task.deletes.iter().map(|d| d.file_path.as_str()).collect()
    });
    // `try_flatten` starts a round once the one before it has been read
    let stream = futures::stream::iter(rounds)
        .map(move |round| -> iceberg::Result<ArrowRecordBatchStream> {
            let tasks = futures::stream::iter(round.into_iter().map(Ok)).boxed();
            Ok(reader.clone().read(tasks)?.stream())
        })
        .try_flatten()
        .map_err(iceberg);
    if rows_from.is_none() {
        return Ok(Box::pin(stream));
    }
    let schema = scan.schema();
    let read =
        stream.and_then(move |batch| futures::future::ready(rows_only(&schema, batch.num_rows())));
    Ok(Box::pin(
        futures::stream::iter(counted.into_iter().map(Ok)).chain(read),
    ))
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

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let scan = self.scan.clone();
        let files_at_once = self.files_at_once;
        let rows_from = self.rows_from.clone();
        let limit = self.iceberg()?.limit();
        let metrics = ScanMetrics {
            files_read: MetricBuilder::new(&self.metrics).counter("files_read", partition),
            files_counted: MetricBuilder::new(&self.metrics).counter("files_counted", partition),
        };
        let stream = futures::stream::once(async move {
            let iceberg = scan
                .as_any()
                .downcast_ref::<IcebergTableScan>()
                .ok_or_else(|| DataFusionError::Internal("WideScan over another plan".into()))?;
            batches(iceberg, files_at_once, rows_from.as_deref(), metrics).await
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

    /// Checks the rounds of `tasks` (each a list of delete files): every
    /// task in exactly one round, and within a round no delete file that
    /// no earlier round loaded needed by two tasks.
    fn check_rounds(tasks: &[Vec<&str>]) -> Vec<Vec<usize>> {
        let indexed: Vec<(usize, Vec<&str>)> = tasks.iter().cloned().enumerate().collect();
        let rounds = rounds_apart(indexed, |(_, d)| d.clone());
        let mut loaded: HashSet<&str> = HashSet::new();
        let mut seen = Vec::new();
        for round in &rounds {
            let mut loading: HashSet<&str> = HashSet::new();
            for (i, deletes) in round {
                seen.push(*i);
                let pending: HashSet<&str> = deletes
                    .iter()
                    .copied()
                    .filter(|d| !loaded.contains(d))
                    .collect();
                for d in pending {
                    assert!(
                        loading.insert(d),
                        "{d} needed by two tasks of one round before it is loaded: {rounds:?}"
                    );
                }
            }
            loaded.extend(loading);
        }
        seen.sort();
        assert_eq!(seen, (0..tasks.len()).collect::<Vec<_>>());
        rounds
            .iter()
            .map(|r| r.iter().map(|(i, _)| *i).collect())
            .collect()
    }

    #[test]
    fn reads_without_delete_files_are_one_round() {
        assert_eq!(check_rounds(&[vec![], vec![], vec![]]).len(), 1);
        assert!(check_rounds(&[]).is_empty());
    }

    #[test]
    fn a_partitions_delete_files_are_loaded_by_one_read_before_the_others() {
        // three partitions of four data files; each partition's two delete
        // files hit its older files (iceberg matches them by partition)
        let mut tasks = Vec::new();
        for p in ["a", "b", "c"] {
            let (d1, d2) = match p {
                "a" => ("a1", "a2"),
                "b" => ("b1", "b2"),
                _ => ("c1", "c2"),
            };
            tasks.extend([vec![d1, d2], vec![d1, d2], vec![d2], vec![]]);
        }
        let rounds = check_rounds(&tasks);
        // one read per partition loads both its files, then the rest
        assert_eq!(rounds.len(), 2, "{rounds:?}");
        assert_eq!(rounds[0].len(), 3, "{rounds:?}");
        assert_eq!(rounds[1].len(), 9, "{rounds:?}");
    }

    #[test]
    fn rounds_keep_shared_delete_files_apart_whatever_they_overlap() {
        // delete files shared across the table (equality deletes), chains
        // of overlaps, and random sets
        let global = vec![vec!["g", "x"], vec!["g"], vec!["g", "y"], vec!["y"]];
        let rounds = check_rounds(&global);
        // one read loads g while the one needing only y loads that
        assert_eq!(rounds[0], vec![0, 3], "{rounds:?}");
        let chain = vec![
            vec!["1", "2"],
            vec!["2", "3"],
            vec!["3", "4"],
            vec!["4", "5"],
        ];
        check_rounds(&chain);
        let names: Vec<String> = (0..12).map(|i| format!("d{i}")).collect();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200 {
            let tasks: Vec<Vec<&str>> = (0..(next() % 20))
                .map(|_| {
                    (0..(next() % 5))
                        .map(|_| names[(next() % 12) as usize].as_str())
                        .collect()
                })
                .collect();
            check_rounds(&tasks);
        }
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

    fn task(path: &str, record_count: Option<u64>, deletes: &[&str]) -> FileScanTask {
        use iceberg::scan::FileScanTaskDeleteFile;
        use iceberg::spec::{DataContentType, DataFileFormat};
        FileScanTask::builder()
            .with_file_size_in_bytes(1000)
            .with_start(0)
            .with_length(1000)
            .with_record_count(record_count)
            .with_data_file_path(path.into())
            .with_data_file_format(DataFileFormat::Parquet)
            .with_schema(Arc::new(schema(vec![NestedField::required(
                1,
                "id",
                Type::Primitive(PrimitiveType::Long),
            )])))
            .with_project_field_ids(vec![1])
            .with_deletes(
                deletes
                    .iter()
                    .map(|d| {
                        FileScanTaskDeleteFile::builder()
                            .with_file_path(d.to_string())
                            .with_file_size_in_bytes(100)
                            .with_file_type(DataContentType::PositionDeletes)
                            .with_partition_spec_id(0)
                            .build()
                    })
                    .collect(),
            )
            .with_case_sensitive(true)
            .build()
    }

    #[test]
    fn only_whole_files_without_deletes_or_predicate_are_counted_from_manifests() {
        let mut filtered = task("filtered", Some(7), &[]);
        filtered.predicate = Some(iceberg::expr::BoundPredicate::AlwaysTrue);
        let tasks = vec![
            task("clean-a", Some(100), &[]),
            task("deleted", Some(50), &["d1"]),
            task("split", None, &[]),
            task("clean-b", Some(25), &[]),
            filtered,
        ];
        let (rows, files, to_read) = counted_apart(tasks);
        assert_eq!((rows, files), (125, 2));
        let read: Vec<&str> = to_read.iter().map(|t| t.data_file_path()).collect();
        assert_eq!(read, ["deleted", "split", "filtered"]);
    }

    #[test]
    fn counted_rows_come_in_bounded_batches_without_columns() {
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
        let rows = 2 * COUNTED_BATCH_ROWS + 3;
        let batches = row_count_batches(&schema, rows).unwrap();
        assert_eq!(batches.len(), 3);
        assert!(batches
            .iter()
            .all(|b| b.num_columns() == 0 && b.num_rows() as u64 <= COUNTED_BATCH_ROWS));
        let total: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        assert_eq!(total, rows);
        assert!(row_count_batches(&schema, 0).unwrap().is_empty());
    }
}
