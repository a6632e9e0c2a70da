//! Job manifests: reading `analytics/jobs/*.toml` and checking them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lakehouse::sink::WriteMode;
use serde::Deserialize;

use crate::error::AnalyticsError;
use crate::jobs::load::LoadSpec;
use crate::jobs::sources::weather::WeatherSpec;

/// A job's manifest, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobManifest {
    #[serde(default)]
    pub description: String,
    /// The table the result goes to, `namespace.table`.
    pub target: String,
    /// Partition fields of the target when floe creates it.
    #[serde(default)]
    pub partition: Vec<String>,
    pub mode: WriteMode,
    /// When `floe jobs schedule` runs it (cron with seconds:
    /// `sec min hour day-of-month month day-of-week`).
    #[serde(default)]
    pub schedule: Option<String>,
    /// The query, relative to the manifest.
    pub sql: PathBuf,
    /// Files the query reads, as `job.sources.NAME`.
    #[serde(default)]
    pub sources: BTreeMap<String, Source>,
    /// Lake tables whose changes since the last run the query reads, as
    /// `job.changes.TABLE`.
    #[serde(default)]
    pub incremental: Option<Incremental>,
    /// A predicate over the result's rows; when any row matches, the run
    /// fails (after writing the result), e.g. a failed check of severity
    /// `error`.
    #[serde(default)]
    pub fail_when: Option<String>,
    /// Run the query once per file of a folder or bucket (`job.sources.file`),
    /// loading each file once.
    #[serde(default)]
    pub load: Option<LoadSpec>,
    /// The most seconds the query may take; past it the run fails and
    /// writes nothing, so a scheduler is never held up for good by one
    /// job. Default [`DEFAULT_TIMEOUT_SECS`].
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

/// A job's query time limit when its manifest sets none: an hour, far
/// past what the shipped jobs take (seconds on the quickstart's lake).
pub const DEFAULT_TIMEOUT_SECS: u64 = 3600;

fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

/// The inputs an incremental job reads changes of.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// `namespace.table` names; each is `job.changes.TABLE` in the query.
    pub tables: Vec<String>,
}

/// A file a job reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// CSV with a header line.
    Csv {
        path: PathBuf,
    },
    Parquet {
        path: PathBuf,
    },
    /// Hourly weather, generated or fetched.
    Weather(WeatherSpec),
}

/// A loaded job: its name (the manifest's file stem), manifest and query.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub dir: PathBuf,
    pub manifest: JobManifest,
    pub sql: String,
}

impl Job {
    /// A path from the manifest, resolved against its folder.
    pub fn path(&self, relative: &Path) -> PathBuf {
        self.dir.join(relative)
    }
}

/// A manifest that cannot be read or does not check out. Only its own
/// job is disabled: the folder's other jobs list, run and are scheduled.
#[derive(Debug, Clone)]
pub struct BrokenJob {
    pub name: String,
    pub path: PathBuf,
    pub reason: String,
}

/// A jobs folder: the jobs that loaded, and the broken ones with why.
#[derive(Debug, Clone, Default)]
pub struct JobsFolder {
    pub dir: PathBuf,
    pub jobs: Vec<Job>,
    pub broken: Vec<BrokenJob>,
}

impl JobsFolder {
    /// The job called `name`, or why it cannot run.
    pub fn job(&self, name: &str) -> Result<&Job, AnalyticsError> {
        if let Some(job) = self.jobs.iter().find(|j| j.name == name) {
            return Ok(job);
        }
        if let Some(broken) = self.broken.iter().find(|b| b.name == name) {
            return Err(AnalyticsError::Usage(format!(
                "job {name} is broken: {} ({})",
                broken.reason,
                broken.path.display()
            )));
        }
        let names: Vec<&str> = self.jobs.iter().map(|j| j.name.as_str()).collect();
        Err(AnalyticsError::Usage(format!(
            "no job {name:?} in {} (jobs: {})",
            self.dir.display(),
            names.join(", ")
        )))
    }
}

/// Every job in `dir` (each `*.toml`), by name. Only a folder that cannot
/// be read is an error; a manifest that is wrong becomes a [`BrokenJob`].
pub fn load_jobs(dir: &Path) -> Result<JobsFolder, AnalyticsError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| AnalyticsError::Usage(format!("jobs folder {}: {e}", dir.display())))?;
    let mut folder = JobsFolder {
        dir: dir.to_path_buf(),
        ..JobsFolder::default()
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match load_job(dir, &path) {
            Ok(manifest_and_sql) => {
                let (manifest, sql) = manifest_and_sql;
                folder.jobs.push(Job {
                    name,
                    dir: dir.to_path_buf(),
                    manifest,
                    sql,
                });
            }
            Err(reason) => folder.broken.push(BrokenJob { name, path, reason }),
        }
    }
    folder.jobs.sort_by(|a, b| a.name.cmp(&b.name));
    folder.broken.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(folder)
}

/// A TOML error as one line (its own text spans several, with a drawing
/// of the place), so that a listing of jobs stays a listing.
fn one_line(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("{} (line {line})", e.message().trim())
        }
        None => e.message().trim().to_string(),
    }
}

/// One manifest, checked, and its query.
fn load_job(dir: &Path, path: &Path) -> Result<(JobManifest, String), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let manifest: JobManifest = toml::from_str(&text).map_err(|e| one_line(&text, &e))?;
    let tables = manifest.incremental.iter().flat_map(|i| &i.tables);
    for table in std::iter::once(&manifest.target).chain(tables) {
        if table.split('.').count() != 2 {
            return Err(format!("{table}: expected namespace.table"));
        }
    }
    if let Some(schedule) = &manifest.schedule {
        crate::jobs::schedule::parse_cron(schedule)?;
    }
    if manifest.timeout_secs == 0 {
        return Err("timeout_secs: at least 1 (seconds the query may take)".into());
    }
    let sql_path = dir.join(&manifest.sql);
    let sql = std::fs::read_to_string(&sql_path)
        .map_err(|e| format!("cannot read {}: {e}", sql_path.display()))?;
    for (source, spec) in &manifest.sources {
        let (Source::Csv { path: file } | Source::Parquet { path: file }) = spec else {
            continue;
        };
        if !dir.join(file).exists() {
            return Err(format!(
                "source {source}: {} does not exist",
                dir.join(file).display()
            ));
        }
    }
    Ok((manifest, sql))
}
