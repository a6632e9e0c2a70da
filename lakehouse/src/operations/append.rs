//! `append`-mode tables: a changelog with one row per change, for source
//! tables without a primary key (or whenever history is wanted). Each row
//! is the change's row image (the after-image; the before-image for a
//! delete; all nulls for a truncate) followed by the change's operation,
//! Kafka partition and offset and source commit time
//! ([`crate::table::append_columns`]).

use std::sync::Arc;

use arrow_array::{new_null_array, Array, ArrayRef, BooleanArray, StructArray, UInt32Array};
use arrow_schema::{DataType, Field, Fields};
use ingest::batch::columns;
use ingest::{ChangeBatch, Op};

use crate::error::LakehouseError;
use crate::table::append_columns;

/// The changelog rows of `batch`'s changes at `rows` (offset order), as a
/// struct of the row image's columns and the append columns, ready for
/// [`crate::spec::write::table_rows`].
pub fn changelog_rows(
    batch: &ChangeBatch,
    rows: &[usize],
    table: &str,
) -> Result<StructArray, LakehouseError> {
    let arrow_err = |context: &str| {
        let context = format!("{context} for {table}");
        move |source| LakehouseError::Arrow { context, source }
    };
    let indices = UInt32Array::from_iter_values(rows.iter().map(|&i| i as u32));
    let take = |array: &dyn Array| {
        arrow_select::take::take(array, &indices, None).map_err(arrow_err("changelog rows"))
    };
    let after = batch
        .after()
        .ok_or_else(|| LakehouseError::SchemaMismatch {
            table: table.to_string(),
            reason: "the change batch has no after-image".into(),
        })?;
    let after = take(after)?;
    // deletes carry their row in the before-image (key columns at least)
    let image: ArrayRef = match batch.before() {
        Some(before) if before.fields() == after_fields(&after, table)? => {
            let is_delete: BooleanArray = rows
                .iter()
                .map(|&i| Some(batch.op(i) == Some(Op::Delete)))
                .collect();
            let before = take(before)?;
            arrow_select::zip::zip(&is_delete, &before, &after).map_err(arrow_err("row images"))?
        }
        _ => after,
    };
    let image = image
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| LakehouseError::SchemaMismatch {
            table: table.to_string(),
            reason: "the row image is not a struct".into(),
        })?;

    let mut fields: Vec<Arc<Field>> = image
        .fields()
        .iter()
        .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
        .collect();
    // a truncate has no row image: its row columns become nulls
    let absent: BooleanArray = (0..image.len()).map(|i| Some(image.is_null(i))).collect();
    let mut arrays: Vec<ArrayRef> = image
        .columns()
        .iter()
        .map(|c| arrow_select::nullif::nullif(c, &absent))
        .collect::<Result<_, _>>()
        .map_err(arrow_err("truncate rows"))?;
    for (from, to) in [
        (columns::OP, append_columns::OP),
        (columns::PARTITION, append_columns::PARTITION),
        (columns::OFFSET, append_columns::OFFSET),
        (columns::SOURCE_TS, append_columns::SOURCE_TS),
    ] {
        let column = match batch.records.column_by_name(from) {
            Some(c) => take(c.as_ref())?,
            None => new_null_array(&DataType::Null, rows.len()),
        };
        fields.push(Arc::new(Field::new(to, column.data_type().clone(), true)));
        arrays.push(column);
    }
    StructArray::try_new(Fields::from(fields), arrays, None).map_err(arrow_err("changelog rows"))
}

fn after_fields<'a>(after: &'a ArrayRef, table: &str) -> Result<&'a Fields, LakehouseError> {
    match after.data_type() {
        DataType::Struct(fields) => Ok(fields),
        other => Err(LakehouseError::SchemaMismatch {
            table: table.to_string(),
            reason: format!("the after-image is {other}, not a struct"),
        }),
    }
}
