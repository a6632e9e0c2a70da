//! `floe jobs schedule`: runs each task — a batch job, or a table
//! maintenance operation — whenever its cron schedule falls due, until
//! stopped. One task never runs twice at once (a slot that comes while the
//! last run is still going is skipped and logged); a failed run is logged
//! (a job's is also recorded like any other) and the next slot comes as
//! usual.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cron::Schedule;
use futures::future::BoxFuture;
use lakehouse::Lake;
use tokio::task::JoinHandle;

use crate::error::AnalyticsError;
use crate::jobs::manifest::Job;
use crate::jobs::run::run_job;
use crate::session::LakeSession;

/// What one run of a task does.
pub type TaskRun = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

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
                    run_job(&session, &job)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
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

/// Parses every task's schedule.
fn plan(tasks: Vec<Task>) -> Result<Vec<Scheduled>, AnalyticsError> {
    let now = Utc::now();
    let mut out = Vec::new();
    for task in tasks {
        let schedule = Schedule::from_str(&task.schedule).map_err(|e| {
            AnalyticsError::Usage(format!(
                "{}: schedule {:?} is not a cron expression with seconds \
                 (sec min hour day-of-month month day-of-week): {e}",
                task.name, task.schedule
            ))
        })?;
        let next = schedule.after(&now).next();
        tracing::info!(task = %task.name, schedule = %task.schedule, next = ?next, "scheduled");
        out.push(Scheduled {
            task,
            schedule,
            next,
            running: None,
        });
    }
    Ok(out)
}

/// Runs `tasks` on their schedules until `stop` completes, then waits for
/// the runs in progress.
pub async fn schedule(
    tasks: Vec<Task>,
    stop: impl Future<Output = ()>,
) -> Result<(), AnalyticsError> {
    let mut planned = plan(tasks)?;
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
                tracing::warn!(task = %s.task.name, "the last run is still going: this slot is skipped");
                continue;
            }
            let (name, run) = (s.task.name.clone(), s.task.run.clone());
            s.running = Some(tokio::spawn(async move {
                if let Err(e) = run().await {
                    tracing::error!(task = %name, "run failed: {e}");
                }
            }));
        }
    }
    tracing::info!("stopping: waiting for the runs in progress");
    for s in planned {
        if let Some(running) = s.running {
            let _ = running.await;
        }
    }
    Ok(())
}
