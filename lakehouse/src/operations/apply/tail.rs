//! Copy-on-write tails: a commit writes a partition's newest small file
//! again, with its own rows, instead of adding one more file beside it.
//!
//! At 200 ms commits every commit adds a data file, and usually a
//! position-delete file, to each partition it writes, and a merge in the
//! background, however quick, runs beside several commits: readers open the
//! partition's merged files plus every file of the commits since, and each
//! file costs them a request and a footer whatever its rows
//! (docs/benchmarks.md: the live table read 2 to 4 times slower than its
//! rows compacted, nearly all of it per file).
//!
//! So the writer keeps the rows of the file its last commit wrote into each
//! partition (the partition's tail), and the next commit into that
//! partition writes them again, after its own rows, into the one file that
//! replaces the tail. Rows of the tail the commit updates or deletes are
//! left out instead of being named in a delete file; CDC changes hit recent
//! rows most (a trip's later states follow its first within minutes), so
//! most of a commit's deletes never become files. A tail is written again
//! at most `tail_rewrites` times, and only while smaller than
//! [`FRESH_SMALL_ROWS`]; then the merges take it over, as they do every
//! other file, so each row is rewritten a bounded number of times more.
//!
//! Why this is safe:
//! - The commit is made on the table the writer planned on, so a tail
//!   another writer removed (a `floe maintain compact`) is a lost race;
//!   following that writer forgets every tail.
//! - Merges never pick a tail, so a merge under way never holds a file a
//!   commit removes.
//! - A tail is used only when no delete file names it (its rows are the
//!   file's rows) and its partition holds no equality deletes (rows
//!   written again would outlive them), only under the schema and spec it
//!   was written with, and not while a snapshot is read again (its
//!   reconciliation tells rows read again by their files).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::{BooleanArray, RecordBatch, StructArray, UInt32Array};
use iceberg::spec::Struct;

use super::ledger::FileLedger;
use super::{Keying, PlannedRows, TableWriter};
use crate::error::LakehouseError;
use crate::index::pk_index::{BatchKeys, PrimaryKeyIndex, RowLocation};
use crate::spec::parquet::FRESH_SMALL_ROWS;
use crate::spec::write::{partition_values, WrittenRows};

/// A partition's newest data file, written by the writer's last commit.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    path: Arc<str>,
    /// Every row of the file, in the table's schema.
    rows: RecordBatch,
    schema_id: i32,
    spec_id: i32,
    /// Times its rows were written before (0: a commit's own file).
    rewrites: u32,
}

/// The tails of a table's partitions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tails {
    by_partition: HashMap<Struct, Tail>,
}

/// The tails a commit writes again.
#[derive(Default)]
pub(crate) struct TakenTails {
    /// The tails' files, which the commit removes.
    pub(crate) paths: HashSet<String>,
    /// Each tail's rows that stay (appended after the commit's rows), the
    /// keys of all its rows, and the positions of the ones that stay.
    kept: Vec<(RecordBatch, BatchKeys, Vec<u32>)>,
    rewrites: HashMap<Struct, u32>,
}

impl TakenTails {
    pub(crate) fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The rows the commit writes again.
    pub(crate) fn rows(&self) -> impl Iterator<Item = &RecordBatch> {
        self.kept.iter().map(|(rows, _, _)| rows)
    }

    pub(crate) fn num_rows(&self) -> usize {
        self.rows().map(RecordBatch::num_rows).sum()
    }
}

/// What taking a tail needs to know of the writer and the table.
pub(crate) struct TailContext<'a> {
    pub(crate) index: &'a PrimaryKeyIndex,
    pub(crate) ledger: &'a FileLedger,
    /// The table's key columns' names, in the index's order.
    pub(crate) key_names: &'a [String],
    pub(crate) schema_id: i32,
    pub(crate) spec_id: i32,
}

impl Tails {
    pub(crate) fn clear(&mut self) {
        self.by_partition.clear();
    }

    /// The tails' files, which merges leave alone.
    pub(crate) fn paths(&self) -> HashSet<Arc<str>> {
        self.by_partition.values().map(|t| t.path.clone()).collect()
    }

    /// Takes the tails of the partitions in `written_to` that a commit
    /// writes again: with, for each, its rows that neither this batch's
    /// upserts (`planned`, not yet in the index) nor its deletes (already
    /// out of the index) replace. The rest are left as they are.
    pub(crate) fn take(
        &self,
        cx: &TailContext<'_>,
        planned: &PlannedRows,
        written_to: &HashSet<Struct>,
        table_schema: &arrow_schema::SchemaRef,
    ) -> Result<TakenTails, LakehouseError> {
        let mut taken = TakenTails::default();
        let usable: HashMap<u32, (&Struct, &Tail)> = self
            .by_partition
            .iter()
            .filter(|(partition, tail)| {
                written_to.contains(*partition)
                    && tail.schema_id == cx.schema_id
                    && tail.spec_id == cx.spec_id
                    && tail.rows.schema() == *table_schema
                    && cx.ledger.data.contains_key(&tail.path)
                    && !cx.ledger.names(&tail.path)
                    && !cx.ledger.has_equality_deletes(partition)
            })
            .filter_map(|(partition, tail)| {
                Some((cx.index.file_id(&tail.path)?, (partition, tail)))
            })
            .collect();
        if usable.is_empty() {
            return Ok(taken);
        }
        // rows of a tail this batch writes again under the same key
        let mut replaced: HashMap<u32, HashSet<u32>> = HashMap::new();
        for &row in &planned.upserts {
            let Some(key) = planned.keys.get(row as usize) else {
                continue;
            };
            if let Some(loc) = cx.index.location(key) {
                if usable.contains_key(&loc.file) {
                    replaced.entry(loc.file).or_default().insert(loc.pos);
                }
            }
        }
        let mut files: Vec<_> = usable.into_iter().collect();
        files.sort_by(|a, b| a.1 .1.path.cmp(&b.1 .1.path));
        for (file, (partition, tail)) in files {
            let keys = key_columns(&tail.rows, cx.key_names)?;
            let keys = cx.index.batch_keys(&keys)?;
            let replaced = replaced.get(&file);
            let stays: Vec<bool> = (0..tail.rows.num_rows() as u32)
                .map(|pos| {
                    !replaced.is_some_and(|r| r.contains(&pos))
                        && keys.get(pos as usize).is_some_and(|key| {
                            cx.index.location(key) == Some(RowLocation { file, pos })
                        })
                })
                .collect();
            let positions: Vec<u32> = (0..stays.len() as u32)
                .filter(|p| stays[*p as usize])
                .collect();
            let kept =
                arrow_select::filter::filter_record_batch(&tail.rows, &BooleanArray::from(stays))
                    .map_err(|source| LakehouseError::Arrow {
                    context: format!("the rows that stay of {}", tail.path),
                    source,
                })?;
            taken.paths.insert(tail.path.to_string());
            taken.rewrites.insert(partition.clone(), tail.rewrites + 1);
            taken.kept.push((kept, keys, positions));
        }
        Ok(taken)
    }

    /// After a commit wrote `rows` (its own first, then the taken tails'
    /// rows that stay) as `written`: the files it wrote become the tails
    /// of their partitions, unless written again `max_rewrites` times or
    /// large; every other partition's tail is left to the merges.
    pub(crate) fn committed(
        &mut self,
        rows: &RecordBatch,
        written: &WrittenRows,
        taken: &TakenTails,
        cx: (i32, i32),
        max_rewrites: u32,
    ) -> Result<(), LakehouseError> {
        self.by_partition.clear();
        let mut of_file: Vec<Vec<u32>> = vec![Vec::new(); written.files.len()];
        for (row, (file, _)) in written.locations.iter().enumerate() {
            if let Some(rows) = of_file.get_mut(*file as usize) {
                rows.push(row as u32);
            }
        }
        for (file, indices) in written.files.iter().zip(of_file) {
            let rewrites = taken.rewrites.get(file.partition()).copied().unwrap_or(0);
            if rewrites >= max_rewrites || indices.len() >= FRESH_SMALL_ROWS {
                continue;
            }
            let file_rows =
                arrow_select::take::take_record_batch(rows, &UInt32Array::from(indices)).map_err(
                    |source| LakehouseError::Arrow {
                        context: format!("the rows of {}", file.file_path()),
                        source,
                    },
                )?;
            self.by_partition.insert(
                file.partition().clone(),
                Tail {
                    path: Arc::from(file.file_path()),
                    rows: file_rows,
                    schema_id: cx.0,
                    spec_id: cx.1,
                    rewrites,
                },
            );
        }
        Ok(())
    }
}

impl TableWriter {
    /// The tails the commit of `new_rows` (rows of `planned`) writes
    /// again: those of the partitions it writes to, when the writer
    /// merges (its ledger says which files are live).
    pub(super) fn take_tails(
        &self,
        planned: &PlannedRows,
        new_rows: &RecordBatch,
    ) -> Result<TakenTails, LakehouseError> {
        let (Some(ledger), Keying::Primary(key_names)) = (&self.ledger, &self.keying) else {
            return Ok(TakenTails::default());
        };
        if !self.merge_policy.enabled
            || self.merge_policy.tail_rewrites == 0
            || new_rows.num_rows() == 0
        {
            return Ok(TakenTails::default());
        }
        let metadata = self.table.metadata();
        let schema = metadata.current_schema().clone();
        let written_to: HashSet<Struct> = partition_values(&self.table, &schema, new_rows)?
            .into_iter()
            .collect();
        let cx = TailContext {
            index: &self.index,
            ledger,
            key_names,
            schema_id: metadata.current_schema_id(),
            spec_id: metadata.default_partition_spec_id(),
        };
        self.tails
            .take(&cx, planned, &written_to, &new_rows.schema())
    }
}

/// Points the index at where the taken tails' rows that stay are now:
/// they follow the commit's own `new_rows` rows in `written`.
pub(crate) fn relocate_kept(
    index: &mut PrimaryKeyIndex,
    taken: &TakenTails,
    written: &WrittenRows,
    new_rows: usize,
) {
    let file_ids: Vec<u32> = written
        .files
        .iter()
        .map(|f| index.register_file(f.file_path()))
        .collect();
    let mut row = new_rows;
    for (_, keys, positions) in &taken.kept {
        for &pos in positions {
            if let (Some(key), Some((file, at))) =
                (keys.get(pos as usize), written.locations.get(row))
            {
                // the old row's delete names a file the commit removes
                let _ = index.upsert(
                    key,
                    RowLocation {
                        file: file_ids[*file as usize],
                        pos: *at,
                    },
                );
            }
            row += 1;
        }
    }
}

/// The key columns of `rows`, by name, as the index keys them.
fn key_columns(rows: &RecordBatch, names: &[String]) -> Result<StructArray, LakehouseError> {
    let schema = rows.schema();
    let mut fields = Vec::with_capacity(names.len());
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let (i, field) =
            schema
                .column_with_name(name)
                .ok_or_else(|| LakehouseError::SchemaMismatch {
                    table: String::new(),
                    reason: format!("a tail's rows lack the key column {name:?}"),
                })?;
        fields.push(Arc::new(field.clone()));
        columns.push(rows.column(i).clone());
    }
    StructArray::try_new(fields.into(), columns, None).map_err(|source| LakehouseError::Arrow {
        context: "a tail's keys".into(),
        source,
    })
}
