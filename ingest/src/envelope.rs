//! The Debezium change-event envelope: which fields of the value record hold
//! the row images, the operation, the source position and the transaction,
//! compiled once per value schema into an [`EnvelopePlan`].
//!
//! Debezium 1.x–3.x envelopes share `before`, `after`, `source`, `op` and
//! `ts_ms`; 2.x/3.x add `ts_us`/`ts_ns` and `transaction`. Fields are found
//! by name and anything else is skipped, so version differences and new
//! Debezium fields do not break decoding.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::ArrayRef;

use crate::avro::{encode_default, skip, AvroSchema, AvroType, Cursor, CursorError, SkipPlan};
use crate::batch::ColumnDefaults;
use crate::column::{Column, ValueError};

/// The change operation of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `c`: a row was inserted.
    Create,
    /// `u`: a row was updated.
    Update,
    /// `d`: a row was deleted.
    Delete,
    /// `r`: a row read during a snapshot.
    Read,
    /// `t`: the table was truncated.
    Truncate,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            "r" => Op::Read,
            "t" => Op::Truncate,
            _ => return None,
        })
    }
}

/// Why a value schema cannot be read as a Debezium envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeSchemaError {
    #[error("not a Debezium change envelope: {0}")]
    NotAnEnvelope(String),
    #[error(transparent)]
    Unsupported(#[from] crate::column::UnsupportedType),
}

/// Fields of `source` that floe keeps.
#[derive(Debug, Clone)]
enum SourceField {
    Lsn,
    Sequence,
    TxId,
    TsMs,
    TsUs,
    Snapshot,
    Db,
    Schema,
    Table,
    Skip(SkipPlan),
}

#[derive(Debug, Clone)]
enum Step {
    Before,
    After,
    Op,
    Source(Vec<(SourceField, AvroSchema)>),
    Transaction(AvroSchema),
    Skip(SkipPlan),
}

/// How to read envelopes written with one value schema.
#[derive(Debug, Clone)]
pub struct EnvelopePlan {
    steps: Vec<Step>,
    before: Option<AvroSchema>,
    after: AvroSchema,
    defaults: ColumnDefaults,
}

/// The per-event metadata read from an envelope; row images go straight to
/// the batch's columns.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EventMeta<'a> {
    pub op: Option<&'a str>,
    pub lsn: Option<i64>,
    /// From Debezium's `sequence` (Postgres): the LSN of the last commit
    /// before this change, 0 when the connector had seen none yet. None
    /// without `sequence`.
    pub commit_lsn: Option<i64>,
    pub tx_id: Option<i64>,
    pub source_ts_ms: Option<i64>,
    pub source_ts_us: Option<i64>,
    pub snapshot: Option<Cow<'a, str>>,
    pub db: Option<Cow<'a, str>>,
    pub schema: Option<Cow<'a, str>>,
    pub table: Option<Cow<'a, str>>,
    pub transaction: Option<TransactionBlock<'a>>,
    pub has_before: bool,
    pub has_after: bool,
}

/// Debezium's `transaction` block (with `provide.transaction.metadata`).
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionBlock<'a> {
    pub id: &'a str,
    pub total_order: i64,
    pub data_collection_order: i64,
}

/// Where envelope decoding writes row images.
pub struct RowImages<'b> {
    /// Read `source.db`, `schema` and `table` (a batch needs them once).
    pub want_source_names: bool,
    pub before: Option<&'b mut Column>,
    pub after: &'b mut Column,
    pub placeholder: &'b [u8],
    pub unchanged: &'b mut Vec<usize>,
}

impl EnvelopePlan {
    pub fn compile(value: &AvroSchema) -> Result<Self, EnvelopeSchemaError> {
        let not = |why: &str| EnvelopeSchemaError::NotAnEnvelope(why.to_string());
        let AvroType::Record { fields, .. } = &value.ty else {
            return Err(not("the value schema is not a record"));
        };
        if !fields.iter().any(|f| f.name == "op") {
            return Err(not(
                "the value record has no `op` field (is a transform such as ExtractNewRecordState flattening it?)",
            ));
        }
        let mut steps = Vec::with_capacity(fields.len());
        let (mut before, mut after) = (None, None);
        for f in fields {
            let step = match f.name.as_str() {
                "before" => {
                    f.schema
                        .record_fields()
                        .ok_or_else(|| not("`before` is not a record"))?;
                    before = Some(f.schema.clone());
                    Step::Before
                }
                "after" => {
                    f.schema
                        .record_fields()
                        .ok_or_else(|| not("`after` is not a record"))?;
                    after = Some(f.schema.clone());
                    Step::After
                }
                "op" => {
                    if f.schema.ty != AvroType::String {
                        return Err(not("`op` is not a string"));
                    }
                    Step::Op
                }
                "source" => Step::Source(source_fields(&f.schema)),
                "transaction" if is_transaction_block(&f.schema) => {
                    Step::Transaction(f.schema.clone())
                }
                _ => Step::Skip(SkipPlan::compile(&f.schema)),
            };
            steps.push(step);
        }
        let after = after.ok_or_else(|| not("the value record has no `after` field"))?;
        if let Some(b) = &before {
            if b.type_name() != after.type_name() {
                return Err(not("`before` and `after` have different row types"));
            }
        }
        let defaults = Arc::new(column_defaults(&after));
        let plan = Self {
            steps,
            before,
            after,
            defaults,
        };
        // Fail now, not on the first row, if a column type is unsupported.
        plan.new_after_column()?;
        Ok(plan)
    }

    /// The row's column defaults (see [`crate::ChangeBatch::defaults`]).
    pub fn column_defaults(&self) -> ColumnDefaults {
        self.defaults.clone()
    }

    /// The columns of the rows this envelope carries, as a decoded batch's
    /// [`crate::ChangeBatch::row_fields`] gives them: what a table built
    /// from the topic will have, known before any message arrives.
    pub fn row_fields(&self) -> Result<arrow_schema::Fields, crate::column::UnsupportedType> {
        Ok(match self.new_after_column()?.field().data_type() {
            arrow_schema::DataType::Struct(fields) => fields.clone(),
            _ => arrow_schema::Fields::empty(),
        })
    }

    /// A fresh column builder for the `after` image.
    pub fn new_after_column(&self) -> Result<Column, crate::column::UnsupportedType> {
        Column::for_schema("after", &self.after)
    }

    /// A fresh column builder for the `before` image, if the schema has one.
    pub fn new_before_column(&self) -> Result<Option<Column>, crate::column::UnsupportedType> {
        self.before
            .as_ref()
            .map(|b| Column::for_schema("before", b))
            .transpose()
    }

    /// Reads one envelope. Row images are appended to `images`; on error the
    /// caller truncates them back.
    pub fn decode<'a>(
        &self,
        cur: &mut Cursor<'a>,
        images: &mut RowImages<'_>,
    ) -> Result<EventMeta<'a>, ValueError> {
        let mut meta = EventMeta::default();
        for step in &self.steps {
            match step {
                Step::Before => match images.before.as_deref_mut() {
                    Some(col) => {
                        col.decode(cur)?;
                        meta.has_before = col.is_valid_last();
                    }
                    None => unreachable_before(cur, self.before.as_ref())?,
                },
                Step::After => {
                    images
                        .after
                        .decode_row_image(cur, images.placeholder, images.unchanged)?;
                    meta.has_after = images.after.is_valid_last();
                }
                Step::Op => {
                    meta.op = Some(
                        cur.read_str()
                            .map_err(|e| ValueError::from(e).in_field("op"))?,
                    )
                }
                Step::Source(fields) => {
                    for (which, schema) in fields {
                        read_source_field(cur, which, schema, images.want_source_names, &mut meta)
                            .map_err(|e| ValueError::from(e).in_field("source"))?;
                    }
                }
                Step::Transaction(schema) => {
                    meta.transaction = read_transaction(cur, schema)
                        .map_err(|e| ValueError::from(e).in_field("transaction"))?
                }
                Step::Skip(plan) => plan.skip(cur)?,
            }
        }
        Ok(meta)
    }
}

/// The non-null defaults of the row record's fields, each decoded like a
/// value of its column. A default floe cannot read is left out with a
/// warning: the column is still applied, only its old rows stay null.
fn column_defaults(after: &AvroSchema) -> BTreeMap<String, ArrayRef> {
    let mut defaults = BTreeMap::new();
    for field in after.record_fields().unwrap_or_default() {
        let Some(default) = field.default.as_ref().filter(|d| !d.is_null()) else {
            continue;
        };
        let decoded = encode_default(&field.schema, default).and_then(|bytes| {
            let mut column =
                Column::for_schema(&field.name, &field.schema).map_err(|e| e.to_string())?;
            column
                .decode(&mut Cursor::new(&bytes))
                .map_err(|e| e.to_string())?;
            Ok(column.finish())
        });
        match decoded {
            Ok(value) => {
                defaults.insert(field.name.clone(), value);
            }
            Err(reason) => {
                tracing::warn!(column = %field.name, %default, %reason, "cannot read a column default; rows from before the column was added will read null")
            }
        }
    }
    defaults
}

/// The plan always creates a `before` column when the schema has `before`;
/// this only runs if a caller passed none, and then reads past the image.
fn unreachable_before(cur: &mut Cursor<'_>, schema: Option<&AvroSchema>) -> Result<(), ValueError> {
    if let Some(s) = schema {
        skip(cur, s)?;
    }
    Ok(())
}

fn is_transaction_block(schema: &AvroSchema) -> bool {
    let Some(fields) = schema.record_fields() else {
        return false;
    };
    let has =
        |name: &str, ty: &AvroType| fields.iter().any(|f| f.name == name && &f.schema.ty == ty);
    schema.as_nullable().is_some()
        && has("id", &AvroType::String)
        && has("total_order", &AvroType::Long)
        && has("data_collection_order", &AvroType::Long)
}

fn source_fields(schema: &AvroSchema) -> Vec<(SourceField, AvroSchema)> {
    let Some(fields) = schema
        .record_fields()
        .filter(|_| matches!(schema.ty, AvroType::Record { .. }))
    else {
        // an unexpected shape: keep nothing, but still read past it
        return vec![(SourceField::Skip(SkipPlan::compile(schema)), schema.clone())];
    };
    fields
        .iter()
        .map(|f| {
            let inner = f.schema.as_nullable().map(|(_, s)| s).unwrap_or(&f.schema);
            let longish = matches!(inner.ty, AvroType::Long | AvroType::Int);
            let stringish = matches!(inner.ty, AvroType::String | AvroType::Enum { .. });
            let which = match f.name.as_str() {
                "lsn" if longish => SourceField::Lsn,
                "sequence" if stringish => SourceField::Sequence,
                "txId" if longish => SourceField::TxId,
                "ts_ms" if longish => SourceField::TsMs,
                "ts_us" if longish => SourceField::TsUs,
                "snapshot" if stringish => SourceField::Snapshot,
                "db" if stringish => SourceField::Db,
                "schema" if stringish => SourceField::Schema,
                "table" if stringish => SourceField::Table,
                _ => SourceField::Skip(SkipPlan::compile(&f.schema)),
            };
            (which, f.schema.clone())
        })
        .collect()
}

/// Resolves a nullable union to its present branch, or None for null.
fn present<'s>(
    cur: &mut Cursor<'_>,
    schema: &'s AvroSchema,
) -> Result<Option<&'s AvroSchema>, CursorError> {
    match &schema.ty {
        AvroType::Union(branches) => {
            let branch = &branches[cur.read_union_branch(branches.len())?];
            Ok((branch.ty != AvroType::Null).then_some(branch))
        }
        AvroType::Null => Ok(None),
        _ => Ok(Some(schema)),
    }
}

fn read_long_like(cur: &mut Cursor<'_>, schema: &AvroSchema) -> Result<Option<i64>, CursorError> {
    match present(cur, schema)? {
        Some(s) if matches!(s.ty, AvroType::Long | AvroType::Int) => cur.read_long().map(Some),
        Some(s) => skip(cur, s).map(|_| None),
        None => Ok(None),
    }
}

fn read_str_like<'a>(
    cur: &mut Cursor<'a>,
    schema: &AvroSchema,
) -> Result<Option<Cow<'a, str>>, CursorError> {
    match present(cur, schema)? {
        Some(AvroSchema {
            ty: AvroType::String,
            ..
        }) => cur.read_str().map(|s| Some(Cow::Borrowed(s))),
        Some(AvroSchema {
            ty: AvroType::Enum { symbols, .. },
            ..
        }) => {
            let at = cur.position();
            let index = cur.read_long()?;
            let symbol = usize::try_from(index).ok().and_then(|i| symbols.get(i));
            match symbol {
                Some(symbol) => Ok(Some(Cow::Owned(symbol.clone()))),
                None => Err(CursorError::BadEnumSymbol {
                    at,
                    index,
                    symbols: symbols.len(),
                }),
            }
        }
        Some(s) => skip(cur, s).map(|_| None),
        None => Ok(None),
    }
}

/// The first element of Debezium's Postgres `sequence`, a JSON array of
/// two strings `["<last commit LSN>", "<LSN>"]`: with the change's LSN it
/// orders the stream, since Postgres sends transactions in commit order
/// and a transaction's changes in LSN order. `null` (no commit seen yet
/// since the connector started) reads as 0; another shape as None.
pub(crate) fn commit_lsn(sequence: &str) -> Option<i64> {
    let inner = sequence.trim().strip_prefix('[')?.strip_suffix(']')?;
    let (first, second) = inner.split_once(',')?;
    if second.contains(',') {
        return None;
    }
    match first.trim() {
        "null" => Some(0),
        quoted => quoted.strip_prefix('"')?.strip_suffix('"')?.parse().ok(),
    }
}

fn read_source_field<'a>(
    cur: &mut Cursor<'a>,
    which: &SourceField,
    schema: &AvroSchema,
    want_names: bool,
    meta: &mut EventMeta<'a>,
) -> Result<(), CursorError> {
    match which {
        SourceField::Lsn => meta.lsn = read_long_like(cur, schema)?,
        SourceField::Sequence => {
            meta.commit_lsn = read_str_like(cur, schema)?.and_then(|s| commit_lsn(&s));
        }
        SourceField::TxId => meta.tx_id = read_long_like(cur, schema)?,
        SourceField::TsMs => meta.source_ts_ms = read_long_like(cur, schema)?,
        SourceField::TsUs => meta.source_ts_us = read_long_like(cur, schema)?,
        SourceField::Snapshot => meta.snapshot = read_str_like(cur, schema)?,
        SourceField::Db if want_names => meta.db = read_str_like(cur, schema)?,
        SourceField::Schema if want_names => meta.schema = read_str_like(cur, schema)?,
        SourceField::Table if want_names => meta.table = read_str_like(cur, schema)?,
        SourceField::Db | SourceField::Schema | SourceField::Table => skip(cur, schema)?,
        SourceField::Skip(plan) => plan.skip(cur)?,
    }
    Ok(())
}

fn read_transaction<'a>(
    cur: &mut Cursor<'a>,
    schema: &AvroSchema,
) -> Result<Option<TransactionBlock<'a>>, CursorError> {
    let Some(record) = present(cur, schema)? else {
        return Ok(None);
    };
    let AvroType::Record { fields, .. } = &record.ty else {
        return skip(cur, record).map(|_| None);
    };
    let (mut id, mut total_order, mut data_collection_order) = (None, None, None);
    for f in fields {
        match f.name.as_str() {
            "id" if f.schema.ty == AvroType::String => id = Some(cur.read_str()?),
            "total_order" if f.schema.ty == AvroType::Long => total_order = Some(cur.read_long()?),
            "data_collection_order" if f.schema.ty == AvroType::Long => {
                data_collection_order = Some(cur.read_long()?)
            }
            _ => skip(cur, &f.schema)?,
        }
    }
    Ok(match (id, total_order, data_collection_order) {
        (Some(id), Some(total_order), Some(data_collection_order)) => Some(TransactionBlock {
            id,
            total_order,
            data_collection_order,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::commit_lsn;

    #[test]
    fn the_commit_lsn_is_the_first_element_of_debeziums_sequence() {
        assert_eq!(commit_lsn(r#"["26716464","26716832"]"#), Some(26716464));
        assert_eq!(commit_lsn(r#"[null,"26709304"]"#), Some(0));
        assert_eq!(commit_lsn(r#" [ "7" , "9" ] "#), Some(7));
        assert_eq!(commit_lsn(r#"["7","9","11"]"#), None);
        assert_eq!(commit_lsn(r#"["x","9"]"#), None);
        assert_eq!(commit_lsn("26716464"), None);
        assert_eq!(commit_lsn(""), None);
    }
}
