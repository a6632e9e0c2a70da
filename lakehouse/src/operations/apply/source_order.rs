//! A topic with several partitions, applied in source order.
//!
//! A row's changes share a partition (Debezium keys them by primary key),
//! so only a truncate, which has no key, can meet changes in another order
//! than Postgres made them. Three rules, all against the table's
//! [`SourcePositions`] (so they hold across batches, restarts and several
//! ingest instances):
//!
//! ```text
//!  within a batch      rows merged by LSN across partitions
//!                      (ChangeBatch::in_source_order)
//!  a change late       older than the table's last truncate: skipped,
//!                      the truncate already removed what it made
//!  a truncate late     another partition has applied changes made after
//!                      it: those are read again from Kafka (SourceReader)
//!                      and applied after the truncate, in its commit
//!  old columns late    a batch made before the table's columns last
//!                      changed: written with the table's columns, never
//!                      taking them back
//! ```
//!
//! Why LSNs order a truncate against the table's other changes: TRUNCATE
//! takes Postgres's strongest table lock, so every other transaction's
//! change to the table has an LSN below the truncate's (it committed
//! first) or above its commit (it waited). Events without an LSN (sources
//! other than Postgres) are applied in arrival order.

use std::collections::{BTreeSet, HashSet};

use arrow_array::{new_null_array, Array, BooleanArray, Int64Array, RecordBatch, StructArray};
use arrow_schema::SchemaRef;
use futures::future::BoxFuture;
use iceberg::spec::TableMetadata;
use ingest::{columns, ChangeBatch, OffsetRange, Op};

use crate::error::LakehouseError;
use crate::transaction::{KafkaOffsets, SourcePositions};

/// Reads a topic's messages again, decoded, for the rare commit that must
/// apply again changes the table holds (a truncate that arrived after
/// changes made later on another partition). The `floe` binary reads them
/// from Kafka; the lakehouse does not depend on Kafka.
pub trait SourceReader: Send + Sync {
    /// The changes at `ranges` (both ends included) of `topic`.
    fn reread<'a>(
        &'a self,
        topic: &'a str,
        ranges: &'a [OffsetRange],
    ) -> BoxFuture<'a, Result<Vec<ChangeBatch>, String>>;
}

/// Whether an event is older than the table's last truncate (at
/// `truncated`): what it made is gone with the truncate, and applying it
/// now would bring it back. A truncate at the same LSN is the same one
/// sent again.
pub(super) fn before_truncate(op: Option<Op>, lsn: Option<i64>, truncated: Option<i64>) -> bool {
    match (lsn, truncated) {
        (Some(lsn), Some(at)) => lsn < at || (lsn == at && op == Some(Op::Truncate)),
        _ => false,
    }
}

/// A table without a primary key has no key on its changes either, so
/// Kafka spreads them over the partitions and keeps no order among them:
/// its topic must have one partition.
pub(super) fn one_partition(
    batch: &ChangeBatch,
    applied: &KafkaOffsets,
    table: &str,
) -> Result<(), LakehouseError> {
    let mut partitions: BTreeSet<i32> = batch.offsets.iter().map(|r| r.partition).collect();
    partitions.extend(
        applied
            .iter()
            .filter(|((topic, _), _)| *topic == batch.topic)
            .map(|((_, p), _)| *p),
    );
    if partitions.len() < 2 {
        return Ok(());
    }
    Err(LakehouseError::SchemaMismatch {
        table: table.to_string(),
        reason: format!(
            "the table has no primary key and its changes come from partitions {partitions:?} \
             of {}; without a key Kafka keeps no order among them: give the topic one \
             partition, or write the table in append mode",
            batch.topic
        ),
    })
}

/// The source LSNs of a batch's rows.
pub(super) struct Lsns<'a>(Option<&'a Int64Array>);

impl<'a> Lsns<'a> {
    pub(super) fn of(batch: &'a ChangeBatch) -> Self {
        Self(
            batch
                .records
                .column_by_name(columns::SOURCE_LSN)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>()),
        )
    }

    /// The LSN of row `i`, if it has one.
    pub(super) fn get(&self, i: usize) -> Option<i64> {
        let lsns = self.0?;
        (i < lsns.len() && lsns.is_valid(i)).then(|| lsns.value(i))
    }
}

/// The source positions a commit of `batch`'s `fresh` rows applies: the
/// highest LSN per partition, the last truncate's, and when the commit
/// changes the table's columns, its first change's.
pub(super) fn applied(batch: &ChangeBatch, fresh: &[bool], columns: bool) -> SourcePositions {
    let lsns = Lsns::of(batch);
    let mut out = SourcePositions::default();
    let mut first = None::<i64>;
    for (i, _) in fresh.iter().enumerate().filter(|(_, f)| **f) {
        let Some(lsn) = lsns.get(i) else { continue };
        out.advance(&batch.topic, batch.position(i).0, lsn);
        if batch.op(i) == Some(Op::Truncate) {
            out.truncate(&batch.topic, lsn);
        }
        first = Some(first.map_or(lsn, |f| f.min(lsn)));
    }
    if let (true, Some(first)) = (columns, first) {
        out.change_columns(&batch.topic, first);
    }
    out
}

/// Whether every change of `batch` was made before the table's columns
/// last changed (at `changed`): its columns are older than the table's
/// (it came late, on another partition; DDL takes Postgres's strongest
/// lock, so the LSNs order it against every change to the table).
pub(super) fn older_columns(batch: &ChangeBatch, changed: Option<i64>) -> bool {
    let Some(changed) = changed else {
        return false;
    };
    let lsns = Lsns::of(batch);
    let mut any = false;
    for i in 0..batch.num_rows() {
        match lsns.get(i) {
            Some(lsn) if lsn < changed => any = true,
            Some(_) => return false,
            None => {}
        }
    }
    any
}

/// `rows` without the columns `schema` lacks: a batch with older columns
/// than the table's may hold one the source has dropped since.
pub(super) fn only_columns_of(rows: StructArray, schema: &iceberg::spec::Schema) -> StructArray {
    let (fields, columns, nulls) = rows.into_parts();
    let (fields, columns): (Vec<_>, Vec<_>) = fields
        .iter()
        .cloned()
        .zip(columns)
        .filter(|(f, _)| schema.field_by_name(f.name()).is_some())
        .unzip();
    StructArray::new(fields.into(), columns, nulls)
}

/// The offsets to read again when a truncate at `lsn` arrives: for each
/// partition of `topic` that has applied changes past it, from the first
/// offset after the newest snapshot that had not yet, to the last the
/// table holds. Empty when none has.
pub(super) fn overtaking(metadata: &TableMetadata, topic: &str, lsn: i64) -> Vec<OffsetRange> {
    let now = SourcePositions::of_metadata(metadata);
    let offsets_now = KafkaOffsets::of_metadata(metadata);
    let mut out = Vec::new();
    for (partition, applied) in now.partitions(topic) {
        if applied <= lsn {
            continue;
        }
        let Some(last) = offsets_now.get(topic, partition) else {
            continue;
        };
        // the newest snapshot from before the partition passed the
        // truncate; without one (history expired), the whole partition
        let mut first = 0;
        let mut cursor = metadata.current_snapshot();
        while let Some(snapshot) = cursor {
            if let Some(then) = SourcePositions::in_snapshot(snapshot) {
                if then.applied(topic, partition).is_none_or(|l| l <= lsn) {
                    first = KafkaOffsets::in_snapshot(snapshot)
                        .and_then(|o| o.get(topic, partition))
                        .map_or(0, |o| o + 1);
                    break;
                }
            }
            cursor = snapshot
                .parent_snapshot_id()
                .and_then(|id| metadata.snapshot_by_id(id));
        }
        if first <= last {
            out.push(OffsetRange {
                partition,
                first,
                last,
            });
        }
    }
    out
}

/// `batch` with the re-read changes made after the truncate at `at` put
/// ahead of its own rows (their offsets come first; source order then
/// places them after the truncate), and the positions of every change past
/// the truncate: applied before, the truncate removes what they made, so
/// they are applied again. A change the batch holds itself is not taken
/// twice.
pub(super) fn with_reread(
    batch: &ChangeBatch,
    reread: &[ChangeBatch],
    at: i64,
    table: &str,
) -> Result<(ChangeBatch, HashSet<(i32, i64)>), LakehouseError> {
    let arrow = |source| LakehouseError::Arrow {
        context: format!("changes of {table} read again"),
        source,
    };
    let own: HashSet<(i32, i64)> = (0..batch.num_rows()).map(|i| batch.position(i)).collect();
    let mut kept: Vec<(RecordBatch, &ChangeBatch)> = Vec::new();
    for r in reread {
        let lsns = Lsns::of(r);
        let keep: BooleanArray = (0..r.num_rows())
            .map(|i| Some(lsns.get(i).is_some_and(|l| l > at) && !own.contains(&r.position(i))))
            .collect();
        if keep.true_count() > 0 {
            let rows =
                arrow_select::filter::filter_record_batch(&r.records, &keep).map_err(arrow)?;
            kept.push((rows, r));
        }
    }
    // a batch of truncates alone has no key column: the changes read again
    // bring it (their key is the table's)
    let keyed = kept
        .iter()
        .map(|(_, r)| *r)
        .find(|r| r.key().is_some() && batch.key().is_none());
    let schema = keyed.map_or_else(|| batch.records.schema(), |r| r.records.schema());
    let mut parts = Vec::with_capacity(kept.len() + 1);
    for rows in kept.iter().map(|(rows, _)| rows).chain([&batch.records]) {
        parts.push(
            conform(rows, &schema).ok_or_else(|| LakehouseError::SchemaMismatch {
                table: table.to_string(),
                reason: format!(
                    "a truncate of {} arrived after changes made later on another partition, \
                 which must be applied again after it, but the table's columns changed in \
                 between; give the topic one partition",
                    batch.topic
                ),
            })?,
        );
    }
    let records = arrow_select::concat::concat_batches(&schema, &parts).map_err(arrow)?;
    let combined = ChangeBatch {
        records,
        key_fields: keyed.map_or_else(|| batch.key_fields.clone(), |r| r.key_fields.clone()),
        ..batch.clone()
    }
    .in_source_order()
    .map_err(arrow)?;
    let lsns = Lsns::of(&combined);
    let again = (0..combined.num_rows())
        .filter(|&i| lsns.get(i).is_some_and(|l| l > at))
        .map(|i| combined.position(i))
        .collect();
    Ok((combined, again))
}

/// `held` (a topic's truncates, held back because its table did not exist
/// yet: a truncate alone cannot create it) joined with the topic's next
/// `batch`, in source order: changes made before the truncates, which can
/// arrive later on other partitions, are then dropped by them.
pub fn join_held(held: &ChangeBatch, batch: &ChangeBatch) -> Result<ChangeBatch, LakehouseError> {
    let mismatch = || LakehouseError::SchemaMismatch {
        table: batch.topic.clone(),
        reason: "truncates that came before the table existed cannot be joined with its first \
                 changes: the source's columns changed in between; give the topic one partition"
            .into(),
    };
    let schema = if batch.key().is_some() || held.key().is_none() {
        batch.records.schema()
    } else {
        held.records.schema()
    };
    let parts = [
        conform(&held.records, &schema).ok_or_else(mismatch)?,
        conform(&batch.records, &schema).ok_or_else(mismatch)?,
    ];
    let records = arrow_select::concat::concat_batches(&schema, &parts).map_err(|source| {
        LakehouseError::Arrow {
            context: format!("truncates of {} held back", batch.topic),
            source,
        }
    })?;
    let mut offsets = held.offsets.clone();
    for r in &batch.offsets {
        match offsets.iter_mut().find(|o| o.partition == r.partition) {
            Some(o) => {
                o.first = o.first.min(r.first);
                o.last = o.last.max(r.last);
            }
            None => offsets.push(*r),
        }
    }
    ChangeBatch {
        records,
        offsets,
        tombstones: held.tombstones + batch.tombstones,
        key_fields: if batch.key_fields.is_empty() {
            held.key_fields.clone()
        } else {
            batch.key_fields.clone()
        },
        source: batch.source.clone().or_else(|| held.source.clone()),
        ..batch.clone()
    }
    .in_source_order()
    .map_err(|source| LakehouseError::Arrow {
        context: format!("source order of {}", batch.topic),
        source,
    })
}

/// `rows` with the columns of `schema`: the same columns, or all but a
/// key column, which is then all null. None when they differ otherwise.
fn conform(rows: &RecordBatch, schema: &SchemaRef) -> Option<RecordBatch> {
    if rows.schema() == *schema {
        return Some(rows.clone());
    }
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        match rows.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => columns.push(c.clone()),
            None if field.name() == columns::KEY => {
                columns.push(new_null_array(field.data_type(), rows.num_rows()))
            }
            _ => return None,
        }
    }
    if rows.num_columns() > columns.len() {
        return None;
    }
    RecordBatch::try_new(schema.clone(), columns).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_older_than_the_last_truncate_are_skipped() {
        let t = Some(100);
        assert!(before_truncate(Some(Op::Create), Some(99), t));
        assert!(!before_truncate(Some(Op::Create), Some(101), t));
        // the truncate itself, sent again, is not applied twice; a change
        // at its LSN is none of the table's
        assert!(before_truncate(Some(Op::Truncate), Some(100), t));
        assert!(!before_truncate(Some(Op::Truncate), Some(101), t));
        // no truncate yet, or no LSN: arrival order
        assert!(!before_truncate(Some(Op::Create), Some(1), None));
        assert!(!before_truncate(Some(Op::Delete), None, t));
    }
}
