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
