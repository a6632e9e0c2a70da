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

use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
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
    let tasks: Vec<FileScanTask> = builder
        .build()
        .map_err(iceberg)?
        .plan_files()
        .await
        .map_err(iceberg)?
        .try_collect()
        .await
        .map_err(iceberg)?;
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
}
