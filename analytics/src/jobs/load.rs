//! Batch loads: a job with a `[load]` section runs its query once per file
//! of a folder or bucket (`job.sources.file` is the file), appending each
//! file's rows in one snapshot of its own. Each file is loaded once:
//!
//! * the snapshot that appends a file's rows names it in its summary
//!   (`floe.load.file`), so the target itself says what it holds, and a
//!   crash at any point leaves a file either wholly loaded or not at all;
//! * `floe_meta.loaded_files` lists the loaded files (job, file, size,
//!   rows, snapshot, time) for people and tools. It is written after the
//!   target; a crash in between is repaired on the next run from the
//!   target's summaries, without loading the file again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions};
use iceberg::TableIdent;
use lakehouse::sink::{write_result, WriteMode};
use lakehouse::transaction::state::loaded_file;
use lakehouse::transaction::{JobLineage, StateChange};
use serde::Deserialize;

use crate::error::AnalyticsError;
use crate::jobs::inputs::{table_ident, JOB_CATALOG};
use crate::jobs::manifest::Job;
use crate::jobs::run::query_result;
use crate::jobs::runs::append_row;
use crate::progress::Progress;
use crate::session::LakeSession;

/// The control table of batch loads.
pub const LOADED_FILES: (&str, &str) = ("floe_meta", "loaded_files");

/// A manifest's `[load]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// A folder (relative to the manifest) or `s3://bucket/prefix`, with
    /// the lake's S3 settings. Its `*.parquet` and `*.csv` files are
    /// loaded, in name order.
    pub path: String,
}

/// What a load run did.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub files: Vec<String>,
    pub rows: u64,
    pub last_snapshot_id: Option<i64>,
}

/// One file to load: its name under the load path and its size.
#[derive(Debug, Clone)]
struct LoadFile {
    name: String,
    size: u64,
}

enum Store {
    Local(PathBuf),
    S3(lakehouse::spec::store::Store),
}

impl Store {
    fn open(job: &Job, spec: &LoadSpec, session: &LakeSession) -> Result<Self, AnalyticsError> {
        if !spec.path.starts_with("s3://") {
            return Ok(Store::Local(job.path(Path::new(&spec.path))));
        }
        let s3 = session.lake.config().s3.resolve(|k| std::env::var(k).ok());
        lakehouse::spec::store::Store::open(&spec.path, &s3)
            .map(Store::S3)
            .map_err(|e| AnalyticsError::Source(e.to_string()))
    }

    fn loadable(name: &str) -> bool {
        name.ends_with(".parquet") || name.ends_with(".csv")
    }

    async fn list(&self) -> Result<Vec<LoadFile>, AnalyticsError> {
        let mut files = Vec::new();
        match self {
            Store::Local(dir) => {
                let entries = std::fs::read_dir(dir).map_err(|e| {
                    AnalyticsError::Source(format!("load folder {}: {e}", dir.display()))
                })?;
                for entry in entries {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if entry.file_type()?.is_file() && Self::loadable(&name) {
                        files.push(LoadFile {
                            name,
                            size: entry.metadata()?.len(),
                        });
                    }
                }
            }
            Store::S3(store) => {
                let listed = store
                    .list("", false)
                    .await
                    .map_err(|e| AnalyticsError::Source(e.to_string()))?;
                files.extend(
                    listed
                        .into_iter()
                        .filter(|f| Self::loadable(&f.name))
                        .map(|f| LoadFile {
                            name: f.name,
                            size: f.size,
                        }),
                );
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// A local path DataFusion can read the file at: the file itself, or a
    /// download of it into `scratch`.
    async fn local_copy(&self, file: &LoadFile, scratch: &Path) -> Result<PathBuf, AnalyticsError> {
        match self {
            Store::Local(dir) => Ok(dir.join(&file.name)),
            Store::S3(store) => {
                let bytes = store
                    .read(&file.name)
                    .await
                    .map_err(|e| AnalyticsError::Source(e.to_string()))?;
                let path = scratch.join(&file.name);
                std::fs::write(&path, bytes)?;
                Ok(path)
            }
        }
    }
}

/// Runs the load job `job`: every file not loaded yet, in name order. On
/// failure, also returns what was loaded before it.
pub async fn run_load(
    session: &LakeSession,
    job: &Job,
    spec: &LoadSpec,
    run_id: &str,
) -> Result<Loaded, (Loaded, AnalyticsError)> {
    let mut loaded = Loaded::default();
    match load_all(session, job, spec, run_id, &mut loaded).await {
        Ok(()) => Ok(loaded),
        Err(e) => Err((loaded, e)),
    }
}

async fn load_all(
    session: &LakeSession,
    job: &Job,
    spec: &LoadSpec,
    run_id: &str,
    loaded: &mut Loaded,
) -> Result<(), AnalyticsError> {
    if job.manifest.mode != WriteMode::Append {
        return Err(AnalyticsError::Usage(format!(
            "job {}: a batch load appends; set mode = \"append\"",
            job.name
        )));
    }
    let store = Store::open(job, spec, session)?;
    let target = table_ident(&job.manifest.target)?;
    let recorded = control_rows(session, &job.name).await?;
    let in_target = loaded_in_target(session, &target).await?;
    // a crash after the target's commit and before the control row
    for (file, (snapshot, rows)) in &in_target {
        if !recorded.contains(file) {
            tracing::warn!(job = %job.name, file, "loaded but not in floe_meta.loaded_files; recording it");
            record_file(session, &job.name, file, 0, *rows, *snapshot).await?;
        }
    }
    let files = store.list().await?;
    let todo: Vec<LoadFile> = files
        .into_iter()
        .filter(|f| !in_target.contains_key(&f.name) && !recorded.contains(&f.name))
        .collect();
    tracing::info!(job = %job.name, files = todo.len(), "batch load: files to load");
    let scratch = std::env::temp_dir().join(format!("floe-load-{run_id}"));
    std::fs::create_dir_all(&scratch)?;
    let mut progress = Progress::start(format!("load {}", job.name));
    let result = async {
        for file in &todo {
            let path = store.local_copy(file, &scratch).await?;
            let (rows, snapshot) =
                load_file(session, job, &target, file, &path, run_id, &mut progress)
                    .await
                    .map_err(|e| AnalyticsError::Source(format!("loading {}: {e}", file.name)))?;
            record_file(session, &job.name, &file.name, file.size, rows, snapshot).await?;
            progress.add_file();
            loaded.files.push(file.name.clone());
            loaded.rows += rows;
            loaded.last_snapshot_id = snapshot.or(loaded.last_snapshot_id);
            tracing::info!(job = %job.name, file = %file.name, rows, "loaded");
        }
        Ok::<_, AnalyticsError>(())
    }
    .await;
    progress.finish();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn load_file(
    session: &LakeSession,
    job: &Job,
    target: &TableIdent,
    file: &LoadFile,
    path: &Path,
    run_id: &str,
    progress: &mut Progress,
) -> Result<(u64, Option<i64>), AnalyticsError> {
    let ctx = &session.ctx;
    let name = format!("{JOB_CATALOG}.sources.file");
    let _ = ctx.deregister_table(name.as_str())?;
    let path = path.to_string_lossy().into_owned();
    if file.name.ends_with(".csv") {
        ctx.register_csv(name.as_str(), &path, CsvReadOptions::new())
            .await?;
    } else {
        ctx.register_parquet(name.as_str(), &path, ParquetReadOptions::new())
            .await?;
    }
    let (schema, batches) = query_result(session, job, progress).await?;
    let state = StateChange {
        lineage: Some(JobLineage {
            job: job.name.clone(),
            run_id: run_id.to_string(),
            sources: BTreeMap::new(),
        }),
        loaded_file: Some(file.name.clone()),
        ..StateChange::default()
    };
    let written = write_result(
        &session.lake,
        target,
        &job.manifest.partition,
        WriteMode::Append,
        &schema,
        &batches,
        state,
    )
    .await?;
    Ok((written.rows as u64, written.snapshot_id))
}

/// Files the target's snapshots (the current one and its ancestors) say
/// they loaded, with the snapshot and its added rows.
async fn loaded_in_target(
    session: &LakeSession,
    target: &TableIdent,
) -> Result<HashMap<String, (Option<i64>, u64)>, AnalyticsError> {
    let catalog = &session.lake.catalog();
    if !catalog.table_exists(target).await? {
        return Ok(HashMap::new());
    }
    let table = catalog.load_table(target).await?;
    let metadata = table.metadata();
    let mut out = HashMap::new();
    let mut cursor = metadata.current_snapshot().cloned();
    while let Some(snapshot) = cursor {
        if let Some(file) = loaded_file(&snapshot) {
            let rows = snapshot
                .summary()
                .additional_properties
                .get("added-records")
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            out.insert(file.to_string(), (Some(snapshot.snapshot_id()), rows));
        }
        cursor = snapshot
            .parent_snapshot_id()
            .and_then(|p| metadata.snapshot_by_id(p).cloned());
    }
    Ok(out)
}

/// Files `floe_meta.loaded_files` lists for `job`.
async fn control_rows(
    session: &LakeSession,
    job: &str,
) -> Result<BTreeSet<String>, AnalyticsError> {
    let ident = TableIdent::from_strs([LOADED_FILES.0, LOADED_FILES.1])
        .map_err(|e| AnalyticsError::Usage(e.to_string()))?;
    if !session.lake.catalog().table_exists(&ident).await? {
        return Ok(BTreeSet::new());
    }
    session.refresh().await?;
    let table = format!("{}.{}", LOADED_FILES.0, LOADED_FILES.1);
    let frame = session
        .ctx
        .table(table.as_str())
        .await?
        .filter(datafusion::prelude::col("job").eq(datafusion::prelude::lit(job)))?
        .select_columns(&["file"])?;
    let mut out = BTreeSet::new();
    for batch in frame.collect().await? {
        if let Some(files) = batch.column(0).as_any().downcast_ref::<StringArray>() {
            out.extend(files.iter().flatten().map(str::to_string));
        }
    }
    Ok(out)
}

async fn record_file(
    session: &LakeSession,
    job: &str,
    file: &str,
    size: u64,
    rows: u64,
    snapshot: Option<i64>,
) -> Result<(), AnalyticsError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("job", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("size_bytes", DataType::Int64, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("target_snapshot_id", DataType::Int64, true),
        Field::new(
            "loaded_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![job])),
        Arc::new(StringArray::from(vec![file])),
        Arc::new(Int64Array::from(vec![size as i64])),
        Arc::new(Int64Array::from(vec![rows as i64])),
        Arc::new(Int64Array::from(vec![snapshot])),
        Arc::new(TimestampMicrosecondArray::from(vec![now]).with_timezone("UTC")),
    ];
    append_row(&session.lake, LOADED_FILES, schema, columns).await
}
