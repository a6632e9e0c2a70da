//! What a job's query can read besides the lake's tables, registered in
//! the session's `job` catalog before it runs:
//!
//! * `job.sources.NAME`: the manifest's files and generated sources;
//! * `job.changes.TABLE`: for incremental jobs, the rows of each listed
//!   lake table added or removed since the snapshot the job's last result
//!   was computed from, with a `_change` column (`added`/`removed`); the
//!   whole table as `added` when there is no such snapshot (first run, or
//!   the snapshot expired);
//! * `job_run_id()`: the id of the run, for results that record it.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions};
use datafusion::scalar::ScalarValue;
use iceberg::TableIdent;
use lakehouse::changes::{changes_since, CHANGE_COLUMN};
use lakehouse::transaction::JobLineage;

use crate::error::AnalyticsError;
use crate::jobs::manifest::{Job, Source};
use crate::jobs::sources::weather;
use crate::session::LakeSession;

/// The catalog a job's inputs are registered in.
pub const JOB_CATALOG: &str = "job";

/// How much of each incremental input a run read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangesRead {
    /// The rows changed since this snapshot.
    Since { snapshot: i64, rows: usize },
    /// The whole table: there was no earlier snapshot to start from.
    Everything,
}

/// `namespace.table` as an identifier.
pub fn table_ident(name: &str) -> Result<TableIdent, AnalyticsError> {
    let (namespace, table) = name
        .split_once('.')
        .ok_or_else(|| AnalyticsError::Usage(format!("{name}: expected namespace.table")))?;
    TableIdent::from_strs([namespace, table])
        .map_err(|e| AnalyticsError::Usage(format!("{name}: {e}")))
}

/// Registers the `job` catalog for `job`'s run `run_id`. Returns, per
/// incremental input, what was read and the snapshot it was read up to.
pub async fn register_inputs(
    session: &LakeSession,
    job: &Job,
    run_id: &str,
) -> Result<BTreeMap<String, (ChangesRead, Option<i64>)>, AnalyticsError> {
    let catalog = MemoryCatalogProvider::new();
    let sources = Arc::new(MemorySchemaProvider::new());
    let changes = Arc::new(MemorySchemaProvider::new());
    catalog.register_schema("sources", sources)?;
    catalog.register_schema("changes", changes.clone())?;
    session.ctx.register_catalog(JOB_CATALOG, Arc::new(catalog));
    register_sources(session, job).await?;
    register_run_id(session, run_id);

    let mut read = BTreeMap::new();
    let Some(incremental) = &job.manifest.incremental else {
        return Ok(read);
    };
    let previous = previous_sources(session, job).await?;
    for name in &incremental.tables {
        let ident = table_ident(name)?;
        let table = session.lake.catalog().load_table(&ident).await?;
        let short = ident.name();
        let found = match previous.get(name) {
            Some(&since) => changes_since(&table, since).await?,
            None => None,
        };
        let current = table.metadata().current_snapshot_id();
        match found {
            Some(found) => {
                let rows = found.rows();
                let memory = MemTable::try_new(found.schema.clone(), vec![found.batches])?;
                changes.register_table(short.to_string(), Arc::new(memory))?;
                let how = ChangesRead::Since {
                    snapshot: found.since,
                    rows,
                };
                read.insert(name.clone(), (how, Some(found.until)));
            }
            None => {
                let everything = session
                    .ctx
                    .sql(&format!("SELECT *, 'added' AS {CHANGE_COLUMN} FROM {name}"))
                    .await?
                    .into_view();
                changes.register_table(short.to_string(), everything)?;
                read.insert(name.clone(), (ChangesRead::Everything, current));
            }
        }
    }
    Ok(read)
}

/// The source snapshots the target's current result was computed from,
/// when this job wrote it.
async fn previous_sources(
    session: &LakeSession,
    job: &Job,
) -> Result<BTreeMap<String, i64>, AnalyticsError> {
    let ident = table_ident(&job.manifest.target)?;
    if !session.lake.catalog().table_exists(&ident).await? {
        return Ok(BTreeMap::new());
    }
    let table = session.lake.catalog().load_table(&ident).await?;
    // carried through snapshots that are not the job's (a compaction)
    Ok(JobLineage::of(&table)
        .filter(|lineage| lineage.job == job.name)
        .map(|lineage| lineage.sources)
        .unwrap_or_default())
}

async fn register_sources(session: &LakeSession, job: &Job) -> Result<(), AnalyticsError> {
    let ctx = &session.ctx;
    for (name, source) in &job.manifest.sources {
        let table = format!("{JOB_CATALOG}.sources.{name}");
        match source {
            Source::Csv { path } => {
                let path = job.path(path).to_string_lossy().into_owned();
                ctx.register_csv(table, &path, CsvReadOptions::new())
                    .await?
            }
            Source::Parquet { path } => {
                let path = job.path(path).to_string_lossy().into_owned();
                ctx.register_parquet(table, &path, ParquetReadOptions::new())
                    .await?
            }
            Source::Weather(spec) => {
                let batch = weather::hourly(spec).await?;
                let memory = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
                ctx.register_table(table, Arc::new(memory))?;
            }
        }
    }
    Ok(())
}

fn register_run_id(session: &LakeSession, run_id: &str) {
    let value = ScalarValue::Utf8(Some(run_id.to_string()));
    let udf = create_udf(
        "job_run_id",
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(value.clone()))),
    );
    session.ctx.register_udf(udf);
}
