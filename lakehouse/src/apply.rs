//! Applying change batches to a table keyed by its primary key.
//!
//! ```text
//!  ChangeBatch ──▶ final event per key (after the last truncate, whose
//!                  commit removes every file the table had)
//!              ──▶ unchanged TOAST columns filled from earlier rows of the
//!                  batch, else from the table (read through the index)
//!              ──▶ upserted rows written (one data file per partition);
//!                  replaced and deleted rows become position deletes,
//!                  grouped by the partition of the file they delete from
//!              ──▶ one row-delta commit carrying the Kafka offsets
//! ```
//!
//! The [`TableWriter`] owns the table's primary-key index, built from the
//! current snapshot when it opens. If a commit fails, the writer refuses
//! further work until it is opened again (its index may be ahead of the
//! table).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StructArray, UInt32Array};
use arrow_schema::{Field, Fields};
use futures::TryStreamExt;
use iceberg::spec::{DataContentType, Struct};
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::Catalog;
use ingest::{ChangeBatch, Op};

use crate::append::changelog_rows;
use crate::commit::{commit_row_delta, CatalogPointer, CommitError, Removal, RowDelta};
use crate::config::TableMode;
use crate::error::LakehouseError;
use crate::pk_index::{BatchKeys, Key, PrimaryKeyIndex, RowLocation};
use crate::position_delete::{write_position_deletes, PositionDelete};
use crate::read::{read_columns, read_position_deletes};
use crate::table::append_columns;
use crate::write::{table_rows, write_rows};

/// Snapshot-summary property prefix of the Kafka offsets a table has
/// applied: `floe.offset.<topic>.<partition>` = last applied offset.
pub const OFFSET_PROPERTY_PREFIX: &str = "floe.offset.";

/// How often a batch is retried after losing the commit race.
pub const MAX_CONFLICT_RETRIES: u32 = 5;

/// What one batch did to the table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    pub rows_written: usize,
    pub rows_deleted: usize,
    /// Deletes of keys that were not live: counted, not an error.
    pub absent_deletes: usize,
    pub truncated: bool,
    /// Events at or below the offsets the table had already applied (a
    /// replay after a crash): skipped, so nothing is applied twice.
    pub already_applied: usize,
}

/// Applies change batches to one table.
pub struct TableWriter {
    catalog: Arc<dyn Catalog>,
    table: Table,
    pointer: CatalogPointer,
    index: PrimaryKeyIndex,
    /// The table's primary-key columns (its identifier fields), in order.
    key_names: Vec<String>,
    /// Partition of each data file the index points into.
    partitions: HashMap<Arc<str>, Struct>,
    commits: u64,
    poisoned: bool,
    mode: TableMode,
}

fn iceberg_error(operation: &'static str, table: &Table, source: iceberg::Error) -> LakehouseError {
    LakehouseError::Iceberg {
        operation,
        table: table.identifier().to_string(),
        source: Box::new(source),
    }
}

impl TableWriter {
    /// Opens a writer on `table`, building its primary-key index from the
    /// table's current snapshot (live rows of every data file, minus
    /// position deletes).
    pub async fn open(
        catalog: Arc<dyn Catalog>,
        table: Table,
        pointer: impl Into<CatalogPointer>,
    ) -> Result<Self, LakehouseError> {
        let pointer = pointer.into();
        let schema = table.metadata().current_schema().clone();
        let key_names: Vec<String> = schema
            .identifier_field_ids()
            .filter_map(|id| schema.name_by_field_id(id).map(str::to_string))
            .collect();
        // no primary key: only a changelog (append-mode) table is writable
        let mode = if !key_names.is_empty() {
            TableMode::Upsert
        } else if schema.field_by_name(append_columns::OP).is_some() {
            TableMode::Append
        } else {
            return Err(LakehouseError::NoPrimaryKey {
                source_table: table.identifier().to_string(),
            });
        };
        let arrow = iceberg::arrow::schema_to_arrow_schema(&schema)
            .map_err(|e| iceberg_error("schema", &table, e))?;
        let key_fields: Vec<Field> = key_names
            .iter()
            .filter_map(|n| arrow.field_with_name(n).ok().cloned())
            .collect();
        let key_types: Vec<_> = key_fields.iter().map(|f| f.data_type().clone()).collect();
        let mut writer = Self {
            catalog,
            index: PrimaryKeyIndex::new(&key_types)?,
            key_names: key_names.clone(),
            table,
            pointer,
            partitions: HashMap::new(),
            commits: 0,
            poisoned: false,
            mode,
        };
        if mode == TableMode::Upsert {
            writer
                .load_index(&key_names, Fields::from(key_fields))
                .await?;
        }
        Ok(writer)
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    pub fn live_rows(&self) -> usize {
        self.index.len()
    }

    /// Heap bytes of the primary-key index.
    pub fn index_heap_bytes(&self) -> usize {
        self.index.heap_bytes()
    }

    async fn load_index(
        &mut self,
        key_names: &[String],
        key_fields: Fields,
    ) -> Result<(), LakehouseError> {
        if self.table.metadata().current_snapshot().is_none() {
            return Ok(());
        }
        let scan = self
            .table
            .scan()
            .select(key_names.iter().cloned())
            .build()
            .map_err(|e| iceberg_error("plan index scan", &self.table, e))?;
        let tasks: Vec<_> = scan
            .plan_files()
            .await
            .map_err(|e| iceberg_error("plan index scan", &self.table, e))?
            .try_collect()
            .await
            .map_err(|e| iceberg_error("plan index scan", &self.table, e))?;
        let mut delete_files: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for task in tasks {
            let mut deleted: Vec<i64> = Vec::new();
            for delete in task
                .deletes
                .iter()
                .filter(|d| d.file_type == DataContentType::PositionDeletes)
            {
                if !delete_files.contains_key(&delete.file_path) {
                    let rows = read_position_deletes(&self.table, &delete.file_path).await?;
                    delete_files.insert(delete.file_path.clone(), rows);
                }
                deleted.extend(
                    delete_files[&delete.file_path]
                        .iter()
                        .filter(|(p, _)| *p == task.data_file_path)
                        .map(|(_, pos)| *pos),
                );
            }
            deleted.sort_unstable();
            let keys =
                read_columns(&self.table, &task.data_file_path, Some(key_names), None).await?;
            let key_struct = StructArray::new(key_fields.clone(), keys.columns().to_vec(), None);
            let batch_keys = self.index.batch_keys(&key_struct)?;
            let file = self.index.register_file(&task.data_file_path);
            for pos in 0..key_struct.len() {
                if deleted.binary_search(&(pos as i64)).is_ok() {
                    continue;
                }
                if let Some(key) = batch_keys.get(pos) {
                    self.index.upsert(
                        key,
                        RowLocation {
                            file,
                            pos: pos as u32,
                        },
                    );
                }
            }
            self.partitions.insert(
                Arc::from(task.data_file_path.as_str()),
                task.partition.clone().unwrap_or(Struct::empty()),
            );
        }
        Ok(())
    }

    /// The Kafka offsets the table's current snapshot has applied.
    pub fn applied_offsets(&self) -> BTreeMap<(String, i32), i64> {
        applied_offsets(&self.table)
    }

    /// Applies one change batch as one snapshot.
    pub async fn apply(&mut self, batch: &ChangeBatch) -> Result<ApplyStats, LakehouseError> {
        if self.poisoned {
            return Err(LakehouseError::WriterPoisoned {
                table: self.table.identifier().to_string(),
            });
        }
        self.poisoned = true;
        let mut attempt = 0;
        let stats = loop {
            match self.apply_inner(batch).await {
                // Another writer committed first. Starting again from its
                // snapshot is always safe: the index is rebuilt from it,
                // every delete is derived again, and events it already
                // holds are skipped by their offsets.
                Err(LakehouseError::Commit {
                    source: CommitError::Conflict { .. },
                    ..
                }) if attempt < MAX_CONFLICT_RETRIES => {
                    attempt += 1;
                    tracing::warn!(table = %self.table.identifier(), attempt, "commit conflict; reloading the table and retrying");
                    self.reload().await?;
                }
                other => break other?,
            }
        };
        self.poisoned = false;
        Ok(stats)
    }

    /// Reloads the table from the catalog and rebuilds the index from it.
    async fn reload(&mut self) -> Result<(), LakehouseError> {
        let table = self
            .catalog
            .load_table(self.table.identifier())
            .await
            .map_err(|e| iceberg_error("reload table", &self.table, e))?;
        let fresh = TableWriter::open(self.catalog.clone(), table, self.pointer.clone()).await?;
        *self = fresh;
        Ok(())
    }

    async fn apply_inner(&mut self, batch: &ChangeBatch) -> Result<ApplyStats, LakehouseError> {
        let table_name = self.table.identifier().to_string();
        let mut stats = ApplyStats::default();

        // a source table re-keyed in Postgres cannot be applied by key
        if self.mode == TableMode::Upsert
            && batch.key().is_some()
            && batch.key_fields != self.key_names
        {
            return Err(LakehouseError::SchemaMismatch {
                table: table_name.clone(),
                reason: format!(
                    "the source's primary key is now {:?} but the table's is {:?}; floe cannot re-key a table",
                    batch.key_fields, self.key_names
                ),
            });
        }
        // a replay: events the table already holds are skipped
        let applied = applied_offsets(&self.table);
        let fresh: Vec<bool> = (0..batch.num_rows())
            .map(|i| {
                let (partition, offset) = batch.position(i);
                applied
                    .get(&(batch.topic.clone(), partition))
                    .is_none_or(|&done| offset > done)
            })
            .collect();
        stats.already_applied = fresh.iter().filter(|f| !**f).count();
        if stats.already_applied == batch.num_rows()
            && batch.offsets.iter().all(|r| {
                applied
                    .get(&(batch.topic.clone(), r.partition))
                    .is_some_and(|&d| r.last <= d)
            })
        {
            return Ok(stats);
        }

        // nothing new, but Kafka moved on (tombstones only): record the offsets
        // with an empty commit
        if stats.already_applied == batch.num_rows() {
            self.commit(batch, Vec::new(), Vec::new(), false).await?;
            return Ok(stats);
        }
        if self.mode == TableMode::Append {
            return self.append(batch, &fresh, stats).await;
        }
        // no key column: every row is keyless (a batch of only a truncate)
        let keys = match batch.key() {
            Some(key) => self.index.batch_keys(key)?,
            None => BatchKeys::Absent(batch.num_rows()),
        };
        let after = batch
            .after()
            .ok_or_else(|| LakehouseError::SchemaMismatch {
                table: table_name.clone(),
                reason: "the change batch has no after-image".into(),
            })?;

        // everything before the last truncate is gone
        let start = (0..batch.num_rows())
            .rev()
            .find(|&i| fresh[i] && batch.op(i) == Some(Op::Truncate))
            .map_or(0, |t| t + 1);
        let mut deletes: Vec<PositionDelete> = Vec::new();
        if start > 0 {
            stats.truncated = true;
            // every file goes: the commit removes them all, no deletes needed
            self.index.clear();
            self.partitions.clear();
        }

        // the rows of each key in offset order, and its final row
        let mut rows_of: HashMap<Key<'_>, Vec<usize>> = HashMap::new();
        let mut order: Vec<Key<'_>> = Vec::new();
        for i in (start..batch.num_rows()).filter(|&i| fresh[i]) {
            let Some(key) = keys.get(i) else { continue };
            let rows = rows_of.entry(key).or_insert_with(|| {
                order.push(key);
                Vec::new()
            });
            rows.push(i);
        }

        let mut upsert_rows: Vec<u32> = Vec::new();
        let mut upsert_keys: Vec<Key<'_>> = Vec::new();
        for key in &order {
            let rows = &rows_of[key];
            let last = *rows.last().unwrap_or(&start);
            match batch.op(last) {
                Some(Op::Delete) => match self.index.remove(*key) {
                    Some(d) => {
                        deletes.push(d);
                        stats.rows_deleted += 1;
                    }
                    None => stats.absent_deletes += 1,
                },
                Some(Op::Create | Op::Update | Op::Read) => {
                    upsert_rows.push(last as u32);
                    upsert_keys.push(*key);
                }
                _ => {}
            }
        }

        // the new rows, with unchanged TOAST columns filled in
        let picked = arrow_select::take::take(after, &UInt32Array::from(upsert_rows.clone()), None)
            .map_err(|e| LakehouseError::Arrow {
                context: format!("rows for {table_name}"),
                source: e,
            })?;
        let mut picked = picked
            .as_any()
            .downcast_ref::<StructArray>()
            .cloned()
            .ok_or_else(|| LakehouseError::SchemaMismatch {
                table: table_name.clone(),
                reason: "after-image is not a struct".into(),
            })?;
        picked = self
            .fill_unchanged(batch, &picked, &upsert_rows, &upsert_keys, &rows_of)
            .await?;
        let (rows, written, prefix) = self.write_new_rows(&picked).await?;
        let file_ids: Vec<u32> = written
            .files
            .iter()
            .map(|f| self.index.register_file(f.file_path()))
            .collect();
        for f in &written.files {
            self.partitions
                .insert(Arc::from(f.file_path()), f.partition().clone());
        }
        for (key, (file, pos)) in upsert_keys.iter().zip(&written.locations) {
            if let Some(d) = self.index.upsert(
                *key,
                RowLocation {
                    file: file_ids[*file as usize],
                    pos: *pos,
                },
            ) {
                deletes.push(d);
            }
        }
        stats.rows_written = rows.num_rows();

        // position deletes, one file per partition of the rows they delete
        let mut by_partition: HashMap<Struct, Vec<PositionDelete>> = HashMap::new();
        for d in deletes {
            let partition = self
                .partitions
                .get(&d.file_path)
                .cloned()
                .unwrap_or(Struct::empty());
            by_partition.entry(partition).or_default().push(d);
        }
        let spec_id = self.table.metadata().default_partition_spec_id();
        let data_dir = format!(
            "{}/data",
            self.table.metadata().location().trim_end_matches('/')
        );
        let mut delete_files = Vec::new();
        for (n, (partition, group)) in by_partition.into_iter().enumerate() {
            let location = format!("{data_dir}/{prefix}-deletes-{n:05}.parquet");
            if let Some(file) =
                write_position_deletes(self.table.file_io(), &location, group, partition, spec_id)
                    .await?
            {
                delete_files.push(file);
            }
        }

        self.commit(batch, written.files, delete_files, stats.truncated)
            .await?;
        Ok(stats)
    }

    /// Appends every new change of `batch` as a changelog row.
    async fn append(
        &mut self,
        batch: &ChangeBatch,
        fresh: &[bool],
        mut stats: ApplyStats,
    ) -> Result<ApplyStats, LakehouseError> {
        let table_name = self.table.identifier().to_string();
        let rows: Vec<usize> = (0..batch.num_rows()).filter(|&i| fresh[i]).collect();
        let changes = changelog_rows(batch, &rows, &table_name)?;
        let (rows, written, _) = self.write_new_rows(&changes).await?;
        stats.rows_written = rows.num_rows();
        self.commit(batch, written.files, Vec::new(), false).await?;
        Ok(stats)
    }

    /// Writes `rows` (a batch's row images) as data files, evolving the
    /// table's schema first where the rows have new or wider columns.
    /// Returns the rows in the table's schema, the files, and the name
    /// prefix of this commit's files.
    async fn write_new_rows(
        &mut self,
        rows: &StructArray,
    ) -> Result<(RecordBatch, crate::write::WrittenRows, String), LakehouseError> {
        self.widen_columns(rows.fields()).await?;
        self.add_new_columns(rows.fields()).await?;
        let schema = self.table.metadata().current_schema().clone();
        let table_name = self.table.identifier().to_string();
        let rows = table_rows(rows, &schema, &table_name)?;
        self.commits += 1;
        let prefix = format!("{}-{}", uuid::Uuid::new_v4(), self.commits);
        let written = write_rows(&self.table, &rows, &prefix).await?;
        Ok((rows, written, prefix))
    }

    /// Widens columns whose source type grew (int to long, float to double,
    /// decimal precision up), committing the new schema (same field ids)
    /// itself, since iceberg's schema update cannot widen. Any other type
    /// change is refused before anything is written.
    async fn widen_columns(&mut self, fields: &Fields) -> Result<(), LakehouseError> {
        let table_name = self.table.identifier().to_string();
        let schema = self.table.metadata().current_schema().clone();
        let mut widened: HashMap<i32, iceberg::spec::Type> = HashMap::new();
        for field in fields.iter() {
            let Some(current) = schema.field_by_name(field.name()) else {
                continue;
            };
            let incoming =
                crate::schema::iceberg_type(field).map_err(|source| LakehouseError::Schema {
                    table: table_name.clone(),
                    source,
                })?;
            if incoming == *current.field_type {
                continue;
            }
            if crate::schema::is_widening(&current.field_type, &incoming) {
                widened.insert(current.id, incoming);
            } else if !crate::schema::is_widening(&incoming, &current.field_type) {
                // (a narrower batch, from before a widening, is cast up on write)
                return Err(LakehouseError::SchemaMismatch {
                    table: table_name,
                    reason: format!(
                        "column {:?} changed type from {} to {}; only int to long, float to double and a larger decimal precision are supported",
                        field.name(),
                        current.field_type,
                        incoming
                    ),
                });
            }
        }
        if widened.is_empty() {
            return Ok(());
        }
        let fields: Vec<_> = schema
            .as_struct()
            .fields()
            .iter()
            .map(|f| match widened.get(&f.id) {
                Some(ty) => Arc::new(iceberg::spec::NestedField {
                    field_type: Box::new(ty.clone()),
                    ..f.as_ref().clone()
                }),
                None => f.clone(),
            })
            .collect();
        let new_schema = iceberg::spec::Schema::builder()
            .with_fields(fields)
            .with_identifier_field_ids(schema.identifier_field_ids())
            .build()
            .map_err(|e| iceberg_error("widen columns", &self.table, e))?;
        let current_location = self.table.metadata_location().map(str::to_string);
        let next = self
            .table
            .metadata()
            .clone()
            .into_builder(current_location)
            .add_current_schema(new_schema)
            .and_then(|b| b.build())
            .map_err(|e| iceberg_error("widen columns", &self.table, e))?;
        self.table = crate::commit::commit_metadata(&self.pointer, &self.table, next)
            .await
            .map_err(|source| LakehouseError::Commit {
                table: table_name.clone(),
                source,
            })?;
        tracing::info!(table = %table_name, columns = widened.len(), "widened column types from a new source schema");
        Ok(())
    }

    /// Adds the batch's columns the table does not have yet (a column added
    /// in Postgres) as optional columns, through the catalog's own commit.
    /// A column whose type changed is refused before anything is written.
    async fn add_new_columns(&mut self, fields: &Fields) -> Result<(), LakehouseError> {
        let table_name = self.table.identifier().to_string();
        let schema = self.table.metadata().current_schema().clone();
        let mut added = Vec::new();
        for field in fields.iter() {
            if schema.field_by_name(field.name()).is_some() {
                continue;
            }
            let ty =
                crate::schema::iceberg_type(field).map_err(|source| LakehouseError::Schema {
                    table: table_name.clone(),
                    source,
                })?;
            added.push(AddColumn::optional(field.name(), ty));
        }
        if added.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = fields
            .iter()
            .filter(|f| schema.field_by_name(f.name()).is_none())
            .map(|f| f.name().clone())
            .collect();
        let tx = Transaction::new(&self.table);
        let mut action = tx.update_schema();
        for column in added {
            action = action.add_column(column);
        }
        let tx = action
            .apply(tx)
            .map_err(|e| iceberg_error("add columns", &self.table, e))?;
        self.table = tx
            .commit(self.catalog.as_ref())
            .await
            .map_err(|e| iceberg_error("add columns", &self.table, e))?;
        tracing::info!(table = %table_name, columns = ?names, "added columns from a new source schema");
        Ok(())
    }

    /// Commits the files with the batch's offsets (and every offset the
    /// table already carried) in the snapshot summary.
    async fn commit(
        &mut self,
        batch: &ChangeBatch,
        data_files: Vec<iceberg::spec::DataFile>,
        delete_files: Vec<iceberg::spec::DataFile>,
        truncate: bool,
    ) -> Result<(), LakehouseError> {
        let mut properties: HashMap<String, String> = applied_offsets(&self.table)
            .into_iter()
            .map(|((topic, partition), offset)| {
                (
                    format!("{OFFSET_PROPERTY_PREFIX}{topic}.{partition}"),
                    offset.to_string(),
                )
            })
            .collect();
        for range in &batch.offsets {
            properties.insert(
                format!(
                    "{OFFSET_PROPERTY_PREFIX}{}.{}",
                    batch.topic, range.partition
                ),
                range.last.to_string(),
            );
        }
        let delta = RowDelta {
            data_files,
            delete_files,
            properties,
            remove: if truncate {
                Removal::All
            } else {
                Removal::Nothing
            },
        };
        let table = self.table.identifier().to_string();
        self.table = commit_row_delta(&self.pointer, &self.table, delta)
            .await
            .map_err(|source| LakehouseError::Commit { table, source })?;
        Ok(())
    }

    /// Fills the unchanged (TOAST) columns of the picked rows: from the
    /// key's latest earlier row in this batch that carried the column, else
    /// from the table's current row for the key.
    async fn fill_unchanged(
        &self,
        batch: &ChangeBatch,
        picked: &StructArray,
        upsert_rows: &[u32],
        upsert_keys: &[Key<'_>],
        rows_of: &HashMap<Key<'_>, Vec<usize>>,
    ) -> Result<StructArray, LakehouseError> {
        let table_name = self.table.identifier().to_string();
        let Some(after) = batch.after() else {
            return Ok(picked.clone());
        };
        let mut columns: Vec<ArrayRef> = picked.columns().to_vec();
        let names: Vec<String> = picked.fields().iter().map(|f| f.name().clone()).collect();
        for (c, name) in names.iter().enumerate() {
            // (output row, source) where source is a batch row or a table location
            let mut from_batch: Vec<(usize, usize)> = Vec::new();
            let mut from_table: Vec<(usize, Arc<str>, u32)> = Vec::new();
            for (out, (&row, key)) in upsert_rows.iter().zip(upsert_keys).enumerate() {
                if !batch.unchanged(row as usize).iter().any(|n| n == name) {
                    continue;
                }
                let earlier = rows_of[key]
                    .iter()
                    .rev()
                    .copied()
                    .filter(|&r| r < row as usize)
                    .find(|&r| {
                        matches!(batch.op(r), Some(Op::Create | Op::Update | Op::Read))
                            && !batch.unchanged(r).iter().any(|n| n == name)
                    });
                match earlier {
                    Some(r) => from_batch.push((out, r)),
                    // no previous value anywhere: the column stays null
                    None => {
                        if let Some((file, pos)) = self.index.get(*key) {
                            from_table.push((out, file, pos));
                        }
                    }
                }
            }
            if from_batch.is_empty() && from_table.is_empty() {
                continue;
            }
            // gather the previous values into one array aligned with the output
            let mut sources: Vec<ArrayRef> = vec![columns[c].clone(), after.column(c).clone()];
            let mut picks: Vec<(usize, usize)> = (0..picked.len()).map(|i| (0, i)).collect();
            for (out, r) in from_batch {
                picks[out] = (1, r);
            }
            let mut by_file: HashMap<Arc<str>, Vec<(usize, u32)>> = HashMap::new();
            for (out, file, pos) in from_table {
                by_file.entry(file).or_default().push((out, pos));
            }
            for (file, mut wanted) in by_file {
                wanted.sort_by_key(|(_, pos)| *pos);
                let positions: Vec<u32> = wanted.iter().map(|(_, p)| *p).collect();
                let read = read_columns(
                    &self.table,
                    &file,
                    Some(std::slice::from_ref(name)),
                    Some(&positions),
                )
                .await?;
                if read.num_columns() == 0 {
                    // an older file without the column: no previous value, stays null
                    continue;
                }
                let values =
                    arrow_cast::cast(read.column(0), columns[c].data_type()).map_err(|e| {
                        LakehouseError::Arrow {
                            context: format!("previous {name} of {table_name}"),
                            source: e,
                        }
                    })?;
                let source = sources.len();
                sources.push(values);
                for (i, (out, _)) in wanted.iter().enumerate() {
                    picks[*out] = (source, i);
                }
            }
            let refs: Vec<&dyn Array> = sources.iter().map(|a| a.as_ref()).collect();
            columns[c] = arrow_select::interleave::interleave(&refs, &picks).map_err(|e| {
                LakehouseError::Arrow {
                    context: format!("previous {name} of {table_name}"),
                    source: e,
                }
            })?;
        }
        StructArray::try_new(picked.fields().clone(), columns, None).map_err(|e| {
            LakehouseError::Arrow {
                context: format!("rows for {table_name}"),
                source: e,
            }
        })
    }
}

/// The Kafka offsets `table`'s current snapshot has applied, from its
/// summary: where ingest resumes.
pub fn applied_offsets(table: &Table) -> BTreeMap<(String, i32), i64> {
    let Some(snapshot) = table.metadata().current_snapshot() else {
        return BTreeMap::new();
    };
    snapshot
        .summary()
        .additional_properties
        .iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix(OFFSET_PROPERTY_PREFIX)?;
            let (topic, partition) = rest.rsplit_once('.')?;
            Some((
                (topic.to_string(), partition.parse().ok()?),
                v.parse().ok()?,
            ))
        })
        .collect()
}
