//! Applies decoded change batches to the lake in the background, one apply
//! at a time, so the next batches decode while the last ones commit.
//!
//! The writers (one per source table, each holding its table's key index)
//! move into the running apply and come back with its result; an apply
//! never shares them with the consumer loop.
//!
//! A table's batch is launched (`TableWriter::launch`): its files are
//! written while the table's previous commit is still being made, and its
//! own commit goes on in the background. An apply waits for the commits
//! it launched, then merges, unless the consumer loop asks for the next
//! apply first ([`Applier::want_next`]): then they are still in flight
//! when it returns, and the next apply writes its files beside them. A
//! batch is reported (offsets, events, the "committed" log line) only
//! once its commit has landed.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ingest::ChangeBatch;
use lakehouse::apply::{Landed, SignalLog, SourceReader, TableWriter};
use lakehouse::transaction::RetryPolicy;
use lakehouse::{Lake, LakehouseError, TableFiles};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// What one finished apply committed.
#[derive(Debug, Default)]
pub struct Applied {
    /// Per (topic, partition), the next offset to read: everything before
    /// it is in the lake.
    pub next_offsets: BTreeMap<(String, i32), i64>,
    /// Events newly applied (not counting ones an earlier run had applied).
    pub events: usize,
    pub commits: usize,
    /// Batches that cannot be applied, when rejects are allowed (`on_error
    /// = "dead_letter"`); their offsets are not in `next_offsets`.
    pub rejected: Vec<Rejected>,
}

/// A batch no retry can apply: its messages, by position, and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub topic: String,
    pub offsets: Vec<ingest::OffsetRange>,
    pub error: String,
}

/// Per topic, the writer of its table.
type Tables = HashMap<String, TableWriter>;

/// What one apply hands the next.
#[derive(Default)]
struct Writers {
    tables: Tables,
    /// Per topic, truncates held back because the topic's table does not
    /// exist yet (a truncate alone cannot create it): joined with the
    /// topic's next changes, in source order, or applied alone once
    /// another instance has created the table. Their offsets are not
    /// settled meanwhile, so a restart reads them again.
    held: HashMap<String, ChangeBatch>,
}

/// The lake side of `floe ingest`.
pub struct Applier {
    lake: Arc<Lake>,
    metrics: Arc<Metrics>,
    /// `None` while an apply holds them.
    writers: Option<Writers>,
    running: Option<JoinHandle<(Writers, Result<Applied>)>>,
    /// Told when the consumer loop has the next batches ready: the running
    /// apply then leaves its commits in flight instead of waiting.
    next_wanted: Option<Arc<Notify>>,
    tables: usize,
    /// Report batches that cannot be applied instead of failing.
    reject: bool,
    /// Where writers read changes again (a truncate that arrived late).
    source: Option<Arc<dyn SourceReader>>,
    /// What Debezium's signal table said, and the table's name.
    signals: Option<Signals>,
}

/// Debezium's signal table: which source table it is, and what it said.
#[derive(Clone)]
struct Signals {
    /// `schema.table`.
    table: String,
    log: SignalLog,
}

impl Signals {
    fn of(&self, batch: &ChangeBatch) -> bool {
        batch
            .source
            .as_ref()
            .is_some_and(|s| format!("{}.{}", s.schema, s.table) == self.table)
    }
}

impl Applier {
    /// With `reject`, a batch that cannot be applied is reported in
    /// [`Applied::rejected`] and the others go on; without, it fails the
    /// apply.
    pub fn new(lake: Arc<Lake>, metrics: Arc<Metrics>, reject: bool) -> Self {
        Self {
            lake,
            metrics,
            writers: Some(Writers::default()),
            running: None,
            next_wanted: None,
            tables: 0,
            reject,
            source: None,
            signals: None,
        }
    }

    /// Reads Debezium's signal table `table` (`schema.table`) among the
    /// batches, so writers reconcile incremental snapshots asked for there.
    pub fn with_signal_table(mut self, table: &str) -> Self {
        self.signals = (!table.is_empty()).then(|| Signals {
            table: table.to_string(),
            log: SignalLog::default(),
        });
        self
    }

    /// Where the writers read a topic's changes again when a truncate
    /// arrives after changes made later on another partition.
    pub fn with_source_reader(mut self, reader: Arc<dyn SourceReader>) -> Self {
        self.source = Some(reader);
        self
    }

    /// Whether an apply is running.
    pub fn busy(&self) -> bool {
        self.running.is_some()
    }

    /// Tables written to so far.
    pub fn tables(&self) -> usize {
        self.tables
    }

    /// Whether a commit launched by an apply has not landed yet (an empty
    /// [`start`](Self::start) waits for it).
    pub fn in_flight(&self) -> bool {
        self.writers
            .as_ref()
            .is_some_and(|w| w.tables.values().any(TableWriter::in_flight))
    }

    /// The next batches are ready: the running apply returns as soon as
    /// its batches' commits are launched, without waiting for them.
    pub fn want_next(&self) {
        if let Some(next) = &self.next_wanted {
            next.notify_one();
        }
    }

    /// Starts applying `batches` (one commit per batch) in the background.
    /// Only when not [`busy`](Self::busy). Commits still in flight when it
    /// ends are reported by a later apply; [`want_next`](Self::want_next)
    /// makes it end without waiting for them.
    pub fn start(&mut self, batches: Vec<ChangeBatch>) {
        let next = Arc::new(Notify::new());
        self.next_wanted = Some(next.clone());
        self.start_round(batches, Some(next));
    }

    fn start_round(&mut self, batches: Vec<ChangeBatch>, next: Option<Arc<Notify>>) {
        debug_assert!(!self.busy(), "one apply at a time");
        let mut writers = self.writers.take().unwrap_or_default();
        let lake = self.lake.clone();
        let metrics = self.metrics.clone();
        let reject = self.reject;
        let source = self.source.clone();
        // before any table of the round: a snapshot asked for, or a window
        // closed, counts for the tables' batches of the same round
        if let Some(signals) = &self.signals {
            for batch in batches.iter().filter(|b| signals.of(b)) {
                signals.log.record(ingest::signal::signals(batch));
            }
        }
        let log = self.signals.as_ref().map(|s| s.log.clone());
        self.running = Some(tokio::spawn(async move {
            let result = apply_all(
                &lake,
                (source.as_ref(), log.as_ref()),
                &mut writers,
                &batches,
                &metrics,
                (reject, next),
            )
            .await;
            (writers, result)
        }));
    }

    /// Waits for the running apply. Cancel-safe: dropped before it
    /// finishes, the apply goes on and a later call waits for it again.
    /// Without a running apply, returns an empty result at once.
    pub async fn finished(&mut self) -> Result<Applied> {
        let Some(running) = self.running.as_mut() else {
            return Ok(Applied::default());
        };
        let joined = running.await;
        self.running = None;
        self.next_wanted = None;
        let (writers, result) = joined.context("the apply task failed")?;
        self.tables = writers.tables.len();
        self.writers = Some(writers);
        result
    }

    /// Applies `batches` after the running apply, and waits for both and
    /// for every commit in flight.
    pub async fn apply_now(&mut self, batches: Vec<ChangeBatch>) -> Result<Applied> {
        let mut done = self.finished().await?;
        if !batches.is_empty() || self.in_flight() {
            self.start_round(batches, None);
            let more = self.finished().await?;
            done.next_offsets.extend(more.next_offsets);
            done.events += more.events;
            done.commits += more.commits;
            done.rejected.extend(more.rejected);
        }
        Ok(done)
    }

    /// Waits for the running apply, then for each table's merge under way
    /// and one more round: a run that ends (a replay) leaves its tables
    /// merged. `floe ingest` does not wait on stopping: a merge dropped
    /// leaves only unreferenced files, and the next start plans again.
    pub async fn settle(&mut self) -> Result<Applied> {
        let done = self.apply_now(Vec::new()).await?;
        if let Some(writers) = self.writers.as_mut() {
            for writer in writers.tables.values_mut() {
                let table = writer.table().identifier().to_string();
                match writer.merge().await {
                    Ok(report) if report.files_added > 0 || report.data_files_removed > 0 => {
                        self.metrics.merged(&table, &report, report.took);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(%table, "merging small files failed; the table is as it was: {e}")
                    }
                }
            }
        }
        Ok(done)
    }

    /// Gives up the running apply (on a stop that cannot wait). Safe at
    /// any point: a commit is one catalog swap, which either happened,
    /// with the batch's offsets in the table, or did not.
    pub fn abandon(&mut self) {
        if let Some(running) = self.running.take() {
            running.abort();
        }
    }
}

async fn apply_all(
    lake: &Lake,
    // where writers read changes again, and what the signal table said
    shared: (Option<&Arc<dyn SourceReader>>, Option<&SignalLog>),
    writers: &mut Writers,
    batches: &[ChangeBatch],
    metrics: &Metrics,
    // report batches that cannot be applied; the next apply is wanted
    (reject, next): (bool, Option<Arc<Notify>>),
) -> Result<Applied> {
    let mut done = Applied::default();
    // truncates held back join their topic's next changes; those of a
    // topic without changes in this round are tried alone (another
    // instance may have created the table)
    let alone: Vec<String> = writers
        .held
        .keys()
        .filter(|topic| batches.iter().all(|b| &b.topic != *topic))
        .cloned()
        .collect();
    let alone: Vec<ChangeBatch> = alone
        .iter()
        .filter_map(|topic| writers.held.remove(topic))
        .collect();
    for batch in alone.iter().chain(batches) {
        let joined;
        let batch = match writers.held.remove(&batch.topic) {
            Some(first) => {
                joined = lakehouse::apply::join_held(&first, batch)?;
                &joined
            }
            None => batch,
        };
        // a table's later changes never pass one it could not take: were
        // they committed, their offsets would skip the rejected messages
        if let Some(earlier) = done.rejected.iter().find(|r| r.topic == batch.topic) {
            let error = format!("follows a rejected batch of the topic: {}", earlier.error);
            done.rejected.push(Rejected {
                topic: batch.topic.clone(),
                offsets: batch.offsets.clone(),
                error,
            });
            continue;
        }
        match apply_with_retry(lake, shared, &mut writers.tables, batch, metrics, &mut done).await {
            Ok(true) => {}
            Ok(false) => {
                writers.held.insert(batch.topic.clone(), batch.clone());
            }
            Err(e) if reject => {
                metrics.error("apply");
                tracing::error!(topic = %batch.topic, offsets = ?batch.offsets, "cannot apply a batch; its messages go to the dead-letter table: {e:#}");
                let error = format!("{e:#}");
                // the writer may hold state the table never got; a batch
                // it launched and could not land goes first
                if let Some(unlanded) =
                    drop_writer(&mut writers.tables, &batch.topic, metrics, &mut done).await
                {
                    done.rejected.push(Rejected {
                        topic: unlanded.topic.clone(),
                        offsets: unlanded.offsets.clone(),
                        error: error.clone(),
                    });
                }
                done.rejected.push(Rejected {
                    topic: batch.topic.clone(),
                    offsets: batch.offsets.clone(),
                    error,
                });
            }
            Err(e) => return Err(e),
        }
    }
    // merges commit on the table as it is, so the commits in flight land
    // first, unless the next apply is wanted before they have and no
    // merge is due: then they are left in flight for it
    let merge_due = writers
        .tables
        .values()
        .any(|w| w.in_flight() && w.merge_due());
    if let (Some(next), false) = (next, merge_due) {
        let landed = async {
            for writer in writers.tables.values_mut() {
                writer.commit_done().await;
            }
        };
        tokio::select! {
            () = landed => {}
            () = next.notified() => return Ok(done),
        }
    }
    let topics: Vec<String> = writers.tables.keys().cloned().collect();
    for topic in topics {
        let Some(writer) = writers.tables.get_mut(&topic) else {
            continue;
        };
        let landed = writer.land().await;
        report_landed(writer, metrics, &mut done);
        if let Err(e) = landed {
            if !reject {
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot commit a batch of {topic} made in the background"
                )));
            }
            metrics.error("apply");
            tracing::error!(%topic, "cannot commit a batch; its messages go to the dead-letter table: {e:#}");
            if let Some(unlanded) =
                drop_writer(&mut writers.tables, &topic, metrics, &mut done).await
            {
                done.rejected.push(Rejected {
                    topic: unlanded.topic.clone(),
                    offsets: unlanded.offsets.clone(),
                    error: format!("{e:#}"),
                });
            }
        }
    }
    merge_touched(&mut writers.tables, &done, metrics).await;
    Ok(done)
}

/// Drops a topic's writer after an error, reporting what it landed first;
/// the batch it launched and could not land, if any, is returned.
async fn drop_writer(
    writers: &mut Tables,
    topic: &str,
    metrics: &Metrics,
    done: &mut Applied,
) -> Option<ChangeBatch> {
    let mut writer = writers.remove(topic)?;
    if let Err(e) = writer.land().await {
        tracing::warn!(%topic, "a commit in flight did not land: {e}");
    }
    report_landed(&mut writer, metrics, done);
    writer.take_unlanded()
}

/// Accounts for the batches whose commits the writer has landed: metrics,
/// the "committed" log line, and their offsets as settled.
fn report_landed(writer: &mut TableWriter, metrics: &Metrics, done: &mut Applied) {
    let landed = writer.take_landed();
    if landed.is_empty() {
        return;
    }
    let table = writer.table().identifier().to_string();
    for Landed {
        batch,
        stats,
        started,
        landed,
        overlapped,
    } in landed
    {
        let took = landed.saturating_duration_since(started);
        record_batch(metrics, &table, &batch, took);
        if stats.resent > 0 {
            metrics.resent(&table, stats.resent as u64);
            tracing::warn!(topic = %batch.topic, %table, events = stats.resent, "skipped changes Debezium sent again (their source position is one the table already holds)");
        }
        if stats.tail_rows_rewritten > 0 {
            metrics.tail_rewritten(&table, stats.tail_rows_rewritten as u64);
        }
        tracing::info!(
            topic = %batch.topic,
            %table,
            events = batch.num_rows(),
            written = stats.rows_written,
            deleted = stats.rows_deleted,
            truncated = stats.truncated,
            skipped = stats.already_applied,
            before_truncate = stats.before_truncate,
            applied_again = stats.applied_again,
            resent = stats.resent,
            tail_rows_rewritten = stats.tail_rows_rewritten,
            rows_sealed = stats.rows_sealed,
            files_ms = stats.files_ms,
            overlapped,
            ms = took.as_millis() as u64,
            "committed"
        );
        done.events += batch.num_rows() - stats.already_applied;
        // a batch the table already held in full commits nothing
        if stats.already_applied < batch.num_rows() {
            done.commits += 1;
        }
        for r in &batch.offsets {
            done.next_offsets
                .insert((batch.topic.clone(), r.partition), r.last + 1);
        }
    }
    metrics.table_files(&table, TableFiles::of(writer.table().metadata()));
}

/// Merging beside the commits, for each table batches committed to (in
/// this apply, or in flight from the last) and each with a merge under way: a round whose files are written is
/// committed, a table without one starts one in the background, and the
/// next commits never wait for a merge's files. A merge that fails (an
/// outage, a lost race) leaves the table as it was; the next round plans
/// again.
async fn merge_touched(writers: &mut Tables, committed: &Applied, metrics: &Metrics) {
    let mut topics: Vec<String> = committed
        .next_offsets
        .keys()
        .map(|(topic, _)| topic.clone())
        .collect();
    topics.extend(
        writers
            .iter()
            .filter(|(_, w)| w.merging())
            .map(|(t, _)| t.clone()),
    );
    topics.sort_unstable();
    topics.dedup();
    for topic in topics {
        let Some(writer) = writers.get_mut(&topic) else {
            continue;
        };
        let table = writer.table().identifier().to_string();
        match writer.merge_beside().await {
            Ok(report) if report.files_added > 0 || report.data_files_removed > 0 => {
                metrics.merged(&table, &report, report.took);
                metrics.table_files(&table, TableFiles::of(writer.table().metadata()));
            }
            Ok(report) if report.lost_race => metrics.error("merge_lost_race"),
            Ok(_) => {}
            Err(e) => {
                metrics.error("merge");
                tracing::warn!(%table, "merging small files failed; the table is as it was, and the next round tries again: {e}");
            }
        }
    }
}

/// Launches one batch, waiting out outages of the catalog or the object
/// store: the writer is dropped (its index may be ahead of the table) and
/// the batch applied again by a fresh one after a backoff, which is safe
/// because the table's stored offsets skip whatever did commit; a batch
/// the old writer launched and could not land goes first. Errors that no
/// retry can fix (a schema floe cannot apply, a table without a key) stop
/// floe with the batch's position. `false`: the batch is held (truncates
/// of a table the lake does not have yet).
async fn apply_with_retry(
    lake: &Lake,
    (source, signals): (Option<&Arc<dyn SourceReader>>, Option<&SignalLog>),
    writers: &mut Tables,
    batch: &ChangeBatch,
    metrics: &Metrics,
    done: &mut Applied,
) -> Result<bool> {
    // the same policy as every commit's, waiting outages out for as long
    // as they last: ingest's job is to resume when the lake is back
    let mut schedule = RetryPolicy::default().patient().schedule();
    let mut unlanded: Option<ChangeBatch> = None;
    loop {
        let writer = match writers.entry(batch.topic.clone()) {
            Entry::Occupied(w) => Ok(w.into_mut()),
            Entry::Vacant(slot) => match lake.writer(unlanded.as_ref().unwrap_or(batch)).await {
                Ok(w) => {
                    let w = match source {
                        Some(reader) => w.with_source_reader(reader.clone()),
                        None => w,
                    };
                    let w = match signals {
                        Some(log) => w.with_signals(log.clone()),
                        None => w,
                    };
                    tracing::info!(topic = %batch.topic, table = %w.table().identifier(), live_rows = w.live_rows(), "table opened");
                    Ok(slot.insert(w))
                }
                // truncates of a table the lake does not have yet: held
                // back, since changes made before them may still come on
                // another partition and create it
                Err(LakehouseError::NoTableYet { table }) => {
                    tracing::info!(topic = %batch.topic, %table, events = batch.num_rows(), "truncates of a table the lake does not have yet: held until it does");
                    return Ok(false);
                }
                Err(e) => Err(e),
            },
        };
        let result = match writer {
            Ok(writer) => {
                let mut result = Ok(());
                if let Some(earlier) = &unlanded {
                    result = writer.launch(earlier).await;
                }
                if result.is_ok() {
                    unlanded = None;
                    result = writer.launch(batch).await;
                }
                report_landed(writer, metrics, done);
                result
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return Ok(true),
            Err(e) if !e.is_retryable() => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot apply {} ({} events at offsets {:?})",
                        batch.topic,
                        batch.num_rows(),
                        batch.offsets
                    )
                });
            }
            Err(e) => {
                let wait = schedule.after_outage().unwrap_or(Duration::from_secs(30));
                metrics.lake_failed(&e.to_string());
                tracing::warn!(topic = %batch.topic, retry_in_ms = wait.as_millis() as u64, "cannot apply yet: {e}");
                if let Some(earlier) = drop_writer(writers, &batch.topic, metrics, done).await {
                    unlanded = Some(earlier);
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Counts a committed batch's events by operation, its commit time and the
/// source time of its newest event.
fn record_batch(metrics: &Metrics, table: &str, batch: &ChangeBatch, took: Duration) {
    let mut by_op: BTreeMap<&'static str, u64> = BTreeMap::new();
    for i in 0..batch.num_rows() {
        let op = match batch.op(i) {
            Some(ingest::Op::Create) => "c",
            Some(ingest::Op::Update) => "u",
            Some(ingest::Op::Delete) => "d",
            Some(ingest::Op::Read) => "r",
            Some(ingest::Op::Truncate) => "t",
            _ => "other",
        };
        *by_op.entry(op).or_default() += 1;
    }
    for (op, n) in by_op {
        metrics.applied(table, op, n);
    }
    let newest = batch
        .records
        .column_by_name(ingest::columns::SOURCE_TS)
        .and_then(|c| {
            c.as_any()
                .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
                .and_then(arrow::compute::max)
        });
    metrics.committed(took, newest);
}
