//! floe's snapshot commit: one Iceberg snapshot that adds data files and
//! position-delete files together (a "row delta"), swapped in through the
//! catalog's compare-and-swap.
//!
//! Apache iceberg 0.10.1 can only fast-append data files, and its commit
//! type cannot be built outside the crate, so floe writes the snapshot with
//! the crate's public file-level API and swaps the metadata pointer itself:
//!
//! ```text
//!  RowDelta (data files, delete files, summary properties)
//!    │ write a data manifest and a delete manifest (entries inherit the
//!    │ snapshot's sequence number)
//!    │ carry every manifest of the parent snapshot over (a truncate
//!    │ instead lists every live file of the parent as deleted)
//!    │ write the manifest list, the snapshot (summary totals carried
//!    │ forward) and the next metadata file
//!    ▼
//!  compare-and-swap the catalog's metadata pointer (SQL: write the
//!  metadata file, then a conditional UPDATE that must change exactly one
//!  row; REST: post the snapshot as updates with requirements on the
//!  table's uuid, current snapshot and schema, and the catalog writes it)
//!    ├─ swapped: the new table
//!    └─ not swapped: CommitError::Conflict; the table is unchanged and the
//!       files written are orphans for `floe maintain orphans`
//! ```
//!
//! A crash anywhere before the swap leaves the table as it was.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use iceberg::spec::{
    DataContentType, DataFile, FormatVersion, ManifestContentType, ManifestEntryRef, ManifestFile,
    ManifestList, ManifestListWriter, ManifestWriterBuilder, Operation, Schema, SchemaRef,
    Snapshot, Struct, Summary, TableMetadata, TableMetadataBuildResult,
};
use iceberg::table::Table;
use iceberg::{MetadataLocation, TableRequirement, TableUpdate};
use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::AnyPool;
use thiserror::Error;

use crate::catalog::CATALOG_NAME;

/// Why a commit did not happen.
#[derive(Debug, Error)]
pub enum CommitError {
    /// Another writer changed the table since it was read: reload and retry
    /// (the table is unchanged).
    #[error("commit conflict on {table}: its metadata is no longer {expected}; reload and retry")]
    Conflict { table: String, expected: String },
    /// The table has no metadata location to swap from.
    #[error("table {0} has no metadata location")]
    NoMetadataLocation(String),
    /// Writing manifests, the manifest list or metadata failed.
    #[error("writing the commit of {table} failed at {step}: {source}")]
    Write {
        table: String,
        step: &'static str,
        source: Box<iceberg::Error>,
    },
    /// The catalog database could not be reached or refused the update.
    #[error("catalog update for {table} failed: {source}")]
    Catalog { table: String, source: sqlx::Error },
    /// The REST catalog could not be reached or refused the commit.
    #[error("REST catalog commit for {table} failed: {reason}")]
    Rest {
        table: String,
        reason: String,
        /// Not reached, or a server error (5xx); a 4xx refusal is not.
        retryable: bool,
    },
}

impl CommitError {
    /// Whether the commit may succeed if tried again (on a reloaded table
    /// for a conflict).
    pub fn is_retryable(&self) -> bool {
        match self {
            CommitError::Conflict { .. } => true,
            CommitError::NoMetadataLocation(_) => false,
            CommitError::Write { source, .. } => crate::error::iceberg_is_retryable(source),
            CommitError::Catalog { source, .. } => crate::error::sqlx_is_retryable(source),
            CommitError::Rest { retryable, .. } => *retryable,
        }
    }
}

/// Where floe swaps a table's metadata pointer: the catalog it opened.
#[derive(Debug, Clone)]
pub enum CatalogPointer {
    Sql(SqlCatalogPointer),
    Rest(RestCatalogPointer),
}

impl From<SqlCatalogPointer> for CatalogPointer {
    fn from(value: SqlCatalogPointer) -> Self {
        Self::Sql(value)
    }
}

impl From<RestCatalogPointer> for CatalogPointer {
    fn from(value: RestCatalogPointer) -> Self {
        Self::Rest(value)
    }
}

/// Commits to a REST catalog: `POST .../namespaces/{ns}/tables/{table}`
/// with the metadata changes and the requirements that make it a
/// compare-and-swap (HTTP 409 when another writer got there first).
#[derive(Debug, Clone)]
pub struct RestCatalogPointer {
    client: reqwest::Client,
    /// `{uri}/v1` plus the catalog's `prefix`, if its config sets one.
    base: String,
    token: Option<String>,
}

impl RestCatalogPointer {
    /// Reads the catalog's config (`GET {uri}/v1/config`) for its prefix.
    pub async fn connect(
        uri: &str,
        warehouse: Option<&str>,
        token: Option<&str>,
    ) -> Result<Self, String> {
        let client = reqwest::Client::new();
        let uri = uri.trim_end_matches('/');
        let mut request = client.get(format!("{uri}/v1/config"));
        if let Some(w) = warehouse {
            request = request.query(&[("warehouse", w)]);
        }
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let config: serde_json::Value = request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| format!("bad config response: {e}"))?;
        let prefix = ["overrides", "defaults"]
            .iter()
            .find_map(|k| config[k]["prefix"].as_str())
            .map(str::to_string);
        let base = match prefix {
            Some(p) => format!("{uri}/v1/{p}"),
            None => format!("{uri}/v1"),
        };
        Ok(Self {
            client,
            base,
            token: token.map(str::to_string),
        })
    }

    /// Posts `changes` on top of `table` as it was read; returns the new
    /// metadata location and metadata.
    async fn commit(
        &self,
        table: &Table,
        changes: Vec<TableUpdate>,
    ) -> Result<(String, TableMetadata), CommitError> {
        let name = table.identifier().to_string();
        let metadata = table.metadata();
        let requirements = vec![
            TableRequirement::UuidMatch {
                uuid: metadata.uuid(),
            },
            TableRequirement::RefSnapshotIdMatch {
                r#ref: "main".to_string(),
                snapshot_id: metadata.current_snapshot_id(),
            },
            TableRequirement::CurrentSchemaIdMatch {
                current_schema_id: metadata.current_schema_id(),
            },
            TableRequirement::LastAssignedFieldIdMatch {
                last_assigned_field_id: metadata.last_column_id(),
            },
        ];
        let ident = table.identifier();
        // namespace levels are joined with the unit separator (REST spec)
        let namespace = ident.namespace().join("\u{1f}");
        let url = format!(
            "{}/namespaces/{}/tables/{}",
            self.base,
            encode(&namespace),
            encode(ident.name())
        );
        let body = serde_json::json!({
            "identifier": { "namespace": ident.namespace().as_ref(), "name": ident.name() },
            "requirements": requirements,
            "updates": changes,
        });
        let mut request = self.client.post(&url).json(&body);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let rest = |reason: String, retryable: bool| CommitError::Rest {
            table: name.clone(),
            reason,
            retryable,
        };
        let response = request
            .send()
            .await
            .map_err(|e| rest(e.to_string(), true))?;
        let status = response.status();
        if status == reqwest::StatusCode::CONFLICT {
            return Err(CommitError::Conflict {
                table: name.clone(),
                expected: metadata_location_or_empty(table),
            });
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(rest(
                format!("HTTP {status}: {text}"),
                status.is_server_error(),
            ));
        }
        let committed: CommittedTable = response
            .json()
            .await
            .map_err(|e| rest(format!("bad commit response: {e}"), false))?;
        Ok((committed.metadata_location, committed.metadata))
    }
}

#[derive(serde::Deserialize)]
struct CommittedTable {
    #[serde(rename = "metadata-location")]
    metadata_location: String,
    metadata: TableMetadata,
}

fn metadata_location_or_empty(table: &Table) -> String {
    table.metadata_location().unwrap_or_default().to_string()
}

/// Percent-encodes a URL path segment.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The files and summary properties of one snapshot.
#[derive(Debug, Default, Clone)]
pub struct RowDelta {
    pub data_files: Vec<DataFile>,
    pub delete_files: Vec<DataFile>,
    /// Extra snapshot-summary properties (e.g. the Kafka offsets covered).
    pub properties: HashMap<String, String>,
    /// Which of the parent snapshot's live files this snapshot removes.
    pub remove: Removal,
    /// A new current schema, committed with the snapshot in the same
    /// metadata swap (the data files are written in it).
    pub schema: Option<Schema>,
}

/// Live files a snapshot removes (lists as deleted, carrying their
/// sequence numbers) instead of carrying them over.
#[derive(Clone, Default)]
pub enum Removal {
    /// Nothing: the snapshot only adds.
    #[default]
    Nothing,
    /// Every data and delete file (a truncate, a full overwrite).
    All,
    /// The data and delete files in these partitions of the default spec
    /// (a partition overwrite).
    Partitions(Arc<HashSet<Struct>>),
    /// The files at these paths (a compaction's rewritten files).
    Files(Arc<HashSet<String>>),
}

impl Removal {
    fn removes(&self, file: &DataFile) -> bool {
        match self {
            Removal::Nothing => false,
            Removal::All => true,
            Removal::Partitions(set) => set.contains(file.partition()),
            Removal::Files(paths) => paths.contains(file.file_path()),
        }
    }
}

impl std::fmt::Debug for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Removal::Nothing => f.write_str("Nothing"),
            Removal::All => f.write_str("All"),
            Removal::Partitions(set) => write!(f, "Partitions({})", set.len()),
            Removal::Files(paths) => write!(f, "Files({})", paths.len()),
        }
    }
}

/// Swaps metadata pointers in a SQL catalog (the JDBC catalog schema)
/// with a conditional update.
#[derive(Debug, Clone)]
pub struct SqlCatalogPointer {
    pool: AnyPool,
    postgres: bool,
}

impl SqlCatalogPointer {
    /// Connects to the catalog database at `uri` (as in [`crate::catalog::open_catalog`]).
    pub async fn connect(uri: &str) -> Result<Self, sqlx::Error> {
        install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .connect(uri)
            .await?;
        Ok(Self {
            pool,
            postgres: uri.starts_with("postgres"),
        })
    }

    /// Points `table` at `new` if and only if it still points at `old`.
    async fn swap(&self, table: &Table, old: &str, new: &str) -> Result<bool, sqlx::Error> {
        let sql = "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
                   WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? AND metadata_location = ?";
        let sql = if self.postgres {
            numbered_placeholders(sql)
        } else {
            sql.to_string()
        };
        let ident = table.identifier();
        let namespace = ident.namespace().join(".");
        let result = sqlx::query(&sql)
            .bind(new)
            .bind(old)
            .bind(CATALOG_NAME)
            .bind(namespace)
            .bind(ident.name())
            .bind(old)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }
}

fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Commits `delta` on top of `table`'s current snapshot. On success returns
/// the table as committed.
pub async fn commit_row_delta(
    pointer: &CatalogPointer,
    table: &Table,
    delta: RowDelta,
) -> Result<Table, CommitError> {
    commit_row_delta_retrying(pointer, table, delta, &mut RetryCache::default()).await
}

/// What one commit attempt that removes files worked out, for the next
/// attempt of the same delta after a lost race: the parent's manifests it
/// already read (rewritten without the removed files, or left as they
/// were), and the snapshot id those rewrites name. A retry then reads only
/// the manifests the winning commits added.
#[derive(Default)]
pub struct RetryCache {
    snapshot_id: Option<i64>,
    manifests: HashMap<String, CachedManifest>,
}

#[derive(Clone)]
struct CachedManifest {
    /// The rewritten manifest, or `None` when it removed nothing.
    rewritten: Option<ManifestFile>,
    gone: Vec<ManifestEntryRef>,
}

/// [`commit_row_delta`] for a delta that may be retried: pass the same
/// `cache` to every attempt of the same delta (its removal must not change).
pub async fn commit_row_delta_retrying(
    pointer: &CatalogPointer,
    table: &Table,
    delta: RowDelta,
    cache: &mut RetryCache,
) -> Result<Table, CommitError> {
    let name = table.identifier().to_string();
    let step = |step: &'static str| write_error(&name, step);
    let current_location = current_location(table)?;
    let metadata = table.metadata();
    let file_io = table.file_io();
    let parent = metadata.current_snapshot().cloned();
    let sequence_number = metadata.next_sequence_number();
    // the cached rewrites name the snapshot id they were written for
    let snapshot_id = match cache.snapshot_id {
        Some(id) if metadata.snapshot_by_id(id).is_none() => id,
        _ => {
            cache.manifests.clear();
            let id = new_snapshot_id(metadata);
            cache.snapshot_id = Some(id);
            id
        }
    };
    let commit_id = uuid::Uuid::new_v4();
    let metadata_dir = format!("{}/metadata", metadata.location().trim_end_matches('/'));
    // the schema the snapshot's files are written in
    let (schema, schema_id): (SchemaRef, i32) = match &delta.schema {
        Some(s) => (Arc::new(s.clone()), schema_id_for(metadata, s)),
        None => (
            metadata.current_schema().clone(),
            metadata.current_schema_id(),
        ),
    };

    let mut manifests: Vec<ManifestFile> = Vec::new();
    for (content, files) in [
        (DataContentType::Data, &delta.data_files),
        (DataContentType::PositionDeletes, &delta.delete_files),
    ] {
        if files.is_empty() {
            continue;
        }
        let path = format!("{metadata_dir}/{commit_id}-m{}.avro", manifests.len());
        let entries = Entries::Added(files);
        manifests.push(write_manifest(table, &schema, &path, snapshot_id, content, entries).await?);
    }
    let mut removed = Removed::default();
    if let Some(parent) = &parent {
        let bytes = file_io
            .new_input(parent.manifest_list())
            .map_err(step("open parent manifest list"))?
            .read()
            .await
            .map_err(step("read parent manifest list"))?;
        let list = ManifestList::parse_with_version(&bytes, FormatVersion::V2)
            .map_err(step("parse parent manifest list"))?;
        // a manifest whose every entry is deleted was for the snapshot
        // that deleted them; later snapshots leave it out, or manifests
        // would pile up with every removal (compaction, overwrites)
        let parents = list.entries().iter().filter(|m| has_live_files(m));
        if matches!(delta.remove, Removal::Nothing) {
            manifests.extend(parents.cloned());
        } else {
            // a manifest with a removed file is rewritten: its other live
            // files as existing, the removed ones as deleted, every entry
            // keeping its sequence numbers (a spec rule)
            for manifest in parents {
                if let Some(cached) = cache.manifests.get(&manifest.manifest_path) {
                    for entry in &cached.gone {
                        removed.add(manifest.content, entry);
                    }
                    manifests.push(cached.rewritten.clone().unwrap_or_else(|| manifest.clone()));
                    continue;
                }
                let loaded = manifest
                    .load_manifest(file_io)
                    .await
                    .map_err(step("read parent manifest"))?;
                let (gone, kept): (Vec<_>, Vec<_>) = loaded
                    .entries()
                    .iter()
                    .filter(|e| e.is_alive())
                    .cloned()
                    .partition(|e| delta.remove.removes(e.data_file()));
                if gone.is_empty() {
                    manifests.push(manifest.clone());
                    cache.manifests.insert(
                        manifest.manifest_path.clone(),
                        CachedManifest {
                            rewritten: None,
                            gone,
                        },
                    );
                    continue;
                }
                for entry in &gone {
                    removed.add(manifest.content, entry);
                }
                let content = match manifest.content {
                    ManifestContentType::Data => DataContentType::Data,
                    ManifestContentType::Deletes => DataContentType::PositionDeletes,
                };
                let path = format!("{metadata_dir}/{commit_id}-m{}.avro", manifests.len());
                let entries = Entries::Rewritten {
                    kept: &kept,
                    removed: &gone,
                };
                let rewritten =
                    write_manifest(table, &schema, &path, snapshot_id, content, entries).await?;
                manifests.push(rewritten.clone());
                cache.manifests.insert(
                    manifest.manifest_path.clone(),
                    CachedManifest {
                        rewritten: Some(rewritten),
                        gone,
                    },
                );
            }
        }
    }

    let list_path = format!("{metadata_dir}/snap-{snapshot_id}-1-{commit_id}.avro");
    let list_output = file_io
        .new_output(&list_path)
        .map_err(step("open manifest list"))?;
    let mut list_writer = ManifestListWriter::v2(
        list_output
            .writer()
            .await
            .map_err(step("open manifest list"))?,
        snapshot_id,
        parent.as_ref().map(|p| p.snapshot_id()),
        sequence_number,
    );
    list_writer
        .add_manifests(manifests.into_iter())
        .map_err(step("add manifests"))?;
    list_writer
        .close()
        .await
        .map_err(step("write manifest list"))?;

    let summary = summary(parent.as_deref().map(Snapshot::summary), &delta, &removed);
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent.as_ref().map(|p| p.snapshot_id()))
        .with_sequence_number(sequence_number)
        .with_timestamp_ms(now_ms().max(metadata.last_updated_ms() + 1))
        .with_manifest_list(list_path)
        .with_summary(summary)
        .with_schema_id(schema_id)
        .build();
    let mut builder = metadata
        .clone()
        .into_builder(Some(current_location.clone()));
    if let Some(new_schema) = delta.schema {
        builder = builder
            .add_current_schema(new_schema)
            .map_err(step("add schema"))?;
    }
    let next = builder
        .set_branch_snapshot(snapshot, "main")
        .and_then(|b| b.build())
        .map_err(step("build metadata"))?;
    commit_metadata(pointer, table, next).await
}

/// Makes `next` the table's metadata if the table is still as `table` was
/// read: SQL catalogs get the next metadata file and a pointer swap, REST
/// catalogs the changes with requirements. Used for snapshots and for
/// schema changes floe makes itself.
pub async fn commit_metadata(
    pointer: &CatalogPointer,
    table: &Table,
    next: TableMetadataBuildResult,
) -> Result<Table, CommitError> {
    let name = table.identifier().to_string();
    let step = |step: &'static str| write_error(&name, step);
    let file_io = table.file_io();
    let pointer = match pointer {
        CatalogPointer::Sql(sql) => sql,
        CatalogPointer::Rest(rest) => {
            let (location, metadata) = rest.commit(table, next.changes).await?;
            let runtime = iceberg::Runtime::try_current().map_err(step("reload table"))?;
            return Table::builder()
                .runtime(runtime)
                .identifier(table.identifier().clone())
                .file_io(file_io.clone())
                .metadata(metadata)
                .metadata_location(location)
                .build()
                .map_err(step("reload table"));
        }
    };
    let next = next.metadata;
    let current_location = current_location(table)?;
    let next_location = MetadataLocation::from_str(&current_location)
        .map_err(step("metadata location"))?
        .with_next_version();
    next.write_to(file_io, &next_location)
        .await
        .map_err(step("write metadata"))?;

    let next_location = next_location.to_string();
    let swapped = pointer
        .swap(table, &current_location, &next_location)
        .await
        .map_err(|source| CommitError::Catalog {
            table: name.clone(),
            source,
        })?;
    if !swapped {
        return Err(CommitError::Conflict {
            table: name,
            expected: current_location,
        });
    }
    let runtime = iceberg::Runtime::try_current().map_err(step("reload table"))?;
    Table::builder()
        .runtime(runtime)
        .identifier(table.identifier().clone())
        .file_io(file_io.clone())
        .metadata(next)
        .metadata_location(next_location)
        .build()
        .map_err(step("reload table"))
}

/// Where `table`'s metadata pointer is now: the expected side of the swap.
fn current_location(table: &Table) -> Result<String, CommitError> {
    table
        .metadata_location()
        .map(str::to_string)
        .ok_or_else(|| CommitError::NoMetadataLocation(table.identifier().to_string()))
}

/// Maps an iceberg error at `step` of writing `table`'s commit.
fn write_error(table: &str, step: &'static str) -> impl FnOnce(iceberg::Error) -> CommitError {
    let table = table.to_string();
    move |source| CommitError::Write {
        table,
        step,
        source: Box::new(source),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The entries of one manifest a snapshot writes.
enum Entries<'a> {
    /// Files the snapshot adds; they inherit its sequence number.
    Added(&'a [DataFile]),
    /// A parent manifest again: the files kept as existing, the ones this
    /// snapshot removes as deleted.
    Rewritten {
        kept: &'a [ManifestEntryRef],
        removed: &'a [ManifestEntryRef],
    },
}

/// The id `schema` has, or will have once added, in `metadata`: that of an
/// identical schema the table already has, else the next free one (as
/// iceberg's metadata builder assigns it).
fn schema_id_for(metadata: &TableMetadata, schema: &Schema) -> i32 {
    let same = |s: &SchemaRef| {
        s.as_struct() == schema.as_struct()
            && s.identifier_field_ids().collect::<HashSet<_>>()
                == schema.identifier_field_ids().collect::<HashSet<_>>()
    };
    metadata
        .schemas_iter()
        .find(|s| same(s))
        .map(|s| s.schema_id())
        .unwrap_or_else(|| {
            metadata
                .schemas_iter()
                .map(|s| s.schema_id())
                .max()
                .unwrap_or(0)
                + 1
        })
}

/// Writes one data or delete manifest of snapshot `snapshot_id` at `path`.
async fn write_manifest(
    table: &Table,
    schema: &SchemaRef,
    path: &str,
    snapshot_id: i64,
    content: DataContentType,
    entries: Entries<'_>,
) -> Result<ManifestFile, CommitError> {
    let name = table.identifier().to_string();
    let step = |step: &'static str| write_error(&name, step);
    let metadata = table.metadata();
    let output = table
        .file_io()
        .new_output(path)
        .map_err(step("open manifest"))?;
    let builder = ManifestWriterBuilder::new(
        output,
        Some(snapshot_id),
        schema.clone(),
        metadata.default_partition_spec().as_ref().clone(),
    );
    let mut writer = match content {
        DataContentType::Data => builder.build_v2_data(),
        _ => builder.build_v2_deletes(),
    };
    match entries {
        Entries::Added(files) => {
            for file in files.iter().cloned() {
                // -1: the entry inherits the snapshot's sequence number
                writer
                    .add_file(file, -1)
                    .map_err(step("add manifest entry"))?;
            }
        }
        Entries::Rewritten { kept, removed } => {
            for entry in kept {
                writer
                    .add_existing_file(
                        entry.data_file().clone(),
                        entry.snapshot_id().unwrap_or(snapshot_id),
                        entry.sequence_number().unwrap_or(0),
                        entry.file_sequence_number,
                    )
                    .map_err(step("add existing manifest entry"))?;
            }
            for entry in removed {
                writer
                    .add_delete_file(
                        entry.data_file().clone(),
                        entry.sequence_number().unwrap_or(0),
                        entry.file_sequence_number,
                    )
                    .map_err(step("add deleted manifest entry"))?;
            }
        }
    }
    writer
        .write_manifest_file()
        .await
        .map_err(step("write manifest"))
}

/// Whether `manifest` lists a file as added or existing; a manifest
/// without counts is assumed to.
fn has_live_files(manifest: &ManifestFile) -> bool {
    match (manifest.added_files_count, manifest.existing_files_count) {
        (Some(added), Some(existing)) => added + existing > 0,
        _ => true,
    }
}

/// The live files a snapshot removes, by content.
#[derive(Default)]
struct Removed {
    data: Vec<ManifestEntryRef>,
    deletes: Vec<ManifestEntryRef>,
}

impl Removed {
    fn add(&mut self, content: ManifestContentType, entry: &ManifestEntryRef) {
        match content {
            ManifestContentType::Data => self.data.push(entry.clone()),
            ManifestContentType::Deletes => self.deletes.push(entry.clone()),
        }
    }

    fn files(entries: &[ManifestEntryRef]) -> impl Iterator<Item = &DataFile> {
        entries.iter().map(|e| e.data_file())
    }
}

/// A positive snapshot id no snapshot of the table has.
fn new_snapshot_id(metadata: &TableMetadata) -> i64 {
    loop {
        let (hi, lo) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((hi ^ lo) & (i64::MAX as u64)) as i64;
        if id != 0 && metadata.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// The snapshot summary: what this commit added, and table totals carried
/// forward from the parent (a later writer reads them, so they must stay
/// right).
fn summary(parent: Option<&Summary>, delta: &RowDelta, removed: &Removed) -> Summary {
    // after a truncate the totals start again from what this commit adds
    let parent_total = |key: &str| -> u64 {
        if matches!(delta.remove, Removal::All) {
            return 0;
        }
        parent
            .and_then(|s| s.additional_properties.get(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    fn records<'a>(files: impl IntoIterator<Item = &'a DataFile>) -> u64 {
        files.into_iter().map(DataFile::record_count).sum()
    }
    fn bytes<'a>(files: impl IntoIterator<Item = &'a DataFile>) -> u64 {
        files.into_iter().map(DataFile::file_size_in_bytes).sum()
    }
    let added_records = records(&delta.data_files);
    let added_deletes = records(&delta.delete_files);
    let added_size = bytes(&delta.data_files) + bytes(&delta.delete_files);
    let mut props: HashMap<String, String> = HashMap::new();
    let mut set = |k: &str, v: u64| {
        props.insert(k.to_string(), v.to_string());
    };
    set("added-data-files", delta.data_files.len() as u64);
    set("added-records", added_records);
    set("added-delete-files", delta.delete_files.len() as u64);
    set(
        "added-position-delete-files",
        delta.delete_files.len() as u64,
    );
    set("added-position-deletes", added_deletes);
    set("added-files-size", added_size);
    // a partial removal takes its files out of the carried totals
    let partial = matches!(delta.remove, Removal::Partitions(_) | Removal::Files(_));
    let removed_data = records(Removed::files(&removed.data));
    let removed_deletes = records(Removed::files(&removed.deletes));
    let removed_size =
        bytes(Removed::files(&removed.data)) + bytes(Removed::files(&removed.deletes));
    let mut total = |key: &str, added: u64, gone: u64| {
        let gone = if partial { gone } else { 0 };
        set(key, (parent_total(key) + added).saturating_sub(gone));
    };
    total(
        "total-data-files",
        delta.data_files.len() as u64,
        removed.data.len() as u64,
    );
    total("total-records", added_records, removed_data);
    total(
        "total-delete-files",
        delta.delete_files.len() as u64,
        removed.deletes.len() as u64,
    );
    total("total-position-deletes", added_deletes, removed_deletes);
    total("total-equality-deletes", 0, 0);
    total("total-files-size", added_size, removed_size);
    let removes = !(removed.data.is_empty() && removed.deletes.is_empty());
    if removes {
        set("deleted-data-files", removed.data.len() as u64);
        set("deleted-records", removed_data);
        set("removed-delete-files", removed.deletes.len() as u64);
        set("removed-position-deletes", removed_deletes);
        set("removed-files-size", removed_size);
    }
    props.extend(delta.properties.clone());
    let operation = match (delta.data_files.is_empty(), delta.delete_files.is_empty()) {
        (false, true) if !removes => Operation::Append,
        (true, _) if removes || !delta.delete_files.is_empty() => Operation::Delete,
        _ => Operation::Overwrite,
    };
    Summary {
        operation,
        additional_properties: props,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(
            super::numbered_placeholders("a = ? AND b = ?"),
            "a = $1 AND b = $2"
        );
    }
}
