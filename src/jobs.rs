//! `floe jobs`: list and run the batch jobs of a jobs folder.

use std::path::PathBuf;

use analytics::jobs::inputs::ChangesRead;
use analytics::jobs::{load_jobs, run_job};
use analytics::LakeSession;
use anyhow::{Context, Result};

#[derive(clap::Args, Debug)]
pub struct JobsArgs {
    /// The configuration file; its [lake] and [maintain] sections are read.
    #[arg(long, env = "FLOE_CONFIG", default_value = "floe.toml", global = true)]
    config: PathBuf,

    /// The folder of job manifests (`NAME.toml`) and their queries.
    /// Default: `[jobs] dir` of the configuration file, else
    /// `analytics/jobs`, both beside the configuration file.
    #[arg(long, env = "FLOE_JOBS_DIR", global = true, value_name = "DIR")]
    jobs_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: JobsCommand,
}

#[derive(clap::Subcommand, Debug)]
enum JobsCommand {
    /// List the jobs: name, target table, write mode, schedule.
    List,
    /// Run one job now and record the run in floe_meta.job_runs.
    ///
    /// Prints the rows written and the target's new snapshot; a job whose
    /// `fail_when` matches a result row, or whose query fails, exits with
    /// an error after recording the failed run.
    Run {
        /// The job's name (its manifest's file name without `.toml`).
        name: String,
    },
    /// Run scheduled jobs and table maintenance until stopped.
    ///
    /// Every job with a schedule runs whenever it falls due, and table
    /// maintenance on the [maintain] section's schedules (compaction every
    /// 10 minutes, expiry hourly, orphan cleanup daily unless configured
    /// otherwise). SIGINT or SIGTERM stop it once the runs in progress
    /// finish; a second Ctrl-C stops those too. A broken job manifest is
    /// logged and left out; the other jobs run.
    Schedule {
        /// Run the jobs only, no maintenance.
        #[arg(long)]
        no_maintenance: bool,
    },
}

pub fn run(args: JobsArgs) -> Result<()> {
    let dir = crate::config::jobs_dir(&args.config, args.jobs_dir.as_deref())?;
    let folder = load_jobs(&dir)?;
    match args.command {
        JobsCommand::List => {
            println!("{:<32} {:<40} {:<34} schedule", "job", "target", "mode");
            for job in &folder.jobs {
                let m = &job.manifest;
                println!(
                    "{:<32} {:<40} {:<34} {}",
                    job.name,
                    m.target,
                    mode_name(m),
                    m.schedule.as_deref().unwrap_or("-")
                );
            }
            for broken in &folder.broken {
                println!("{:<32} broken: {}", broken.name, broken.reason);
            }
            // maintenance, when the configuration file can be read
            if let Ok(maintain) = crate::config::load_maintain(&args.config) {
                for operation in lakehouse::maintain::Operation::ALL {
                    for schedule in maintain.schedules(operation) {
                        let tables =
                            crate::maintain::scheduled_tables(&maintain, operation, &schedule);
                        println!(
                            "{:<32} {:<40} {:<34} {schedule}",
                            format!("maintain.{}", operation.name()),
                            tables,
                            "maintenance"
                        );
                    }
                }
            }
            Ok(())
        }
        JobsCommand::Schedule { no_maintenance } => {
            let maintain = crate::config::load_maintain(&args.config)?;
            let lake = crate::config::load_lake(&args.config)?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(async {
                let lake = std::sync::Arc::new(lakehouse::Lake::open(&lake).await?);
                let mut sigterm =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .context("cannot listen for SIGTERM")?;
                let stop = async move {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = sigterm.recv() => {}
                    }
                };
                for broken in &folder.broken {
                    tracing::error!(
                        "{}: broken, not scheduled: {} ({})",
                        broken.name,
                        broken.reason,
                        broken.path.display()
                    );
                }
                let mut tasks = analytics::jobs::job_tasks(lake.clone(), folder.jobs);
                let scheduled_jobs = tasks.len();
                if !no_maintenance {
                    tasks.extend(crate::maintain::scheduled_tasks(lake, &maintain)?);
                }
                eprintln!(
                    "floe jobs schedule: {scheduled_jobs} jobs and {} maintenance tasks; stop with Ctrl-C or SIGTERM",
                    tasks.len() - scheduled_jobs
                );
                analytics::jobs::schedule(tasks, stop).await?;
                anyhow::Ok(())
            })
        }
        JobsCommand::Run { name } => {
            let job = folder.job(&name)?;
            let lake = crate::config::load_lake(&args.config)?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(async {
                let session = LakeSession::open(&lake).await?;
                let record = run_job(&session, job).await.with_context(|| {
                    format!("job {name} failed (recorded in floe_meta.job_runs)")
                })?;
                println!(
                    "{name}: {} rows written to {} in {:.1} s (run {})",
                    record.rows_written,
                    job.manifest.target,
                    (record.finished_at_us - record.started_at_us) as f64 / 1e6,
                    record.run_id
                );
                if job.manifest.load.is_some() && record.loaded_files.is_empty() {
                    println!("  no new files to load");
                }
                if !record.loaded_files.is_empty() {
                    println!(
                        "  loaded {} files: {}",
                        record.loaded_files.len(),
                        record.loaded_files.join(", ")
                    );
                }
                for (table, read) in &record.changes {
                    match read {
                        ChangesRead::Since { snapshot, rows } => println!(
                            "  incremental: {rows} changed rows of {table} since snapshot {snapshot}"
                        ),
                        ChangesRead::Everything => {
                            println!("  incremental: all of {table} (no earlier run to start from)")
                        }
                    }
                }
                anyhow::Ok(())
            })
        }
    }
}

/// How `floe jobs list` shows a job's write mode.
fn mode_name(m: &analytics::jobs::JobManifest) -> String {
    let mode = match m.mode {
        lakehouse::sink::WriteMode::Overwrite => "overwrite",
        lakehouse::sink::WriteMode::Append => "append",
        lakehouse::sink::WriteMode::OverwritePartitions => "overwrite_partitions",
    };
    match m.incremental {
        Some(_) => format!("{mode}, incremental"),
        None => mode.to_string(),
    }
}
