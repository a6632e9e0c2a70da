//! Shared helpers of the lakehouse tests.

use std::path::PathBuf;

use arrow_array::RecordBatch;
use futures::TryStreamExt;
use iceberg::table::Table;
use ingest::{ChangeBatch, ChangeDecoder, Recording};

/// The recorded Debezium fixtures decoded into change batches, optionally
/// only those of one topic.
pub async fn recorded_batches(topic: Option<&str>) -> Vec<ChangeBatch> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium");
    let rec = Recording::load(&dir).unwrap();
    let mut decoder = ChangeDecoder::new(rec.schemas.clone());
    for m in rec
        .messages
        .iter()
        .filter(|m| topic.is_none_or(|t| m.topic == t))
    {
        decoder.push(&m.as_raw()).await.unwrap();
    }
    decoder.flush()
}

/// Every live row of the table's current snapshot, through iceberg's scan
/// (which applies position deletes).
pub async fn scan_all(table: &Table) -> Vec<RecordBatch> {
    table
        .scan()
        .select_all()
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// One column of scanned rows by trip id: `get` reads row `i` of the
/// column (as its concrete array type `A`), or None where it is null.
pub fn by_trip<A: arrow_array::Array + 'static, V>(
    batches: &[RecordBatch],
    column: &str,
    get: impl Fn(&A, usize) -> V,
) -> std::collections::BTreeMap<i64, Option<V>> {
    use arrow_array::Array;
    let mut out = std::collections::BTreeMap::new();
    for b in batches {
        let ids = b.column_by_name("trip_id").unwrap();
        let ids = ids
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        let col = b.column_by_name(column).unwrap();
        let col = col
            .as_any()
            .downcast_ref::<A>()
            .unwrap_or_else(|| panic!("{column} is not the expected array type"));
        for i in 0..b.num_rows() {
            out.insert(ids.value(i), col.is_valid(i).then(|| get(col, i)));
        }
    }
    out
}
