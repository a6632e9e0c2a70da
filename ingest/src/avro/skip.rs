//! Reading past a value without keeping it, for envelope fields floe does
//! not use.

use super::{AvroSchema, AvroType, Cursor, CursorError};

/// Advances `cur` past one value of `schema`.
pub fn skip(cur: &mut Cursor<'_>, schema: &AvroSchema) -> Result<(), CursorError> {
    match &schema.ty {
        AvroType::Null => Ok(()),
        AvroType::Boolean => cur.read_bool().map(drop),
        AvroType::Int | AvroType::Long | AvroType::Enum { .. } => cur.read_long().map(drop),
        AvroType::Float => cur.take(4).map(drop),
        AvroType::Double => cur.take(8).map(drop),
        AvroType::Bytes | AvroType::String => cur.read_bytes().map(drop),
        AvroType::Fixed { size, .. } => cur.take(*size as u64).map(drop),
        AvroType::Record { fields, .. } => fields.iter().try_for_each(|f| skip(cur, &f.schema)),
        AvroType::Union(branches) => {
            let i = cur.read_union_branch(branches.len())?;
            skip(cur, &branches[i])
        }
        AvroType::Array(items) => skip_blocks(cur, |c| skip(c, items)),
        AvroType::Map(values) => skip_blocks(cur, |c| {
            c.read_bytes()?;
            skip(c, values)
        }),
    }
}

fn skip_blocks(
    cur: &mut Cursor<'_>,
    mut item: impl FnMut(&mut Cursor<'_>) -> Result<(), CursorError>,
) -> Result<(), CursorError> {
    loop {
        let count = cur.read_block_count()?;
        if count == 0 {
            return Ok(());
        }
        for _ in 0..count {
            item(cur)?;
        }
    }
}

/// A skip compiled from a schema: the common shapes of Debezium's envelope
/// and `source` fields (longs, strings, `[null, T]` unions) without walking
/// the schema tree for every message.
#[derive(Debug, Clone)]
pub enum SkipPlan {
    Nothing,
    Varint,
    LengthPrefixed,
    Fixed(u64),
    Boolean,
    Nullable {
        null_branch: usize,
        inner: Box<SkipPlan>,
    },
    Schema(Box<AvroSchema>),
}

impl SkipPlan {
    pub fn compile(schema: &AvroSchema) -> Self {
        match &schema.ty {
            AvroType::Null => SkipPlan::Nothing,
            AvroType::Int | AvroType::Long | AvroType::Enum { .. } => SkipPlan::Varint,
            AvroType::Bytes | AvroType::String => SkipPlan::LengthPrefixed,
            AvroType::Float => SkipPlan::Fixed(4),
            AvroType::Double => SkipPlan::Fixed(8),
            AvroType::Fixed { size, .. } => SkipPlan::Fixed(*size as u64),
            AvroType::Boolean => SkipPlan::Boolean,
            AvroType::Union(_) => match schema.as_nullable() {
                Some((null_branch, inner)) => SkipPlan::Nullable {
                    null_branch,
                    inner: Box::new(Self::compile(inner)),
                },
                None => SkipPlan::Schema(Box::new(schema.clone())),
            },
            _ => SkipPlan::Schema(Box::new(schema.clone())),
        }
    }

    #[inline]
    pub fn skip(&self, cur: &mut Cursor<'_>) -> Result<(), CursorError> {
        match self {
            SkipPlan::Nothing => Ok(()),
            SkipPlan::Varint => cur.read_long().map(drop),
            SkipPlan::LengthPrefixed => cur.read_bytes().map(drop),
            SkipPlan::Fixed(n) => cur.take(*n).map(drop),
            SkipPlan::Boolean => cur.read_bool().map(drop),
            SkipPlan::Nullable { null_branch, inner } => {
                if cur.read_union_branch(2)? == *null_branch {
                    Ok(())
                } else {
                    inner.skip(cur)
                }
            }
            SkipPlan::Schema(schema) => skip(cur, schema),
        }
    }
}
