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

use crate::error::{iceberg_error, LakehouseError};
use crate::spec::read::{manifest_list, read_position_deletes};

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
        let Some(snapshot) = table.metadata().current_snapshot() else {
            return Ok(ledger);
        };
        let name = table.identifier().clone();
        let list = manifest_list(table, snapshot).await?;
        let mut position_deletes = Vec::new();
        for manifest in list.entries() {
            let loaded = manifest
                .load_manifest(table.file_io())
                .await
                .map_err(iceberg_error("read manifest", &name))?;
            for entry in loaded.entries().iter().filter(|e| e.is_alive()) {
                let file = entry.data_file();
                match entry.content_type() {
                    DataContentType::Data => ledger.add_data(file),
                    DataContentType::PositionDeletes => position_deletes
                        .push((file.file_path().to_string(), file.partition().clone())),
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
        }
        for (path, partition) in position_deletes {
            let mut hits: HashMap<Arc<str>, u64> = HashMap::new();
            for (file, _) in read_position_deletes(table, &path).await? {
                *hits.entry(Arc::from(file.as_str())).or_default() += 1;
            }
            ledger.add_deletes(&path, &partition, &hits);
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

    /// Notes a position-delete file removing `hits` rows from each data
    /// file it names.
    fn add_deletes(&mut self, path: &str, partition: &Struct, hits: &HashMap<Arc<str>, u64>) {
        let mut names = HashSet::new();
        for (file, rows) in hits {
            if let Some(live) = self.data.get_mut(file) {
                if live.partition == *partition {
                    live.deleted += rows;
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
    /// (`hits`: rows the deletes remove, per data file), everything before
    /// it gone when `removes_all`.
    pub(crate) fn committed(
        &mut self,
        data: &[DataFile],
        deletes: &[DataFile],
        hits: &HashMap<Arc<str>, u64>,
        removes_all: bool,
    ) {
        if removes_all {
            self.data.clear();
            self.deletes.clear();
        }
        for file in data {
            self.add_data(file);
        }
        for file in deletes {
            self.add_deletes(file.file_path(), file.partition(), hits);
        }
    }

    /// Follows a merge: `removed` data and delete files gone, `added`
    /// (rows without deletes) in their place.
    pub(crate) fn replaced(&mut self, removed: &HashSet<String>, added: &[DataFile]) {
        self.data.retain(|path, _| !removed.contains(path.as_ref()));
        self.deletes
            .retain(|path, _| !removed.contains(path.as_ref()));
        for file in added {
            self.add_data(file);
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

    /// Whether equality deletes (another engine's) apply in `partition`:
    /// rewriting its rows would give them a newer sequence number than the
    /// deletes, bringing deleted rows back, so it is left alone.
    pub(crate) fn has_equality_deletes(&self, partition: &Struct) -> bool {
        self.deletes
            .values()
            .any(|d| d.names.is_none() && d.partition == *partition)
    }

    /// The delete files naming any of `files`, and of those, the ones that
    /// name nothing else still live (a merge of `files` removes them).
    pub(crate) fn deletes_of(&self, files: &HashSet<&str>) -> (Vec<String>, Vec<String>) {
        let mut read = Vec::new();
        let mut remove = Vec::new();
        for (path, deletes) in &self.deletes {
            let Some(names) = &deletes.names else {
                continue;
            };
            if !names.iter().any(|n| files.contains(n.as_ref())) {
                continue;
            }
            read.push(path.to_string());
            let rest_gone = names
                .iter()
                .all(|n| files.contains(n.as_ref()) || !self.data.contains_key(n));
            if rest_gone {
                remove.push(path.to_string());
            }
        }
        read.sort();
        remove.sort();
        (read, remove)
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
