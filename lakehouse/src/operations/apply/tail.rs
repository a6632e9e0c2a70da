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
//! left out instead of being named in a delete file.
//!
//! ```text
//!  commit:   c-9 ... c-4 c-3 c-2 c-1   c
//!  tail:     [ old rows  | young rows ] + the commit's rows
//!                  |
//!  when its oldest row has been written about `tail_rewrites` times (or
//!  the tail holds about SPILL_ROWS; both drawn per partition within a
//!  quarter either side), the rows older than a third of that age leave
//!  it, into a file of their own that the merges take over:
//!            [ old rows ] (sealed)   [ young rows + the commit's rows ]
//! ```
//!
//! CDC changes hit recent rows most (a trip's later states follow its
//! first within minutes; the benchmark's workload updates the last
//! transaction's rows and deletes rows a second old), so keeping the young
//! rows in the tail, and sealing only the old ones, keeps most deletes from
//! ever becoming files: sealing the whole tail at once left its newest rows
//! to be deleted from a file the tail no longer was, a delete file each
//! commit until the next merge. Each row is written again at most 5/4 of
//! `tail_rewrites` times (its last one into the sealed file). The age is
//! drawn per partition so that partitions written by the same commits do
//! not all seal in one of them (see [`SealAt`]).
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

/// A tail holding this many rows seals its old ones whatever their age:
/// every commit writes the tail again, so its size is the commit's cost
/// (half of [`FRESH_SMALL_ROWS`], so a tail stays a small file).
const SPILL_ROWS: usize = FRESH_SMALL_ROWS / 2;

/// A partition's newest data file, written by the writer's last commit.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    path: Arc<str>,
    /// Every row of the file, in the table's schema.
    rows: RecordBatch,
    /// For each row, the writer's commit that first wrote it.
    born: Vec<u64>,
    schema_id: i32,
    spec_id: i32,
}

impl Tail {
    /// The commit that first wrote the row at `pos` (`now` for one it
    /// does not know, so it stays young).
    fn born_at(&self, pos: u32, now: u64) -> u64 {
        self.born.get(pos as usize).copied().unwrap_or(now)
    }
}

/// The tails of a table's partitions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tails {
    by_partition: HashMap<Struct, Tail>,
}

/// Rows of one tail a commit writes again.
struct TailRows {
    rows: RecordBatch,
    /// The keys of all the tail's rows.
    keys: Arc<BatchKeys>,
    /// The positions in the tail's file of `rows`.
    positions: Vec<u32>,
    born: Vec<u64>,
}

/// The tails a commit writes again.
#[derive(Default)]
pub(crate) struct TakenTails {
    /// The tails' files, which the commit removes.
    pub(crate) paths: HashSet<String>,
    /// The young rows that stay in the tails (appended after the
    /// commit's rows).
    kept: Vec<TailRows>,
    /// The old rows that leave them, into files of their own.
    sealed: Vec<TailRows>,
}

impl TakenTails {
    pub(crate) fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The rows the commit writes again into its own files.
    pub(crate) fn kept_rows(&self) -> impl Iterator<Item = &RecordBatch> {
        self.kept.iter().map(|t| &t.rows)
    }

    /// The rows the commit writes into sealed files, none if none.
    pub(crate) fn sealed_rows(&self) -> impl Iterator<Item = &RecordBatch> {
        self.sealed.iter().map(|t| &t.rows)
    }

    /// All the rows the commit writes again.
    pub(crate) fn num_rows(&self) -> usize {
        self.kept_rows()
            .chain(self.sealed_rows())
            .map(RecordBatch::num_rows)
            .sum()
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
    /// The writer's commit under way.
    pub(crate) commit: u64,
    /// `tail_rewrites`: the age (in the writer's commits) at which a
    /// tail's old rows are sealed.
    pub(crate) max_rewrites: u32,
}

/// When a partition's tail seals: at an age (in commits) and a size
/// drawn, per partition, within a quarter of `tail_rewrites` and of
/// [`SPILL_ROWS`] either side.
///
/// A commit usually writes every partition it has a tail in, so tails of
/// one age would seal in the same commit, and the merges of every
/// partition's large file would follow in one round: a burst of rewriting
/// that the commits beside it wait on. Drawn per partition (from a hash
/// of its values, the same in every process), the seals spread over the
/// commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SealAt {
    age: u64,
    rows: usize,
}

impl SealAt {
    fn of(partition: &Struct, max_rewrites: u32) -> Self {
        use std::hash::{Hash, Hasher};
        // DefaultHasher::new() has fixed keys: the same draw every run
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        partition.hash(&mut hasher);
        let draw = hasher.finish();
        // within [-1/4, +1/4) of the setting, by two halves of the draw
        let spread = |value: u64, bits: u64| -> u64 {
            let quarter = value / 4;
            if quarter == 0 {
                return value;
            }
            value - quarter + bits % (2 * quarter)
        };
        SealAt {
            age: spread(u64::from(max_rewrites), draw),
            rows: spread(SPILL_ROWS as u64, draw >> 32) as usize,
        }
    }
}

/// Which of a tail's rows that stay are sealed: none while the oldest
/// is younger than `at.age` commits and the tail smaller than `at.rows`,
/// else those older than a third of the oldest's age, so the newest rows
/// (the ones changes still reach) stay and the next seal is two thirds
/// of that age away.
fn sealed_rows(ages: &[u64], at: SealAt) -> Vec<bool> {
    let oldest = ages.iter().copied().max().unwrap_or(0);
    if oldest < at.age && ages.len() < at.rows {
        return vec![false; ages.len()];
    }
    let young = oldest / 3;
    ages.iter().map(|age| *age > young).collect()
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
    /// out of the index) replace, split into the young that stay in the
    /// tail and the old that are sealed. A tail whose rows would all be
    /// sealed as they are is left as it is: it is sealed already.
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
            let seal_at = SealAt::of(partition, cx.max_rewrites);
            let keys = key_columns(&tail.rows, cx.key_names)?;
            let keys = cx.index.batch_keys(&keys)?;
            let replaced = replaced.get(&file);
            let stays: Vec<u32> = (0..tail.rows.num_rows() as u32)
                .filter(|&pos| {
                    !replaced.is_some_and(|r| r.contains(&pos))
                        && keys.get(pos as usize).is_some_and(|key| {
                            cx.index.location(key) == Some(RowLocation { file, pos })
                        })
                })
                .collect();
            let ages: Vec<u64> = stays
                .iter()
                .map(|&pos| cx.commit.saturating_sub(tail.born_at(pos, cx.commit)))
                .collect();
            let sealed = sealed_rows(&ages, seal_at);
            let (mut young, mut old) = (Vec::new(), Vec::new());
            for (pos, sealed) in stays.into_iter().zip(sealed) {
                if sealed {
                    old.push(pos);
                } else {
                    young.push(pos);
                }
            }
            if young.is_empty() && old.len() == tail.rows.num_rows() {
                continue;
            }
            let keys = Arc::new(keys);
            let part = |positions: Vec<u32>| -> Result<TailRows, LakehouseError> {
                let mut mask = vec![false; tail.rows.num_rows()];
                for &p in &positions {
                    mask[p as usize] = true;
                }
                let rows = arrow_select::filter::filter_record_batch(
                    &tail.rows,
                    &BooleanArray::from(mask),
                )
                .map_err(|source| LakehouseError::Arrow {
                    context: format!("the rows that stay of {}", tail.path),
                    source,
                })?;
                Ok(TailRows {
                    rows,
                    keys: keys.clone(),
                    born: positions
                        .iter()
                        .map(|&p| tail.born_at(p, cx.commit))
                        .collect(),
                    positions,
                })
            };
            let young = part(young)?;
            let old = part(old)?;
            taken.paths.insert(tail.path.to_string());
            taken.kept.push(young);
            if old.rows.num_rows() > 0 {
                taken.sealed.push(old);
            }
        }
        Ok(taken)
    }

    /// After commit `commit` wrote `rows` (its own first, then the taken
    /// tails' young rows) as `written`: the files it wrote become the
    /// tails of their partitions, unless large; every other partition's
    /// tail is left to the merges.
    pub(crate) fn committed(
        &mut self,
        rows: &RecordBatch,
        written: &WrittenRows,
        taken: &TakenTails,
        cx: (i32, i32),
        commit: u64,
    ) -> Result<(), LakehouseError> {
        self.by_partition.clear();
        let kept: usize = taken.kept_rows().map(RecordBatch::num_rows).sum();
        let own = rows.num_rows().saturating_sub(kept);
        let born: Vec<u64> = std::iter::repeat_n(commit, own)
            .chain(taken.kept.iter().flat_map(|t| t.born.iter().copied()))
            .collect();
        let mut of_file: Vec<Vec<u32>> = vec![Vec::new(); written.files.len()];
        for (row, (file, _)) in written.locations.iter().enumerate() {
            if let Some(rows) = of_file.get_mut(*file as usize) {
                rows.push(row as u32);
            }
        }
        for (file, indices) in written.files.iter().zip(of_file) {
            if indices.len() >= FRESH_SMALL_ROWS {
                continue;
            }
            let file_born = indices
                .iter()
                .map(|&i| born.get(i as usize).copied().unwrap_or(commit))
                .collect();
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
                    born: file_born,
                    schema_id: cx.0,
                    spec_id: cx.1,
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
            commit: self.commits,
            max_rewrites: self.merge_policy.tail_rewrites,
        };
        self.tails
            .take(&cx, planned, &written_to, &new_rows.schema())
    }
}

/// Points the index at where the taken tails' rows are now: the young
/// ones follow the commit's own `new_rows` rows in `written`, the old
/// ones are the rows of `sealed`, in order.
pub(crate) fn relocate(
    index: &mut PrimaryKeyIndex,
    taken: &TakenTails,
    written: &WrittenRows,
    new_rows: usize,
    sealed: &WrittenRows,
) {
    relocate_rows(index, &taken.kept, written, new_rows);
    relocate_rows(index, &taken.sealed, sealed, 0);
}

fn relocate_rows(
    index: &mut PrimaryKeyIndex,
    taken: &[TailRows],
    written: &WrittenRows,
    first: usize,
) {
    let file_ids: Vec<u32> = written
        .files
        .iter()
        .map(|f| index.register_file(f.file_path()))
        .collect();
    let mut row = first;
    for tail in taken {
        for &pos in &tail.positions {
            if let (Some(key), Some((file, at))) =
                (tail.keys.get(pos as usize), written.locations.get(row))
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

#[cfg(test)]
mod tests {
    use super::*;

    const AT_24: SealAt = SealAt {
        age: 24,
        rows: SPILL_ROWS,
    };

    #[test]
    fn a_tail_seals_only_its_old_rows_and_only_when_its_oldest_is_due() {
        // ages of the rows that stay, in commits
        assert_eq!(sealed_rows(&[1, 5, 23], AT_24), vec![false; 3]);
        // the oldest reaches 24: rows older than 8 commits leave
        assert_eq!(
            sealed_rows(&[24, 9, 8, 1], AT_24),
            vec![true, true, false, false]
        );
        // a tail of SPILL_ROWS seals its older rows whatever their age
        let mut ages = vec![1; SPILL_ROWS - 3];
        ages.extend([3, 6, 7]);
        let sealed = sealed_rows(&ages, AT_24);
        assert_eq!(sealed.iter().filter(|s| **s).count(), 3);
        assert!(sealed[..SPILL_ROWS - 3].iter().all(|s| !s));
        // tail_rewrites 1: every row written once more leaves
        let at_1 = SealAt::of(&Struct::empty(), 1);
        assert_eq!(sealed_rows(&[1, 1], at_1), vec![true, true]);
        assert!(sealed_rows(&[], AT_24).is_empty());
    }

    #[test]
    fn partitions_seal_at_ages_and_sizes_spread_around_the_setting() {
        use iceberg::spec::Literal;
        let day = |d: i32| Struct::from_iter([Some(Literal::date(d))]);
        let draws: Vec<SealAt> = (0..30).map(|d| SealAt::of(&day(d), 24)).collect();
        // within a quarter either side
        assert!(
            draws.iter().all(|at| (18..30).contains(&at.age)),
            "{draws:?}"
        );
        let rows = SPILL_ROWS * 3 / 4..SPILL_ROWS * 5 / 4;
        assert!(draws.iter().all(|at| rows.contains(&at.rows)), "{draws:?}");
        // spread: 30 partitions do not share a few ages
        let ages: HashSet<u64> = draws.iter().map(|at| at.age).collect();
        assert!(ages.len() >= 8, "{ages:?}");
        let mean = draws.iter().map(|at| at.age).sum::<u64>() as f64 / 30.0;
        assert!((21.0..27.0).contains(&mean), "{mean}");
        // the same draw every time, in every process
        assert_eq!(SealAt::of(&day(7), 24), draws[7]);
        // settings under 4 have no quarter to spread over
        assert!((0..30).all(|d| SealAt::of(&day(d), 3).age == 3));
        assert_eq!(SealAt::of(&day(1), 0).age, 0);
    }
}
