//! [`ChangeBatch`]: the decoded changes of one source table, as Arrow, and
//! the builder that accumulates them message by message.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBufferBuilder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{Array, ArrayRef, Int32Array, Int64Array, RecordBatch, StructArray};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::avro::{AvroSchema, Cursor};
use crate::column::Column;
use crate::envelope::{EnvelopePlan, EventMeta, Op, RowImages};
use crate::error::{DecodeErrorKind, Part};

/// Names of the columns of [`ChangeBatch::records`].
pub mod columns {
    /// The operation: `c`, `u`, `d`, `r` or `t` (Utf8, never null).
    pub const OP: &str = "_op";
    /// Kafka partition of the event (Int32).
    pub const PARTITION: &str = "_partition";
    /// Kafka offset of the event (Int64).
    pub const OFFSET: &str = "_offset";
    /// When the change was committed in the source database (UTC microseconds).
    pub const SOURCE_TS: &str = "_source_ts";
    /// Postgres log sequence number of the change.
    pub const SOURCE_LSN: &str = "_source_lsn";
    /// The LSN of the last commit before the change, from Debezium's
    /// `sequence` (0 before the connector saw one; null without
    /// `sequence`). With `_source_lsn` it orders a Postgres stream, which
    /// the LSN alone does not: transactions arrive in commit order, so a
    /// later one can hold lower LSNs.
    pub const SOURCE_COMMIT_LSN: &str = "_source_commit_lsn";
    /// Postgres transaction id.
    pub const SOURCE_TX_ID: &str = "_source_tx_id";
    /// Debezium's snapshot marker (`true`, `first`, `last`, ..., `false`).
    pub const SNAPSHOT: &str = "_snapshot";
    /// Debezium's transaction block, when `provide.transaction.metadata` is on.
    pub const TRANSACTION: &str = "_transaction";
    /// The Kafka key: the primary-key columns (absent for tables without one).
    pub const KEY: &str = "_key";
    /// The row before the change, when Debezium sends it.
    pub const BEFORE: &str = "before";
    /// The row after the change.
    pub const AFTER: &str = "after";
    /// Names of `after` columns whose TOASTed value did not change and was
    /// not sent (stored as null in `after`; keep the previous value).
    pub const UNCHANGED: &str = "_unchanged";
}

/// Which registry schemas a batch was decoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    pub value_schema_id: u32,
    pub key_schema_id: Option<u32>,
}

/// The offsets of one partition a batch covers, both ends included. Every
/// consumed message counts, including tombstones that produce no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRange {
    pub partition: i32,
    pub first: i64,
    pub last: i64,
}

/// The source table named in Debezium's `source` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    pub database: String,
    pub schema: String,
    pub table: String,
}

/// Decoded changes of one topic (one source table), in Kafka order, all
/// decoded with one schema version.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    pub topic: String,
    /// From the events' `source` block; None for a batch of tombstones only.
    pub source: Option<SourceTable>,
    pub version: SchemaVersion,
    /// Set when this batch's schema differs from the one the previous batch
    /// of the same topic was decoded with (e.g. a column added in Postgres):
    /// the version that came before.
    pub previous_version: Option<SchemaVersion>,
    /// Primary-key column names, from the Kafka key schema; empty for tables
    /// without a primary key.
    pub key_fields: Vec<String>,
    /// One row per change event; see [`columns`].
    pub records: RecordBatch,
    pub offsets: Vec<OffsetRange>,
    /// Tombstones (null values after deletes) consumed into this batch.
    pub tombstones: usize,
    /// The columns of the source table that have a non-null `DEFAULT`
    /// (Debezium puts it in the column's Avro field), each as a one-row
    /// array of the column's type: what rows that existed before the column
    /// was added hold in the source.
    pub defaults: ColumnDefaults,
}

/// Column defaults by name (see [`ChangeBatch::defaults`]).
pub type ColumnDefaults = Arc<std::collections::BTreeMap<String, ArrayRef>>;

impl ChangeBatch {
    pub fn num_rows(&self) -> usize {
        self.records.num_rows()
    }

    pub fn schema_changed(&self) -> bool {
        self.previous_version.is_some()
    }

    /// The columns of the source table (the fields of `after`).
    pub fn row_fields(&self) -> Fields {
        match self
            .records
            .schema()
            .field_with_name(columns::AFTER)
            .map(|f| f.data_type().clone())
        {
            Ok(DataType::Struct(fields)) => fields,
            _ => Fields::empty(),
        }
    }

    /// The `after` image as a struct array.
    pub fn after(&self) -> Option<&StructArray> {
        self.records
            .column_by_name(columns::AFTER)?
            .as_any()
            .downcast_ref()
    }

    /// The `before` image as a struct array, when the schema has one.
    pub fn before(&self) -> Option<&StructArray> {
        self.records
            .column_by_name(columns::BEFORE)?
            .as_any()
            .downcast_ref()
    }

    /// The Kafka key as a struct array, for tables with a primary key.
    pub fn key(&self) -> Option<&StructArray> {
        self.records
            .column_by_name(columns::KEY)?
            .as_any()
            .downcast_ref()
    }

    /// The operation of row `i`.
    pub fn op(&self, i: usize) -> Option<Op> {
        let ops = self
            .records
            .column_by_name(columns::OP)?
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()?;
        (i < ops.len())
            .then(|| Op::from_code(ops.value(i)))
            .flatten()
    }

    /// Whether any event carries a row (anything but a truncate). A batch
    /// of truncates alone cannot tell whether its table has a primary key
    /// (a truncate has no key), so no table is created from one.
    pub fn has_row_events(&self) -> bool {
        (0..self.num_rows()).any(|i| !matches!(self.op(i), Some(crate::Op::Truncate) | None))
    }

    /// The Kafka partition and offset of row `i`.
    pub fn position(&self, i: usize) -> (i32, i64) {
        let partition = self
            .records
            .column_by_name(columns::PARTITION)
            .and_then(|c| c.as_any().downcast_ref::<Int32Array>())
            .map_or(0, |a| a.value(i));
        let offset = self
            .records
            .column_by_name(columns::OFFSET)
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .map_or(-1, |a| a.value(i));
        (partition, offset)
    }

    /// Names of the `after` columns marked unchanged (TOAST) in row `i`.
    pub fn unchanged(&self, i: usize) -> Vec<String> {
        let Some(list) = self.records.column_by_name(columns::UNCHANGED) else {
            return Vec::new();
        };
        let Some(list) = list.as_any().downcast_ref::<arrow_array::ListArray>() else {
            return Vec::new();
        };
        if i >= list.len() || list.is_null(i) {
            return Vec::new();
        }
        let values = list.value(i);
        let Some(names) = values.as_any().downcast_ref::<arrow_array::StringArray>() else {
            return Vec::new();
        };
        names.iter().flatten().map(str::to_string).collect()
    }
}

/// One framed event, split and with its key schema resolved.
#[derive(Clone, Copy)]
pub(crate) struct EventInput<'a> {
    pub partition: i32,
    pub offset: i64,
    /// Key schema id, key schema and key body; None for a null key.
    pub key: Option<(u32, &'a AvroSchema, &'a [u8])>,
    pub value_body: &'a [u8],
}

/// The key column starts once the first keyed message shows its schema; the
/// null keys before it (truncates) are remembered and filled in then.
#[derive(Debug)]
struct KeyColumn {
    column: Option<Column>,
    pending_nulls: usize,
}

/// Accumulates decoded events of one topic and one schema version.
pub(crate) struct BatchBuilder {
    topic: String,
    plan: Arc<EnvelopePlan>,
    version: SchemaVersion,
    previous_version: Option<SchemaVersion>,
    key: KeyColumn,
    before: Option<Column>,
    after: Column,
    op: StringBuilder,
    partition: Vec<i32>,
    offset: Vec<i64>,
    source_ts: TimestampMicrosecondBuilder,
    lsn: Int64Builder,
    commit_lsn: Int64Builder,
    tx_id: Int64Builder,
    snapshot: StringBuilder,
    txn_id: StringBuilder,
    txn_total: Vec<i64>,
    txn_collection: Vec<i64>,
    txn_valid: BooleanBufferBuilder,
    unchanged: ListBuilder<StringBuilder>,
    unchanged_scratch: Vec<usize>,
    source: Option<SourceTable>,
    /// Offset ranges per partition; usually one entry.
    offsets: Vec<OffsetRange>,
    tombstones: usize,
    rows: usize,
    /// Expected rows (the topic's previous batch), for reserving buffers.
    rows_hint: usize,
}

impl BatchBuilder {
    pub fn new(
        topic: &str,
        plan: Arc<EnvelopePlan>,
        version: SchemaVersion,
        previous_version: Option<SchemaVersion>,
        rows_hint: usize,
    ) -> Result<Self, crate::column::UnsupportedType> {
        let mut builder = Self {
            topic: topic.to_string(),
            before: plan.new_before_column()?,
            after: plan.new_after_column()?,
            plan,
            version,
            previous_version,
            key: KeyColumn {
                column: None,
                pending_nulls: 0,
            },
            op: StringBuilder::new(),
            partition: Vec::new(),
            offset: Vec::new(),
            source_ts: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            lsn: Int64Builder::new(),
            commit_lsn: Int64Builder::new(),
            tx_id: Int64Builder::new(),
            snapshot: StringBuilder::new(),
            txn_id: StringBuilder::new(),
            txn_total: Vec::new(),
            txn_collection: Vec::new(),
            txn_valid: BooleanBufferBuilder::new(0),
            unchanged: ListBuilder::new(StringBuilder::new()),
            unchanged_scratch: Vec::new(),
            source: None,
            offsets: Vec::new(),
            tombstones: 0,
            rows: 0,
            rows_hint,
        };
        builder.reserve(rows_hint);
        Ok(builder)
    }

    /// Room for `n` rows in every column, so a batch the size of the
    /// previous one grows its buffers once instead of doubling its way up.
    fn reserve(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.after.reserve(n);
        // `before` stays mostly null for inserts and updates and pads its
        // children lazily: reserve only its own validity
        if let Some(b) = self.before.as_mut() {
            b.reserve_self(n);
        }
        self.partition.reserve(n);
        self.offset.reserve(n);
        self.txn_total.reserve(n);
        self.txn_collection.reserve(n);
        self.txn_valid.reserve(n);
    }

    pub fn version(&self) -> SchemaVersion {
        self.version
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether an event with this version can join the batch: same value
    /// schema, and a key schema that does not contradict the batch's.
    pub fn accepts(&self, value_schema_id: u32, key_schema_id: Option<u32>) -> bool {
        self.version.value_schema_id == value_schema_id
            && match (self.version.key_schema_id, key_schema_id) {
                (Some(a), Some(b)) => a == b,
                // a batch opened by a keyless event (a truncate) has no key
                // column: a keyed event starts the next batch
                (None, Some(_)) => false,
                (_, None) => true,
            }
    }

    fn cover(&mut self, partition: i32, offset: i64) {
        match self.offsets.iter_mut().find(|r| r.partition == partition) {
            Some(r) => {
                r.first = r.first.min(offset);
                r.last = r.last.max(offset);
            }
            None => self.offsets.push(OffsetRange {
                partition,
                first: offset,
                last: offset,
            }),
        }
    }

    pub fn push_tombstone(&mut self, partition: i32, offset: i64) {
        self.cover(partition, offset);
        self.tombstones += 1;
    }

    /// Decodes one event into the batch. On error nothing of the event
    /// remains in the batch.
    pub fn push_event(
        &mut self,
        event: &EventInput<'_>,
        placeholder: &[u8],
    ) -> Result<(), DecodeErrorKind> {
        let EventInput {
            partition,
            offset,
            key,
            value_body,
        } = *event;
        let rows_before = self.rows;
        let key_before = (
            self.key.column.is_some(),
            self.key.pending_nulls,
            self.version.key_schema_id,
        );
        let result = self.decode_event(key, value_body, placeholder);
        match result {
            Ok((op, meta)) => {
                self.append_meta(op, partition, offset, &meta);
                self.cover(partition, offset);
                self.rows += 1;
                Ok(())
            }
            Err(e) => {
                let (had_key_column, pending_nulls, key_schema_id) = key_before;
                if had_key_column {
                    if let Some(k) = self.key.column.as_mut() {
                        k.truncate(rows_before);
                    }
                } else {
                    // the failed event started the key column: forget it
                    self.key.column = None;
                    self.key.pending_nulls = pending_nulls;
                    self.version.key_schema_id = key_schema_id;
                }
                if let Some(b) = self.before.as_mut() {
                    b.truncate(rows_before);
                }
                self.after.truncate(rows_before);
                Err(e)
            }
        }
    }

    fn decode_event<'v>(
        &mut self,
        key: Option<(u32, &AvroSchema, &[u8])>,
        value_body: &'v [u8],
        placeholder: &[u8],
    ) -> Result<(Op, EventMeta<'v>), DecodeErrorKind> {
        let value_id = self.version.value_schema_id;
        match key {
            Some((key_id, key_schema, body)) => {
                if self.key.column.is_none() {
                    let mut column =
                        Column::for_schema(columns::KEY, key_schema).map_err(|source| {
                            DecodeErrorKind::UnsupportedType {
                                part: Part::Key,
                                id: key_id,
                                source,
                            }
                        })?;
                    column.reserve(self.rows_hint);
                    column.append_nulls(self.key.pending_nulls);
                    self.key.pending_nulls = 0;
                    self.key.column = Some(column);
                    self.version.key_schema_id = Some(key_id);
                }
                if let Some(column) = self.key.column.as_mut() {
                    let mut cur = Cursor::new(body);
                    column
                        .decode(&mut cur)
                        .map_err(|source| DecodeErrorKind::Payload {
                            part: Part::Key,
                            id: key_id,
                            source,
                        })?;
                    if cur.remaining() > 0 {
                        return Err(DecodeErrorKind::TrailingBytes {
                            part: Part::Key,
                            id: key_id,
                            extra: cur.remaining(),
                        });
                    }
                }
            }
            None => match self.key.column.as_mut() {
                Some(column) => column.append_null(),
                None => self.key.pending_nulls += 1,
            },
        }

        let mut cur = Cursor::new(value_body);
        self.unchanged_scratch.clear();
        let mut images = RowImages {
            want_source_names: self.source.is_none(),
            before: self.before.as_mut(),
            after: &mut self.after,
            placeholder,
            unchanged: &mut self.unchanged_scratch,
        };
        let meta =
            self.plan
                .decode(&mut cur, &mut images)
                .map_err(|source| DecodeErrorKind::Payload {
                    part: Part::Value,
                    id: value_id,
                    source,
                })?;
        if cur.remaining() > 0 {
            return Err(DecodeErrorKind::TrailingBytes {
                part: Part::Value,
                id: value_id,
                extra: cur.remaining(),
            });
        }
        let code = meta.op.unwrap_or_default();
        let op = Op::from_code(code).ok_or_else(|| DecodeErrorKind::UnknownOp(code.to_string()))?;
        match op {
            Op::Create | Op::Read | Op::Update if !meta.has_after => {
                return Err(DecodeErrorKind::MissingImage {
                    op: op.code(),
                    missing: "after",
                })
            }
            Op::Delete if !meta.has_before && key.is_none() => {
                return Err(DecodeErrorKind::MissingImage {
                    op: op.code(),
                    missing: "before or key",
                })
            }
            _ => {}
        }
        if self.source.is_none() {
            if let (Some(db), Some(schema), Some(table)) = (&meta.db, &meta.schema, &meta.table) {
                self.source = Some(SourceTable {
                    database: db.to_string(),
                    schema: schema.to_string(),
                    table: table.to_string(),
                });
            }
        }
        Ok((op, meta))
    }

    fn append_meta(&mut self, op: Op, partition: i32, offset: i64, meta: &EventMeta<'_>) {
        self.op.append_value(op.code());
        self.partition.push(partition);
        self.offset.push(offset);
        // ts_us is exact where Debezium sends it (2.6+); ts_ms before that
        let source_ts = meta
            .source_ts_us
            .or_else(|| meta.source_ts_ms.and_then(|ms| ms.checked_mul(1000)));
        self.source_ts.append_option(source_ts);
        self.lsn.append_option(meta.lsn);
        self.commit_lsn.append_option(meta.commit_lsn);
        self.tx_id.append_option(meta.tx_id);
        self.snapshot.append_option(meta.snapshot.as_deref());
        match &meta.transaction {
            Some(t) => {
                self.txn_id.append_value(t.id);
                self.txn_total.push(t.total_order);
                self.txn_collection.push(t.data_collection_order);
                self.txn_valid.append(true);
            }
            None => {
                self.txn_id.append_null();
                self.txn_total.push(0);
                self.txn_collection.push(0);
                self.txn_valid.append(false);
            }
        }
        if self.unchanged_scratch.is_empty() {
            self.unchanged.append_null();
        } else {
            let names: Vec<String> = match self.after.children_mut() {
                Some(children) => self
                    .unchanged_scratch
                    .iter()
                    .map(|&i| children[i].name().to_string())
                    .collect(),
                None => Vec::new(),
            };
            for name in names {
                self.unchanged.values().append_value(name);
            }
            self.unchanged.append(true);
        }
    }

    fn transaction_fields() -> Fields {
        Fields::from(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("total_order", DataType::Int64, false),
            Field::new("data_collection_order", DataType::Int64, false),
        ])
    }

    /// Finishes the batch. Builders for batches that only saw tombstones
    /// produce a zero-row batch that still carries its offsets.
    pub fn finish(mut self) -> ChangeBatch {
        self.offsets.sort_by_key(|r| r.partition);
        let mut fields: Vec<Field> = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        let mut add = |field: Field, array: ArrayRef| {
            fields.push(field);
            arrays.push(array);
        };
        add(
            Field::new(columns::OP, DataType::Utf8, false),
            Arc::new(self.op.finish()),
        );
        add(
            Field::new(columns::PARTITION, DataType::Int32, false),
            Arc::new(Int32Array::from(std::mem::take(&mut self.partition))),
        );
        add(
            Field::new(columns::OFFSET, DataType::Int64, false),
            Arc::new(Int64Array::from(std::mem::take(&mut self.offset))),
        );
        add(
            Field::new(
                columns::SOURCE_TS,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Arc::new(self.source_ts.finish()),
        );
        add(
            Field::new(columns::SOURCE_LSN, DataType::Int64, true),
            Arc::new(self.lsn.finish()),
        );
        add(
            Field::new(columns::SOURCE_COMMIT_LSN, DataType::Int64, true),
            Arc::new(self.commit_lsn.finish()),
        );
        add(
            Field::new(columns::SOURCE_TX_ID, DataType::Int64, true),
            Arc::new(self.tx_id.finish()),
        );
        add(
            Field::new(columns::SNAPSHOT, DataType::Utf8, true),
            Arc::new(self.snapshot.finish()),
        );
        let txn_nulls = NullBuffer::new(self.txn_valid.finish());
        let txn = StructArray::new(
            Self::transaction_fields(),
            vec![
                Arc::new(self.txn_id.finish()),
                Arc::new(Int64Array::from(std::mem::take(&mut self.txn_total))),
                Arc::new(Int64Array::from(std::mem::take(&mut self.txn_collection))),
            ],
            (txn_nulls.null_count() > 0).then_some(txn_nulls),
        );
        add(
            Field::new(
                columns::TRANSACTION,
                DataType::Struct(Self::transaction_fields()),
                true,
            ),
            Arc::new(txn),
        );
        let mut key_fields = Vec::new();
        if let Some(mut key) = self.key.column.take() {
            let field = key.field().with_nullable(true);
            if let DataType::Struct(kf) = field.data_type() {
                key_fields = kf.iter().map(|f| f.name().clone()).collect();
            }
            add(field, key.finish());
        }
        if let Some(mut before) = self.before.take() {
            add(before.field(), before.finish());
        }
        add(self.after.field(), self.after.finish());
        let unchanged = self.unchanged.finish();
        add(
            Field::new(columns::UNCHANGED, unchanged.data_type().clone(), true),
            Arc::new(unchanged),
        );

        let schema: SchemaRef = Arc::new(Schema::new(fields));
        // Every column was appended once per row above, so lengths agree.
        let records = RecordBatch::try_new(schema.clone(), arrays).unwrap_or_else(|e| {
            unreachable!(
                "change batch columns out of step for topic {}: {e}",
                self.topic
            )
        });
        ChangeBatch {
            topic: self.topic,
            source: self.source,
            version: self.version,
            previous_version: self.previous_version,
            key_fields,
            records,
            offsets: self.offsets,
            tombstones: self.tombstones,
            defaults: self.plan.column_defaults(),
        }
    }
}
