//! `floe jobs schedule`: runs each job whenever its cron schedule falls
//! due, until stopped. One job never runs twice at once (a slot that comes
//! while the last run is still going is skipped and logged); a failed run
//! is recorded like any other and the job's next slot comes as usual.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cron::Schedule;
use lakehouse::Lake;
use tokio::task::JoinHandle;

use crate::error::AnalyticsError;
use crate::jobs::manifest::Job;
use crate::jobs::run::run_job;
use crate::session::LakeSession;

struct Scheduled {
    job: Job,
    schedule: Schedule,
    next: Option<DateTime<Utc>>,
    running: Option<JoinHandle<()>>,
}

/// Parses every job's schedule; jobs without one are left out.
fn plan(jobs: Vec<Job>) -> Result<Vec<Scheduled>, AnalyticsError> {
    let now = Utc::now();
    let mut out = Vec::new();
    for job in jobs {
        let Some(expr) = job.manifest.schedule.clone() else {
            continue;
        };
        let schedule = Schedule::from_str(&expr).map_err(|e| {
            AnalyticsError::Usage(format!(
                "job {}: schedule {expr:?} is not a cron expression with seconds \
                 (sec min hour day-of-month month day-of-week): {e}",
                job.name
            ))
        })?;
        let next = schedule.after(&now).next();
        tracing::info!(job = %job.name, schedule = %expr, next = ?next, "scheduled");
        out.push(Scheduled {
            job,
            schedule,
            next,
            running: None,
        });
    }
    Ok(out)
}

/// Runs `jobs` on their schedules until `stop` completes, then waits for
/// the runs in progress.
pub async fn schedule(
    lake: Arc<Lake>,
    jobs: Vec<Job>,
    stop: impl Future<Output = ()>,
) -> Result<(), AnalyticsError> {
    let mut planned = plan(jobs)?;
    if planned.is_empty() {
        return Err(AnalyticsError::Usage("no job has a schedule".into()));
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
                tracing::warn!(job = %s.job.name, "the last run is still going: this slot is skipped");
                continue;
            }
            let (lake, job) = (lake.clone(), s.job.clone());
            s.running = Some(tokio::spawn(async move {
                // a session per run: each registers its own files
                let result = match LakeSession::over(lake).await {
                    Ok(session) => run_job(&session, &job).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::error!(job = %job.name, "run failed: {e}");
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
