//! The writer's account of its table's live files, by partition: each data
//! file's size, rows and rows deleted, and which data files each
//! position-delete file names. The in-ingest merge ([`super::merge`])
//! plans from it without reading the table's metadata on every commit.
//!
//! It is a cache: read from the table's manifests (and its position
//! deletes) when first needed, kept up to date by the writer's own commits
//! and merges, and dropped whenever the writer follows another writer's
//! commits (read again on the next merge).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use iceberg::spec::{DataContentType, DataFile, Struct};
use iceberg::table::Table;

use crate::error::LakehouseError;
use crate::spec::read::{live_entries, read_position_deletes};
use crate::transaction::Removal;

/// One live data file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LiveFile {
    pub(crate) partition: Struct,
    pub(crate) records: u64,
    pub(crate) bytes: u64,
    /// Rows position deletes remove from it.
    pub(crate) deleted: u64,
}

impl LiveFile {
    pub(crate) fn deleted_share(&self) -> f64 {
        if self.records == 0 {
            0.0
        } else {
            self.deleted as f64 / self.records as f64
        }
    }
}

/// One live delete file.
#[derive(Debug, Clone)]
pub(crate) struct LiveDeletes {
    pub(crate) partition: Struct,
    /// The data files it names (position deletes), or `None` for an
    /// equality-delete file, which names rows by value.
    pub(crate) names: Option<HashSet<Arc<str>>>,
}

/// The live files of one table.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileLedger {
    pub(crate) data: HashMap<Arc<str>, LiveFile>,
    pub(crate) deletes: HashMap<Arc<str>, LiveDeletes>,
}

impl FileLedger {
    /// The live files of `table`'s current snapshot; every position-delete
    /// file is read once, to learn which files it names.
    pub(crate) async fn read(table: &Table) -> Result<Self, LakehouseError> {
        let mut ledger = Self::default();
        let mut position_deletes = Vec::new();
        for entry in live_entries(table).await? {
            let file = entry.data_file();
            match entry.content_type() {
                DataContentType::Data => ledger.add_data(file),
                DataContentType::PositionDeletes => {
                    position_deletes.push((file.file_path().to_string(), file.partition().clone()))
                }
                DataContentType::EqualityDeletes => {
                    ledger.deletes.insert(
                        Arc::from(file.file_path()),
                        LiveDeletes {
                            partition: file.partition().clone(),
                            names: None,
                        },
                    );
                }
            }
        }
        for (path, partition) in position_deletes {
            let mut hits: HashMap<Arc<str>, u64> = HashMap::new();
            for (file, _) in read_position_deletes(table, &path).await? {
                *hits.entry(Arc::from(file.as_str())).or_default() += 1;
            }
            ledger.add_deletes(&path, &partition, &hits, true);
        }
        Ok(ledger)
    }

    fn add_data(&mut self, file: &DataFile) {
        self.data.insert(
            Arc::from(file.file_path()),
            LiveFile {
                partition: file.partition().clone(),
                records: file.record_count(),
                bytes: file.file_size_in_bytes(),
                deleted: 0,
            },
        );
    }

    /// Notes a position-delete file naming the data files of `hits` (in
    /// its partition), and with `new_rows`, that it removes that many more
    /// rows from each (without: it carries deletes already counted).
    fn add_deletes(
        &mut self,
        path: &str,
        partition: &Struct,
        hits: &HashMap<Arc<str>, u64>,
        new_rows: bool,
    ) {
        let mut names = HashSet::new();
        for (file, rows) in hits {
            if let Some(live) = self.data.get_mut(file) {
                if live.partition == *partition {
                    if new_rows {
                        live.deleted += rows;
                    }
                    names.insert(file.clone());
                }
            }
        }
        self.deletes.insert(
            Arc::from(path),
            LiveDeletes {
                partition: partition.clone(),
                names: Some(names),
            },
        );
    }

    /// Follows a commit of the writer's own: `data` and `deletes` added
    /// (`hits`: rows the deletes remove, per data file), what `removed`
    /// names gone first.
    pub(crate) fn committed(
        &mut self,
        data: &[DataFile],
        deletes: &[DataFile],
        hits: &HashMap<Arc<str>, u64>,
        removed: &Removal,
    ) {
        match removed {
            Removal::All => {
                self.data.clear();
                self.deletes.clear();
            }
            Removal::Files(paths) => {
                self.data.retain(|p, _| !paths.contains(p.as_ref()));
                self.deletes.retain(|p, _| !paths.contains(p.as_ref()));
            }
            Removal::Partitions(partitions) => {
                self.data.retain(|_, f| !partitions.contains(&f.partition));
                self.deletes
                    .retain(|_, d| !partitions.contains(&d.partition));
            }
            Removal::Nothing => {}
        }
        for file in data {
            self.add_data(file);
        }
        for file in deletes {
            self.add_deletes(file.file_path(), file.partition(), hits, true);
        }
    }

    /// Follows a merge: `removed` data and delete files gone, `added`
    /// (rows without deletes) in their place, and `carried` delete files
    /// naming the data files of `carried_hits` again.
    pub(crate) fn replaced(
        &mut self,
        removed: &HashSet<String>,
        added: &[DataFile],
        carried: &[DataFile],
        carried_hits: &HashMap<Arc<str>, u64>,
    ) {
        self.data.retain(|path, _| !removed.contains(path.as_ref()));
        self.deletes
            .retain(|path, _| !removed.contains(path.as_ref()));
        for file in added {
            self.add_data(file);
        }
        for file in carried {
            self.add_deletes(file.file_path(), file.partition(), carried_hits, false);
        }
    }

    /// The live data files of each partition.
    pub(crate) fn by_partition(&self) -> HashMap<&Struct, Vec<(&Arc<str>, &LiveFile)>> {
        let mut parts: HashMap<&Struct, Vec<(&Arc<str>, &LiveFile)>> = HashMap::new();
        for (path, file) in &self.data {
            parts.entry(&file.partition).or_default().push((path, file));
        }
        parts
    }

    /// Whether a live delete file names the data file at `path` (an
    /// equality-delete file names every file of its partition).
    pub(crate) fn names(&self, path: &str) -> bool {
        let partition = self.data.get(path).map(|f| &f.partition);
        self.deletes.values().any(|d| match &d.names {
            Some(names) => names.contains(path),
            None => partition == Some(&d.partition),
        })
    }

    /// Whether equality deletes (another engine's) apply in `partition`:
    /// rewriting its rows would give them a newer sequence number than the
    /// deletes, bringing deleted rows back, so it is left alone.
    pub(crate) fn has_equality_deletes(&self, partition: &Struct) -> bool {
        self.deletes
            .values()
            .any(|d| d.names.is_none() && d.partition == *partition)
    }

    /// The position-delete files of `partition`, and its live data files
    /// other than `merged`: a merge of `merged` removes those delete files
    /// and carries their deletes of the others into new ones (one per
    /// partition, or one per data file with `write.delete.granularity =
    /// file`), so a partition's deletes are consolidated at every merge;
    /// leaving the files that name only other files in place measured
    /// worse for readers (6x the delete files, docs/benchmarks.md).
    pub(crate) fn partition_deletes(
        &self,
        partition: &Struct,
        merged: &HashSet<&str>,
    ) -> (Vec<String>, HashSet<String>) {
        let mut deletes: Vec<String> = self
            .deletes
            .iter()
            .filter(|(_, d)| d.names.is_some() && d.partition == *partition)
            .map(|(p, _)| p.to_string())
            .collect();
        deletes.sort();
        let kept = self
            .data
            .iter()
            .filter(|(p, f)| f.partition == *partition && !merged.contains(p.as_ref()))
            .map(|(p, _)| p.to_string())
            .collect();
        (deletes, kept)
    }

    /// Delete files all of whose data files are gone: they delete nothing
    /// and every reader still opens them.
    pub(crate) fn dead_deletes(&self) -> Vec<String> {
        let mut dead: Vec<String> = self
            .deletes
            .iter()
            .filter(|(_, d)| {
                d.names
                    .as_ref()
                    .is_some_and(|names| names.iter().all(|n| !self.data.contains_key(n)))
            })
            .map(|(p, _)| p.to_string())
            .collect();
        dead.sort();
        dead
    }
}
