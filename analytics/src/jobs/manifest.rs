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

fn bad(path: &Path, reason: impl std::fmt::Display) -> AnalyticsError {
    AnalyticsError::Usage(format!("job {}: {reason}", path.display()))
}

/// Every job in `dir` (each `*.toml`), by name.
pub fn load_jobs(dir: &Path) -> Result<Vec<Job>, AnalyticsError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| AnalyticsError::Usage(format!("jobs folder {}: {e}", dir.display())))?;
    let mut jobs = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let manifest: JobManifest = toml::from_str(&text).map_err(|e| bad(&path, e))?;
        let tables = manifest.incremental.iter().flat_map(|i| &i.tables);
        for table in std::iter::once(&manifest.target).chain(tables) {
            if table.split('.').count() != 2 {
                return Err(bad(&path, format!("{table}: expected namespace.table")));
            }
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sql_path = dir.join(&manifest.sql);
        let sql = std::fs::read_to_string(&sql_path)
            .map_err(|e| bad(&path, format!("cannot read {}: {e}", sql_path.display())))?;
        for (source, spec) in &manifest.sources {
            let (Source::Csv { path: file } | Source::Parquet { path: file }) = spec else {
                continue;
            };
            if !dir.join(file).exists() {
                return Err(bad(
                    &path,
                    format!(
                        "source {source}: {} does not exist",
                        dir.join(file).display()
                    ),
                ));
            }
        }
        jobs.push(Job {
            name,
            dir: dir.to_path_buf(),
            manifest,
            sql,
        });
    }
    jobs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(jobs)
}
