//! `floe jobs schedule`: runs each task — a batch job, or a table
//! maintenance operation — whenever its cron schedule falls due, until
//! stopped. One task never runs twice at once (a slot that comes while the
//! last run is still going is skipped and logged). Every run is logged at
//! the default level with the task's name first, what it did or why it
//! failed; a failed run (a job's is also recorded like any other) does not
//! stop the others, and its next slot comes as usual.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cron::Schedule;
use futures::future::BoxFuture;
use lakehouse::Lake;
use tokio::task::JoinHandle;

use crate::error::AnalyticsError;
use crate::jobs::manifest::Job;
use crate::jobs::run::run_job;
use crate::session::LakeSession;

/// What one run of a task does: `Ok` with a line saying what it did, or
/// why it failed.
pub type TaskRun = Arc<dyn Fn() -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// Something run on a cron schedule.
#[derive(Clone)]
pub struct Task {
    /// How logs name it: the job's name, `maintain.compact`, ...
    pub name: String,
    /// Cron with seconds: sec min hour day-of-month month day-of-week.
    pub schedule: String,
    pub run: TaskRun,
}

/// The jobs with a schedule as tasks; each run opens its own session.
pub fn job_tasks(lake: Arc<Lake>, jobs: Vec<Job>) -> Vec<Task> {
    jobs.into_iter()
        .filter_map(|job| {
            let schedule = job.manifest.schedule.clone()?;
            let lake = lake.clone();
            let name = job.name.clone();
            let run: TaskRun = Arc::new(move || {
                let (lake, job) = (lake.clone(), job.clone());
                Box::pin(async move {
                    // a session per run: each registers its own files
                    let session = LakeSession::over(lake).await.map_err(|e| e.to_string())?;
                    let record = run_job(&session, &job).await.map_err(|e| e.to_string())?;
                    Ok(format!(
                        "{} rows written to {} (run {})",
                        record.rows_written, job.manifest.target, record.run_id
                    ))
                })
            });
            Some(Task {
                name,
                schedule,
                run,
            })
        })
        .collect()
}

struct Scheduled {
    task: Task,
    schedule: Schedule,
    next: Option<DateTime<Utc>>,
    running: Option<JoinHandle<()>>,
}

/// `text` as a cron schedule, or why it is not one.
pub(crate) fn parse_cron(text: &str) -> Result<Schedule, String> {
    Schedule::from_str(text).map_err(|e| {
        format!(
            "schedule {text:?} is not a cron expression with seconds \
             (sec min hour day-of-month month day-of-week): {e}"
        )
    })
}

/// Parses every task's schedule; a task whose schedule does not parse is
/// logged and left out, the others are scheduled.
fn plan(tasks: Vec<Task>) -> Vec<Scheduled> {
    let now = Utc::now();
    let mut out = Vec::new();
    for task in tasks {
        let schedule = match parse_cron(&task.schedule) {
            Ok(schedule) => schedule,
            Err(e) => {
                tracing::error!("{}: not scheduled: {e}", task.name);
                continue;
            }
        };
        let next = schedule.after(&now).next();
        match next {
            Some(next) => tracing::info!(
                "{}: scheduled ({}), next run {next}",
                task.name,
                task.schedule
            ),
            None => tracing::warn!(
                "{}: schedule {} never comes again",
                task.name,
                task.schedule
            ),
        }
        out.push(Scheduled {
            task,
            schedule,
            next,
            running: None,
        });
    }
    out
}

/// Runs `tasks` on their schedules until `stop` completes, then waits for
/// the runs in progress.
pub async fn schedule(
    tasks: Vec<Task>,
    stop: impl Future<Output = ()>,
) -> Result<(), AnalyticsError> {
    let mut planned = plan(tasks);
    if planned.is_empty() {
        return Err(AnalyticsError::Usage(
            "nothing has a schedule (no job, and maintenance is off)".into(),
        ));
    }
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        let now = Utc::now();
        for s in &mut planned {
            if s.running.as_ref().is_some_and(JoinHandle::is_finished) {
                s.running = None;
            }
            let Some(due) = s.next else { continue };
            if now < due {
                continue;
            }
            s.next = s.schedule.after(&now).next();
            if s.running.is_some() {
                tracing::warn!(
                    "{}: the last run is still going: this slot is skipped",
                    s.task.name
                );
                continue;
            }
            let (name, run) = (s.task.name.clone(), s.task.run.clone());
            s.running = Some(tokio::spawn(async move {
                let started = Instant::now();
                let result = run().await;
                let took = started.elapsed().as_secs_f64();
                match result {
                    Ok(did) => tracing::info!("{name}: done in {took:.1} s: {did}"),
                    Err(e) => tracing::error!("{name}: failed after {took:.1} s: {e}"),
                }
            }));
        }
    }
    tracing::info!("stopping: waiting for the runs in progress (Ctrl-C again stops them)");
    let mut running: Vec<(String, JoinHandle<()>)> = planned
        .into_iter()
        .filter_map(|s| Some((s.task.name, s.running?)))
        .collect();
    let all = futures::future::join_all(running.iter_mut().map(|(_, r)| r));
    tokio::select! {
        _ = all => {}
        _ = tokio::signal::ctrl_c() => {
            for (name, run) in &running {
                if !run.is_finished() {
                    tracing::warn!("{name}: stopped before it finished");
                    run.abort();
                }
            }
        }
    }
    Ok(())
}
