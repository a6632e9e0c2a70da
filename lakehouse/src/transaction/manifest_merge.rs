//! Keeping a table's manifest list short: a snapshot that carries many
//! small manifests of its parent over writes their live entries into a
//! few larger ones instead.
//!
//! Every commit adds a manifest or two, so a table committed every second
//! would otherwise list thousands, and every reader (and every commit that
//! removes files) opens each of them. Iceberg's table properties say when
//! to merge, as Java's merging snapshot producer reads them:
//! `commit.manifest-merge.enabled`, `commit.manifest.min-count-to-merge`
//! (small manifests of one kind before they are merged) and
//! `commit.manifest.target-size-bytes` (what counts as small, and the size
//! a merged manifest grows to).
//!
//! A merged manifest lists its files as existing, each keeping the
//! snapshot id and sequence numbers it had (readers apply deletes by
//! them), and the files this snapshot removes as deleted; files that
//! earlier snapshots deleted are left out, as Java does.

use std::collections::HashMap;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use iceberg::spec::{
    DataContentType, ManifestContentType, ManifestEntryRef, ManifestFile, SchemaRef,
};
use iceberg::table::Table;

use super::snapshot::{write_manifest, Entries, ManifestPaths};
use super::{write_error, CommitError};

/// Turns manifest merging off when `false` (Iceberg's default: on).
pub const MANIFEST_MERGE_ENABLED: &str = "commit.manifest-merge.enabled";
/// Small manifests of one kind a snapshot carries before it merges them
/// (Iceberg's default: 100).
pub const MANIFEST_MIN_COUNT_TO_MERGE: &str = "commit.manifest.min-count-to-merge";
/// Below this a manifest is small; merged manifests grow to about it
/// (Iceberg's default: 8 MiB).
pub const MANIFEST_TARGET_SIZE_BYTES: &str = "commit.manifest.target-size-bytes";

/// Manifests fetched at once for a merge.
const READS_AT_ONCE: usize = 8;

/// When a snapshot merges manifests, from the table's properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ManifestMergePolicy {
    pub enabled: bool,
    pub min_count: usize,
    pub target_bytes: i64,
}

impl Default for ManifestMergePolicy {
    /// Iceberg's defaults.
    fn default() -> Self {
        Self {
            enabled: true,
            min_count: 100,
            target_bytes: 8 << 20,
        }
    }
}

impl ManifestMergePolicy {
    /// The policy `properties` set; a value that does not parse keeps the
    /// default (as Java's `PropertyUtil` would not, but a table written by
    /// another tool must still take commits).
    pub fn of(properties: &HashMap<String, String>) -> Self {
        let default = Self::default();
        let get = |key: &str| properties.get(key).map(|v| v.trim());
        Self {
            enabled: get(MANIFEST_MERGE_ENABLED)
                .map(|v| !v.eq_ignore_ascii_case("false"))
                .unwrap_or(default.enabled),
            // a count of 0 or 1 would merge a lone manifest into itself
            min_count: get(MANIFEST_MIN_COUNT_TO_MERGE)
                .and_then(|v| v.parse::<usize>().ok())
                .map(|n| n.max(2))
                .unwrap_or(default.min_count),
            target_bytes: get(MANIFEST_TARGET_SIZE_BYTES)
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(default.target_bytes),
        }
    }
}

/// The entries of a carried manifest the snapshot already holds: the
/// live files it keeps and those it removes. A merge needs no read of it.
#[derive(Clone, Default)]
pub(super) struct InHand {
    pub kept: Vec<ManifestEntryRef>,
    pub removed: Vec<ManifestEntryRef>,
}

/// A manifest of the parent the snapshot lists again.
pub(super) struct Carried {
    /// The manifest as it is (the parent's, or written again by an
    /// earlier attempt of this snapshot).
    pub manifest: ManifestFile,
    /// Its live entries, when the snapshot has read them.
    pub entries: Option<InHand>,
    /// It lists files this snapshot removes: it is written again with
    /// them as deleted, unless it is merged.
    pub rewrite: bool,
}

impl Carried {
    /// A manifest listed again as it is.
    pub fn listed(manifest: ManifestFile) -> Self {
        Self {
            manifest,
            entries: None,
            rewrite: false,
        }
    }
}

/// What a merge needs of the snapshot being written.
pub(super) struct MergeTarget<'a> {
    pub table: &'a Table,
    pub schema: &'a SchemaRef,
    pub snapshot_id: i64,
    pub policy: ManifestMergePolicy,
    /// Merge every small manifest, whatever the count: the commit has read
    /// them all already (it removes files).
    pub all_in_hand: bool,
}

/// The manifests the snapshot lists for `carried`: small ones of the
/// default partition spec merged, kind by kind, when there are enough of
/// them; the others as they are, or written again without the removed
/// files. Also returns, for the retry cache, each manifest written again
/// alone by its parent's path.
pub(super) async fn merge_small(
    target: &MergeTarget<'_>,
    carried: Vec<Carried>,
    paths: &mut ManifestPaths,
) -> Result<(Vec<ManifestFile>, Vec<(String, ManifestFile)>), CommitError> {
    let policy = target.policy;
    let spec_id = target.table.metadata().default_partition_spec_id();
    let is_small = |m: &ManifestFile| {
        policy.enabled && m.partition_spec_id == spec_id && m.manifest_length < policy.target_bytes
    };
    let mut alone = Vec::with_capacity(carried.len());
    let mut small: [Vec<Carried>; 2] = [Vec::new(), Vec::new()];
    for c in carried {
        match (is_small(&c.manifest), c.manifest.content) {
            (true, ManifestContentType::Data) => small[0].push(c),
            (true, ManifestContentType::Deletes) => small[1].push(c),
            (false, _) => alone.push(c),
        }
    }
    let mut out = Vec::new();
    for (kind, manifests) in small.into_iter().enumerate() {
        let worth_it =
            manifests.len() >= policy.min_count || (target.all_in_hand && manifests.len() >= 2);
        if !worth_it {
            alone.extend(manifests);
            continue;
        }
        let content = if kind == 0 {
            DataContentType::Data
        } else {
            DataContentType::PositionDeletes
        };
        for mut bin in bins(manifests, policy.target_bytes) {
            match bin.len() {
                1 => alone.append(&mut bin),
                _ => out.push(merge_bin(target, content, bin, paths).await?),
            }
        }
    }
    let mut rewritten = Vec::new();
    for c in alone {
        let Carried {
            manifest,
            entries: Some(entries),
            rewrite: true,
        } = c
        else {
            out.push(c.manifest);
            continue;
        };
        let content = match manifest.content {
            ManifestContentType::Data => DataContentType::Data,
            ManifestContentType::Deletes => DataContentType::PositionDeletes,
        };
        let written = write_entries(target, content, &entries, paths).await?;
        rewritten.push((manifest.manifest_path, written.clone()));
        out.push(written);
    }
    Ok((out, rewritten))
}

/// Packs `manifests`, in order, into runs of about `target_bytes`.
fn bins(manifests: Vec<Carried>, target_bytes: i64) -> Vec<Vec<Carried>> {
    let mut bins: Vec<Vec<Carried>> = Vec::new();
    let mut size = 0i64;
    for c in manifests {
        let len = c.manifest.manifest_length.max(0);
        match bins.last_mut() {
            Some(bin) if size + len <= target_bytes => {
                size += len;
                bin.push(c);
            }
            _ => {
                size = len;
                bins.push(vec![c]);
            }
        }
    }
    bins
}

/// Writes the manifests of `bin` as one, reading those not in hand.
async fn merge_bin(
    target: &MergeTarget<'_>,
    content: DataContentType,
    bin: Vec<Carried>,
    paths: &mut ManifestPaths,
) -> Result<ManifestFile, CommitError> {
    let table = target.table;
    let name = table.identifier().to_string();
    let file_io = table.file_io();
    let mut merged = InHand::default();
    let mut unread = Vec::new();
    for c in bin {
        match c.entries {
            Some(entries) => {
                merged.kept.extend(entries.kept);
                merged.removed.extend(entries.removed);
            }
            None => unread.push(c.manifest),
        }
    }
    let reads: Vec<BoxFuture<'_, _>> = unread
        .iter()
        .map(|m| m.load_manifest(file_io).boxed())
        .collect();
    let loaded = futures::stream::iter(reads)
        .buffered(READS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    for manifest in loaded {
        let manifest = manifest.map_err(write_error(&name, "read manifest to merge"))?;
        // entries an older snapshot deleted are history: left out
        merged
            .kept
            .extend(manifest.entries().iter().filter(|e| e.is_alive()).cloned());
    }
    write_entries(target, content, &merged, paths).await
}

/// Writes `entries` as one manifest of the snapshot: kept files as
/// existing, removed ones as deleted.
async fn write_entries(
    target: &MergeTarget<'_>,
    content: DataContentType,
    entries: &InHand,
    paths: &mut ManifestPaths,
) -> Result<ManifestFile, CommitError> {
    let listed = Entries::Rewritten {
        kept: &entries.kept,
        removed: &entries.removed,
    };
    write_manifest(
        target.table,
        target.schema,
        &paths.next(),
        target.snapshot_id,
        content,
        listed,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_reads_icebergs_properties_and_keeps_defaults_for_nonsense() {
        let props = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            ManifestMergePolicy::of(&props(&[])),
            ManifestMergePolicy::default()
        );
        let set = ManifestMergePolicy::of(&props(&[
            (MANIFEST_MERGE_ENABLED, "FALSE"),
            (MANIFEST_MIN_COUNT_TO_MERGE, "16"),
            (MANIFEST_TARGET_SIZE_BYTES, "1048576"),
        ]));
        assert_eq!(
            set,
            ManifestMergePolicy {
                enabled: false,
                min_count: 16,
                target_bytes: 1 << 20
            }
        );
        let odd = ManifestMergePolicy::of(&props(&[
            (MANIFEST_MIN_COUNT_TO_MERGE, "1"),
            (MANIFEST_TARGET_SIZE_BYTES, "-3"),
        ]));
        assert_eq!(odd.min_count, 2);
        assert_eq!(
            odd.target_bytes,
            ManifestMergePolicy::default().target_bytes
        );
        assert!(ManifestMergePolicy::of(&props(&[(MANIFEST_MIN_COUNT_TO_MERGE, "many")])).enabled);
    }
}
