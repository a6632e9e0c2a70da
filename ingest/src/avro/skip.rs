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
