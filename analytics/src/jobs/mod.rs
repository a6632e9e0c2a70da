//! Batch jobs: a SQL query over the lake (and the files it names) whose
//! result becomes an Iceberg table. A job is a manifest, `NAME.toml`, next
//! to its query in a jobs folder (`analytics/jobs/`):
//!
//! ```toml
//! description = "zone x day: pickups, revenue, average fare and distance"
//! target = "analytics.zone_performance_metrics"   # namespace.table
//! partition = ["month(day)"]                      # optional
//! mode = "overwrite"                              # or "append"
//! schedule = "0 15 * * * *"                       # cron, with seconds
//! sql = "zone_performance_metrics.sql"
//!
//! [sources.zones]                                 # job.sources.zones in the SQL
//! format = "csv"
//! path = "../data/taxi_zones.csv"                 # relative to the manifest
//! ```
//!
//! Every run, failed or not, is a row of `floe_meta.job_runs`, and the
//! snapshot it writes names the run and the source snapshots it read.
//! [`inputs`] registers what the query reads besides lake tables
//! (`job.sources.*`, `job.changes.*` for incremental jobs, `job_run_id()`);
//! [`load`] runs batch loads, one file per snapshot.

pub mod inputs;
pub mod load;
pub mod manifest;
pub mod run;
pub mod runs;
pub mod schedule;
pub mod sources;

pub use manifest::{load_jobs, BrokenJob, Job, JobManifest, JobsFolder, Source};
pub use run::{run_job, RunRecord, RunStatus};
pub use schedule::{job_tasks, schedule, Task, TaskRun};
