//! Running one job: register its files, run its query over the lake,
//! write the result through `lakehouse::sink`, record the run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SQLOptions;
use futures::StreamExt;
use lakehouse::sink::write_result;
use lakehouse::transaction::{JobLineage, StateChange};

use crate::error::AnalyticsError;
use crate::jobs::inputs::{register_inputs, table_ident, ChangesRead};
use crate::jobs::load::run_load;
use crate::jobs::manifest::Job;
use crate::jobs::runs::record_run;
use crate::progress::Progress;
use crate::session::LakeSession;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

/// One run, as `floe_meta.job_runs` keeps it.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub job: String,
    pub run_id: String,
    pub started_at_us: i64,
    pub finished_at_us: i64,
    pub status: RunStatus,
    pub rows_written: i64,
    pub target_snapshot_id: Option<i64>,
    /// `namespace.table` to the snapshot id read, for the lake tables the
    /// query names.
    pub source_snapshots: BTreeMap<String, i64>,
    /// What an incremental job read of each changed table.
    pub changes: BTreeMap<String, ChangesRead>,
    /// The files a batch load loaded.
    pub loaded_files: Vec<String>,
    pub error: Option<String>,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Runs `job` and records the run, failed or not. Returns the record; a
/// failed run is also an error (with the record's reason).
pub async fn run_job(session: &LakeSession, job: &Job) -> Result<RunRecord, AnalyticsError> {
    let started = Instant::now();
    let mut record = RunRecord {
        job: job.name.clone(),
        run_id: uuid::Uuid::new_v4().to_string(),
        started_at_us: now_us(),
        finished_at_us: 0,
        status: RunStatus::Failed,
        rows_written: 0,
        target_snapshot_id: None,
        source_snapshots: BTreeMap::new(),
        changes: BTreeMap::new(),
        loaded_files: Vec::new(),
        error: None,
    };
    tracing::info!(job = %job.name, target = %job.manifest.target, "job started");
    let outcome = execute(session, job, &mut record).await;
    record.finished_at_us = now_us();
    match &outcome {
        Ok(()) => record.status = RunStatus::Succeeded,
        Err(e) => record.error = Some(e.to_string()),
    }
    record_run(&session.lake, &record).await?;
    tracing::info!(
        job = %job.name,
        status = record.status.as_str(),
        rows = record.rows_written,
        seconds = started.elapsed().as_secs_f64(),
        "job finished"
    );
    outcome.map(|()| record)
}

async fn execute(
    session: &LakeSession,
    job: &Job,
    record: &mut RunRecord,
) -> Result<(), AnalyticsError> {
    session.refresh().await?;
    let incremental = register_inputs(session, job, &record.run_id).await?;
    if let Some(spec) = &job.manifest.load {
        let loaded = run_load(session, job, spec, &record.run_id).await;
        // a failed load keeps what it loaded before the failure: say so
        let loaded = match loaded {
            Ok(l) => l,
            Err((l, e)) => {
                record.rows_written = l.rows as i64;
                record.loaded_files = l.files;
                return Err(e);
            }
        };
        record.rows_written = loaded.rows as i64;
        record.target_snapshot_id = loaded.last_snapshot_id;
        record.loaded_files = loaded.files;
        return Ok(());
    }
    record.source_snapshots = source_snapshots(session, &job.sql).await?;
    for (table, (read, until)) in incremental {
        // the changes were read up to `until`: the next run starts there
        if let Some(until) = until {
            record.source_snapshots.insert(table.clone(), until);
        }
        record.changes.insert(table, read);
    }
    let mut progress = Progress::start(format!("job {}", job.name));
    let result = query_result(session, job, &mut progress).await;
    progress.finish();
    let (schema, batches) = result?;
    let ident = table_ident(&job.manifest.target)?;
    let state = StateChange {
        lineage: Some(JobLineage {
            job: job.name.clone(),
            run_id: record.run_id.clone(),
            sources: record.source_snapshots.clone(),
        }),
        ..StateChange::default()
    };
    let written = write_result(
        &session.lake,
        &ident,
        &job.manifest.partition,
        job.manifest.mode,
        &schema,
        &batches,
        state,
    )
    .await?;
    record.rows_written = written.rows as i64;
    record.target_snapshot_id = written.snapshot_id;
    if let Some(predicate) = &job.manifest.fail_when {
        failing_rows(session, &schema, batches, predicate).await?;
    }
    Ok(())
}

/// The rows of `job`'s query, within its time limit. The query only
/// reads: a run past the limit is dropped (which stops its tasks, see
/// `cooperative`) before anything is written.
pub(crate) async fn query_result(
    session: &LakeSession,
    job: &Job,
    progress: &mut Progress,
) -> Result<(Schema, Vec<RecordBatch>), AnalyticsError> {
    let limit = Duration::from_secs(job.manifest.timeout_secs);
    let query = async {
        // a job's SQL is a query; what it writes is decided by its manifest
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false);
        let frame = session.ctx.sql_with_options(&job.sql, options).await?;
        let schema = frame.schema().as_arrow().clone();
        let mut stream = frame.execute_stream().await?;
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            progress.add_rows(batch.num_rows() as u64);
            batches.push(batch);
        }
        Ok((schema, batches))
    };
    match tokio::time::timeout(limit, query).await {
        Ok(result) => result,
        Err(_) => {
            tracing::error!(job = %job.name, seconds = limit.as_secs(), "job query timed out");
            Err(AnalyticsError::TimedOut(limit))
        }
    }
}

/// Fails when any of the result's rows match `predicate`, naming them.
async fn failing_rows(
    session: &LakeSession,
    schema: &Schema,
    batches: Vec<RecordBatch>,
    predicate: &str,
) -> Result<(), AnalyticsError> {
    let result = MemTable::try_new(Arc::new(schema.clone()), vec![batches])?;
    let ctx = &session.ctx;
    let frame = ctx.read_table(Arc::new(result))?;
    let filter = frame.parse_sql_expr(predicate)?;
    let matching = frame.filter(filter)?.collect().await?;
    let count: usize = matching.iter().map(|b| b.num_rows()).sum();
    if count == 0 {
        return Ok(());
    }
    let shown = datafusion::arrow::util::pretty::pretty_format_batches(&matching)?;
    Err(AnalyticsError::Failed(format!(
        "{count} result rows match fail_when ({predicate}):\n{shown}"
    )))
}

/// The current snapshot of every lake table the query names.
async fn source_snapshots(
    session: &LakeSession,
    sql: &str,
) -> Result<BTreeMap<String, i64>, AnalyticsError> {
    let catalog = session.lake.catalog().as_ref();
    let lowered = sql.to_lowercase();
    let mut out = BTreeMap::new();
    for ns in catalog.list_namespaces(None).await? {
        for ident in catalog.list_tables(&ns).await? {
            let name = format!("{}.{}", ns.to_url_string(), ident.name());
            if !lowered.contains(&name.to_lowercase()) {
                continue;
            }
            let table = catalog.load_table(&ident).await?;
            if let Some(id) = table.metadata().current_snapshot_id() {
                out.insert(name, id);
            }
        }
    }
    Ok(out)
}
