//! Plans that stop when asked: no task runs a plan for long without
//! yielding to the scheduler.
//!
//! A statement is cancelled by dropping its stream, which aborts the tasks
//! running its partitions; an aborted task stops at its next yield.
//! DataFusion makes the leaves of a plan yield (its `EnsureCooperative`
//! rule), spending tokio's budget of 128 units per task poll, one per
//! batch. That is not enough in three ways, each seen in `floe sql`:
//!
//! - A join emits batch after batch for one probe batch without polling a
//!   leaf: a cross join of two 19,000-row tables ran on for minutes after
//!   Ctrl-C. Joins and unnests get a `CooperativeExec` on their output.
//! - 128 batches can be minutes of work when an operator above the leaf is
//!   slow per batch (a projection building a 10,000-element list per row
//!   ran 28 s after Ctrl-C). So every input of every operator is wrapped
//!   in a [`TimeSliceExec`]: when the task has run for [`TIME_SLICE`]
//!   since the wrapper last yielded, it yields before it hands over the
//!   next batch.
//! - A nested-loop join with a selective filter works through a whole
//!   probe batch against every build row before it reads again (a
//!   20,000 x 20,000 join on `a + b = 7`: 11 s after Ctrl-C); an unnest
//!   expands, and a projection builds, values for a whole batch in one
//!   call. Their inputs also split batches, to as many rows as the
//!   consumer gets through in [`SPLIT_WORK`].
//!
//! What no wrapper reaches is one kernel call that runs long, such as
//! DataFusion sorting an input without columns (its size estimate is
//! zero, so it is concatenated and sorted in one piece): the shell
//! abandons such a statement at once, and its work ends with the call.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{internal_err, Result, Statistics};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{Stream, StreamExt};

/// How long an operator may work between two batches of its input before
/// its task yields.
pub const TIME_SLICE: Duration = Duration::from_millis(10);

/// How much work a split input hands over at once: more than a time slice,
/// since smaller batches make the consumer slower, and well under the
/// second that Ctrl-C may take.
const SPLIT_WORK: Duration = Duration::from_millis(100);

/// The fewest rows a split input hands over at once: fewer would cost more
/// than they save (DataFusion's nested-loop join takes a slower path for
/// probe batches under a tenth of its batch size).
const MIN_SLICE_ROWS: usize = 1024;

/// The physical optimizer rule; it runs after DataFusion's own.
#[derive(Debug, Default)]
pub struct YieldOften;

/// Whether `plan` can emit many batches per batch it reads.
fn multiplies_rows(plan: &dyn ExecutionPlan) -> bool {
    let name = plan.name();
    name.contains("Join") || name == "UnnestExec"
}

/// Which input of `plan` to split: one whose every row may cost it a lot
/// of work in one call (the probe side of a nested-loop join, against all
/// build rows; the lists an unnest expands; what a projection builds).
fn input_to_split(plan: &dyn ExecutionPlan) -> Option<usize> {
    match plan.name() {
        "NestedLoopJoinExec" => Some(1),
        "UnnestExec" => Some(0),
        // a projection can build large values for each row (a list, a
        // long string) in one call for the whole batch
        "ProjectionExec" => Some(0),
        _ => None,
    }
}

/// Operators that do no work of their own on a batch.
fn passes_through(plan: &dyn ExecutionPlan) -> bool {
    matches!(plan.name(), "CooperativeExec" | "TimeSliceExec")
}

impl PhysicalOptimizerRule for YieldOften {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if node.children().is_empty() || passes_through(node.as_ref()) {
                return Ok(Transformed::no(node));
            }
            let split_at = input_to_split(node.as_ref());
            let inputs = node
                .children()
                .into_iter()
                .enumerate()
                .map(|(i, child)| {
                    Arc::new(TimeSliceExec::new(Arc::clone(child), split_at == Some(i))) as _
                })
                .collect();
            let mut sliced = node.with_new_children(inputs)?;
            if multiplies_rows(sliced.as_ref()) {
                sliced = Arc::new(CooperativeExec::new(sliced));
            }
            Ok(Transformed::yes(sliced))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "YieldOften"
    }

    fn schema_check(&self) -> bool {
        // the wrappers pass their input's batches through unchanged
        true
    }
}

/// Passes its input through, but yields before handing over a batch when
/// its task has run for [`TIME_SLICE`] since this stream last yielded; if
/// asked to split, it also hands a batch over in slices of as many rows as
/// the consumer gets through in [`SPLIT_WORK`].
#[derive(Debug)]
pub struct TimeSliceExec {
    input: Arc<dyn ExecutionPlan>,
    split: bool,
}

impl TimeSliceExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, split: bool) -> Self {
        Self { input, split }
    }
}

impl DisplayAs for TimeSliceExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TimeSliceExec: {} ms", TIME_SLICE.as_millis())?;
        if self.split {
            write!(f, ", splits batches")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for TimeSliceExec {
    fn name(&self) -> &str {
        "TimeSliceExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self::new(input, self.split))),
            _ => internal_err!("TimeSliceExec takes exactly one input"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        Ok(Box::pin(TimeSliceStream {
            input: self.input.execute(partition, context)?,
            split: self.split,
            running_since: None,
            handed_over: None,
            // the first batch must not take long either: start small and
            // grow to what the consumer gets through
            rows_per_slice: if self.split {
                MIN_SLICE_ROWS
            } else {
                usize::MAX
            },
            held: None,
        }))
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Statistics> {
        self.input.partition_statistics(partition)
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }
}

struct TimeSliceStream {
    input: SendableRecordBatchStream,
    split: bool,
    /// Since when the task has run without this stream yielding.
    running_since: Option<Instant>,
    /// When the consumer last got rows from here, and how many; the time
    /// since is what it spent on them.
    handed_over: Option<(Instant, usize)>,
    /// The most rows handed over at once (when splitting).
    rows_per_slice: usize,
    /// The rest of a split batch.
    held: Option<RecordBatch>,
}

impl TimeSliceStream {
    /// Sizes the next slice to what the consumer gets through in
    /// [`SPLIT_WORK`], judged by the last.
    fn resize_slice(&mut self, now: Instant) {
        if let Some((at, rows)) = self.handed_over {
            let spent = now.duration_since(at).as_secs_f64().max(1e-9);
            let fits = rows as f64 * SPLIT_WORK.as_secs_f64() / spent;
            // shrink at once, grow at most twofold
            let most = self.rows_per_slice.max(rows).saturating_mul(2);
            self.rows_per_slice = (fits as usize).clamp(MIN_SLICE_ROWS, most);
            tracing::trace!(rows, ?spent, next = self.rows_per_slice, "time slice");
        }
    }

    fn hand_over(&mut self, batch: RecordBatch, now: Instant) -> Poll<Option<Result<RecordBatch>>> {
        let batch = if self.split && batch.num_rows() > self.rows_per_slice {
            let rest = batch.num_rows() - self.rows_per_slice;
            self.held = Some(batch.slice(self.rows_per_slice, rest));
            batch.slice(0, self.rows_per_slice)
        } else {
            batch
        };
        self.handed_over = Some((now, batch.num_rows()));
        Poll::Ready(Some(Ok(batch)))
    }

    fn yielded(&mut self) {
        self.running_since = None;
        self.handed_over = None;
    }
}

impl Stream for TimeSliceStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let now = Instant::now();
        if self.split {
            self.resize_slice(now);
        }
        let running_since = *self.running_since.get_or_insert(now);
        if now.duration_since(running_since) >= TIME_SLICE {
            self.yielded();
            // tokio's yield defers the wake-up until the scheduler has run
            // the other tasks; a plain wake puts this task in the worker's
            // LIFO slot, where it runs again first, and an aborted
            // statement waiting behind it (Ctrl-C) waits on
            let yielding = std::pin::pin!(tokio::task::yield_now());
            let _first_poll_is_pending = yielding.poll(cx);
            return Poll::Pending;
        }
        if let Some(batch) = self.held.take() {
            return self.hand_over(batch, now);
        }
        match self.input.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(batch))) => self.hand_over(batch, Instant::now()),
            Poll::Pending => {
                self.yielded();
                Poll::Pending
            }
            other => other,
        }
    }
}

impl RecordBatchStream for TimeSliceStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use datafusion::prelude::SessionContext;
    use futures::task::noop_waker_ref;

    fn numbers(batches: &[(i64, i64)]) -> SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batches: Vec<Result<RecordBatch>> = batches
            .iter()
            .map(|&(from, to)| {
                let column = Arc::new(Int64Array::from_iter_values(from..to));
                Ok(RecordBatch::try_new(Arc::clone(&schema), vec![column])?)
            })
            .collect();
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(batches),
        ))
    }

    fn sliced(input: SendableRecordBatchStream, split: bool) -> TimeSliceStream {
        TimeSliceStream {
            input,
            split,
            running_since: None,
            handed_over: None,
            rows_per_slice: if split { MIN_SLICE_ROWS } else { usize::MAX },
            held: None,
        }
    }

    /// Polls `stream` to its end as a consumer that spends `work(rows)` on
    /// each batch; returns the batch sizes and how often it was told to
    /// wait.
    fn consume(
        mut stream: TimeSliceStream,
        work: impl Fn(usize) -> Duration,
    ) -> (Vec<usize>, Vec<i64>, usize) {
        let mut cx = Context::from_waker(noop_waker_ref());
        let (mut sizes, mut values, mut pendings) = (vec![], vec![], 0);
        loop {
            match Pin::new(&mut stream).poll_next(&mut cx) {
                Poll::Pending => pendings += 1,
                Poll::Ready(None) => return (sizes, values, pendings),
                Poll::Ready(Some(batch)) => {
                    let batch = batch.unwrap();
                    let column = batch
                        .column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap();
                    values.extend(column.values().iter());
                    sizes.push(batch.num_rows());
                    std::thread::sleep(work(batch.num_rows()));
                }
            }
        }
    }

    #[test]
    fn a_slow_consumer_is_made_to_yield_and_a_fast_one_is_not() {
        let batches = [(0, 10), (10, 20), (20, 30), (30, 40)];
        let (sizes, values, pendings) = consume(sliced(numbers(&batches), false), |_| {
            Duration::from_millis(15)
        });
        assert_eq!(sizes, vec![10; 4]);
        assert_eq!(values, (0..40).collect::<Vec<_>>());
        // before each poll after a batch, the last (which ends it) too
        assert_eq!(pendings, 4);
        let (_, _, pendings) = consume(sliced(numbers(&batches), false), |_| Duration::ZERO);
        assert_eq!(pendings, 0);
    }

    #[test]
    fn a_split_input_hands_over_what_the_consumer_gets_through() {
        // 8,192-row batches; the consumer needs 50 us a row, so 2,000 rows
        // fit in the 100 ms of work a slice is sized for
        let batches = [(0, 8192), (8192, 16384), (16384, 24576)];
        let (sizes, values, _) = consume(sliced(numbers(&batches), true), |rows| {
            Duration::from_micros(50 * rows as u64)
        });
        assert_eq!(values, (0..24576).collect::<Vec<_>>(), "{sizes:?}");
        assert_eq!(sizes[0], MIN_SLICE_ROWS, "{sizes:?}");
        assert!(sizes.iter().all(|&n| n <= 4096), "{sizes:?}");
        let last = &sizes[sizes.len() / 2..];
        assert!(
            last.iter().filter(|&&n| n >= 1200).count() >= last.len() / 2,
            "{sizes:?}"
        );
        // batches smaller than the smallest slice pass as they are
        let small = [(0, 300), (300, 600), (600, 700)];
        let (sizes, _, _) = consume(sliced(numbers(&small), true), |_| {
            Duration::from_millis(150)
        });
        assert_eq!(sizes, vec![300, 300, 100]);
        // a quick consumer soon gets whole batches again
        let (sizes, _, _) = consume(sliced(numbers(&batches), true), |_| Duration::ZERO);
        assert_eq!(sizes.last(), Some(&8192), "{sizes:?}");
    }

    #[tokio::test]
    async fn every_input_is_time_sliced_and_long_row_work_is_split() {
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(YieldOften))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let explain = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let plan = ctx
                    .sql(sql)
                    .await
                    .unwrap()
                    .create_physical_plan()
                    .await
                    .unwrap();
                let text = displayable(plan.as_ref()).indent(false).to_string();
                text
            }
        };
        let cross = "SELECT sum(a.value * b.value) AS s FROM range(10) a CROSS JOIN range(10) b";
        let text = explain(cross).await;
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let join = lines
            .iter()
            .position(|l| l.starts_with("CrossJoinExec"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(lines[join - 1].starts_with("CooperativeExec"), "{text}");
        // every operator with inputs reads them through a time slice, split
        // under the operators that may work long on one row
        let inputs = |text: &str| -> Vec<(String, String)> {
            let indent = |l: &str| l.len() - l.trim_start().len();
            let raw: Vec<&str> = text.lines().collect();
            let mut pairs = vec![];
            for (i, line) in raw.iter().enumerate().skip(1) {
                let parent = raw[..i].iter().rev().find(|p| indent(p) < indent(line));
                if let Some(parent) = parent {
                    pairs.push((parent.trim().to_string(), line.trim().to_string()));
                }
            }
            pairs
        };
        for (parent, input) in inputs(&text) {
            let name = parent.split(':').next().unwrap_or_default();
            match name {
                "TimeSliceExec" | "CooperativeExec" => continue,
                "ProjectionExec" | "UnnestExec" => {
                    assert_eq!(input, "TimeSliceExec: 10 ms, splits batches", "{text}")
                }
                _ => assert_eq!(input, "TimeSliceExec: 10 ms", "{text}"),
            }
        }
        // the probe side of a nested-loop join is split, the build side not
        let nested =
            explain("SELECT count(*) FROM range(10) a JOIN range(10) b ON a.value + b.value = 7")
                .await;
        let join: Vec<String> = inputs(&nested)
            .into_iter()
            .filter(|(parent, _)| parent.starts_with("NestedLoopJoinExec"))
            .map(|(_, input)| input)
            .collect();
        assert_eq!(
            join,
            vec![
                "TimeSliceExec: 10 ms",
                "TimeSliceExec: 10 ms, splits batches"
            ],
            "{nested}"
        );
        assert!(
            inputs(&nested).iter().any(|(parent, input)| {
                parent.starts_with("ProjectionExec") && input.ends_with("splits batches")
            }),
            "{nested}"
        );
        // and the plans still answer
        let rows = ctx.sql(cross).await.unwrap().collect().await.unwrap();
        let s = datafusion::arrow::util::pretty::pretty_format_batches(&rows)
            .unwrap()
            .to_string();
        assert!(s.contains("| 2025 |"), "{s}");
    }
}
