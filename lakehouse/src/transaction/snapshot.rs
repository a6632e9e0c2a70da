//! One snapshot, written: the manifests of the files it adds and removes,
//! the parent's other manifests carried over, the manifest list, the
//! summary (what it added and removed, the table's totals carried forward,
//! floe's state) and the next metadata. Nothing is visible until the
//! pointer swaps ([`super::pointer`]).
//!
//! ```text
//!  SnapshotUpdate (operation, data files, delete files, removal, schema)
//!    │ write a data manifest and a delete manifest (entries inherit the
//!    │ snapshot's sequence number)
//!    │ carry every manifest of the parent over; a manifest holding a file
//!    │ this snapshot removes is rewritten with it as deleted
//!    │ write the manifest list, the snapshot and the next metadata
//!    ▼
//!  the next metadata, for the pointer swap
//! ```
//!
//! A crash anywhere here leaves the table as it was; the files written are
//! orphans for `floe maintain orphans`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use iceberg::spec::{
    DataContentType, DataFile, FormatVersion, ManifestContentType, ManifestEntryRef, ManifestFile,
    ManifestList, ManifestListWriter, ManifestWriterBuilder, Operation, Schema, SchemaRef,
    Snapshot, Struct, Summary, TableMetadata, TableMetadataBuildResult,
};
use iceberg::table::Table;

use super::manifest_merge::{merge_small, Carried, InHand, ManifestMergePolicy, MergeTarget};
use super::pointer::current_location;
use super::{write_error, CommitError};

/// Parent manifests read at once when a snapshot removes files.
const MANIFEST_READS_AT_ONCE: usize = 8;

/// What one snapshot does: the files it adds and removes, its operation,
/// a new schema, extra summary properties.
#[derive(Debug, Clone)]
pub struct SnapshotUpdate {
    /// Iceberg's name for what the snapshot does: `append` (only adds
    /// data), `overwrite` (adds and removes or deletes rows), `delete`
    /// (only removes or deletes), `replace` (rewrites rows without changing
    /// them: compaction).
    pub operation: Operation,
    pub data_files: Vec<DataFile>,
    pub delete_files: Vec<DataFile>,
    /// Summary properties: floe's state (set by the transaction).
    pub properties: HashMap<String, String>,
    /// Which of the parent snapshot's live files this snapshot removes.
    pub remove: Removal,
    /// A new current schema, committed with the snapshot in the same
    /// metadata swap (the data files are written in it).
    pub schema: Option<Schema>,
}

impl SnapshotUpdate {
    /// An update of `operation` that adds `data_files`.
    pub fn new(operation: Operation, data_files: Vec<DataFile>) -> Self {
        Self {
            operation,
            data_files,
            delete_files: Vec::new(),
            properties: HashMap::new(),
            remove: Removal::Nothing,
            schema: None,
        }
    }

    /// The operation a change of table data is, by what it adds and
    /// removes (compaction says `replace` itself).
    pub fn operation_of(data_added: bool, rows_removed: bool) -> Operation {
        match (data_added, rows_removed) {
            // nothing removed: an append (of nothing, for a commit that
            // only records offsets or a schema)
            (_, false) => Operation::Append,
            (false, true) => Operation::Delete,
            (true, true) => Operation::Overwrite,
        }
    }
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
    /// The manifest written again without the removed files, once an
    /// attempt has (`None` when it removes nothing, or was merged).
    rewritten: Option<ManifestFile>,
    /// Its live files: kept, and removed by this snapshot.
    entries: InHand,
}

/// Names the manifests one commit attempt writes.
pub(super) struct ManifestPaths {
    dir: String,
    commit_id: uuid::Uuid,
    written: usize,
}

impl ManifestPaths {
    pub(super) fn next(&mut self) -> String {
        let path = format!("{}/{}-m{}.avro", self.dir, self.commit_id, self.written);
        self.written += 1;
        path
    }
}

/// Writes the snapshot `delta` makes on `table`'s current one and returns
/// the next metadata. Pass the same `cache` to every attempt of the same
/// update (its removal must not change).
pub(crate) async fn produce(
    table: &Table,
    delta: &SnapshotUpdate,
    cache: &mut RetryCache,
) -> Result<TableMetadataBuildResult, CommitError> {
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

    let mut paths = ManifestPaths {
        dir: metadata_dir,
        commit_id,
        written: 0,
    };
    let mut manifests: Vec<ManifestFile> = Vec::new();
    for (content, files) in [
        (DataContentType::Data, &delta.data_files),
        (DataContentType::PositionDeletes, &delta.delete_files),
    ] {
        if files.is_empty() {
            continue;
        }
        let entries = Entries::Added(files);
        let path = paths.next();
        manifests.push(write_manifest(table, &schema, &path, snapshot_id, content, entries).await?);
    }
    // the parent's manifests this snapshot lists, with the entries of those
    // it has read (a manifest merge needs no second read of them)
    let mut carried: Vec<Carried> = Vec::new();
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
            carried.extend(parents.cloned().map(Carried::listed));
        } else {
            // a manifest with a removed file is written again (unless it
            // is merged): its other live files as existing, the removed
            // ones as deleted, every entry keeping its sequence numbers (a
            // spec rule). The manifests not read before are fetched a few
            // at a time: each is a request to the store, and a table
            // committed every second has dozens.
            let parents: Vec<&ManifestFile> = parents.collect();
            let unread: Vec<BoxFuture<'_, _>> = parents
                .iter()
                .filter(|m| !cache.manifests.contains_key(&m.manifest_path))
                .map(|m| {
                    m.load_manifest(file_io)
                        .map(move |loaded| (m.manifest_path.clone(), loaded))
                        .boxed()
                })
                .collect();
            let mut fetched: HashMap<String, _> = futures::stream::iter(unread)
                .buffered(MANIFEST_READS_AT_ONCE)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect();
            for manifest in parents {
                let cached = match cache.manifests.get(&manifest.manifest_path) {
                    Some(cached) => cached.clone(),
                    None => {
                        let loaded = match fetched.remove(&manifest.manifest_path) {
                            Some(loaded) => loaded,
                            None => manifest.load_manifest(file_io).await,
                        }
                        .map_err(step("read parent manifest"))?;
                        let (gone, kept): (Vec<_>, Vec<_>) = loaded
                            .entries()
                            .iter()
                            .filter(|e| e.is_alive())
                            .cloned()
                            .partition(|e| delta.remove.removes(e.data_file()));
                        let cached = CachedManifest {
                            rewritten: None,
                            entries: InHand {
                                kept,
                                removed: gone,
                            },
                        };
                        cache
                            .manifests
                            .insert(manifest.manifest_path.clone(), cached.clone());
                        cached
                    }
                };
                for entry in &cached.entries.removed {
                    removed.add(manifest.content, entry);
                }
                carried.push(match cached.rewritten {
                    // written by an earlier attempt of this snapshot
                    Some(rewritten) => Carried {
                        manifest: rewritten,
                        entries: Some(cached.entries),
                        rewrite: false,
                    },
                    None => Carried {
                        manifest: manifest.clone(),
                        rewrite: !cached.entries.removed.is_empty(),
                        entries: Some(cached.entries),
                    },
                });
            }
        }
    }
    let target = MergeTarget {
        table,
        schema: &schema,
        snapshot_id,
        policy: ManifestMergePolicy::of(metadata.properties()),
        all_in_hand: !matches!(delta.remove, Removal::Nothing),
    };
    let (listed, rewritten) = merge_small(&target, carried, &mut paths).await?;
    manifests.extend(listed);
    // a retry lists these as they are
    for (parent_path, manifest) in rewritten {
        if let Some(cached) = cache.manifests.get_mut(&parent_path) {
            cached.rewritten = Some(manifest);
        }
    }

    let list_path = format!("{}/snap-{snapshot_id}-1-{commit_id}.avro", paths.dir);
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

    let summary = summary(parent.as_deref().map(Snapshot::summary), delta, &removed);
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
    if let Some(new_schema) = delta.schema.clone() {
        builder = builder
            .add_current_schema(new_schema)
            .map_err(step("add schema"))?;
    }
    builder
        .set_branch_snapshot(snapshot, "main")
        .and_then(|b| b.build())
        .map_err(step("build metadata"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The entries of one manifest a snapshot writes.
pub(super) enum Entries<'a> {
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
pub(super) async fn write_manifest(
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
fn summary(parent: Option<&Summary>, delta: &SnapshotUpdate, removed: &Removed) -> Summary {
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
    Summary {
        operation: delta.operation.clone(),
        additional_properties: props,
    }
}
