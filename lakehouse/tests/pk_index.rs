//! The primary-key index: upserts and deletes return the position delete
//! of the row they replace; memory per live bigint key is measured.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, StringArray, StructArray};
use arrow_schema::{DataType, Field};
use lakehouse::index::pk_index::{PrimaryKeyIndex, RowLocation};
use lakehouse::spec::position_delete::PositionDelete;

fn del(path: &str, pos: i64) -> Option<PositionDelete> {
    Some(PositionDelete {
        file_path: Arc::from(path),
        pos,
    })
}

#[tokio::test]
async fn integer_keys_from_recorded_batches() {
    let batch = crate::support::recorded_batches(Some("taxi.public.payment_types"))
        .await
        .remove(0);
    let key = batch.key().unwrap();
    assert_eq!(
        key.column(0).data_type(),
        &DataType::Int32,
        "smallint key, decoded as Int32"
    );

    let mut index = PrimaryKeyIndex::new(&[DataType::Int32]).unwrap();
    let keys = index.batch_keys(key).unwrap();
    assert_eq!(keys.len(), 7);
    assert!(keys.get(4).is_none(), "the truncate has no key");
    let f1 = index.register_file("file:///lake/f1.parquet");
    assert_eq!(
        index.register_file("file:///lake/f1.parquet"),
        f1,
        "one id per file"
    );
    for i in 0..4 {
        assert_eq!(
            index.upsert(
                keys.get(i).unwrap(),
                RowLocation {
                    file: f1,
                    pos: i as u32
                }
            ),
            None
        );
    }
    assert_eq!(index.len(), 4);
    // rows 5 and 6 re-insert keys 1 and 2 into another file
    let f2 = index.register_file("file:///lake/f2.parquet");
    assert_eq!(
        index.upsert(keys.get(5).unwrap(), RowLocation { file: f2, pos: 0 }),
        del("file:///lake/f1.parquet", 0)
    );
    assert_eq!(
        index.upsert(keys.get(6).unwrap(), RowLocation { file: f2, pos: 1 }),
        del("file:///lake/f1.parquet", 1)
    );
    assert_eq!(
        index.get(keys.get(5).unwrap()),
        Some((Arc::from("file:///lake/f2.parquet"), 0))
    );
    assert_eq!(
        index.remove(keys.get(3).unwrap()),
        del("file:///lake/f1.parquet", 3)
    );
    assert_eq!(
        index.remove(keys.get(3).unwrap()),
        None,
        "deleting an absent key is not an error"
    );
    assert_eq!(index.len(), 3);
    index.clear();
    assert!(index.is_empty());
}

#[test]
fn composite_text_keys() {
    let key = StructArray::from(vec![
        (
            Arc::new(Field::new("zone", DataType::Utf8, false)),
            Arc::new(StringArray::from(vec!["JFK", "JFK", "LGA", "JFK"])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("hour", DataType::Int32, false)),
            Arc::new(Int32Array::from(vec![1, 2, 1, 1])) as ArrayRef,
        ),
    ]);
    let mut index = PrimaryKeyIndex::new(&[DataType::Utf8, DataType::Int32]).unwrap();
    let keys = index.batch_keys(&key).unwrap();
    let f = index.register_file("f");
    assert_eq!(
        index.upsert(keys.get(0).unwrap(), RowLocation { file: f, pos: 0 }),
        None
    );
    assert_eq!(
        index.upsert(keys.get(1).unwrap(), RowLocation { file: f, pos: 1 }),
        None,
        "(JFK,2) differs from (JFK,1)"
    );
    assert_eq!(
        index.upsert(keys.get(2).unwrap(), RowLocation { file: f, pos: 2 }),
        None
    );
    assert_eq!(
        index.upsert(keys.get(3).unwrap(), RowLocation { file: f, pos: 3 }),
        del("f", 0),
        "(JFK,1) again"
    );
    assert_eq!(index.len(), 3);
}

#[test]
fn a_million_bigint_keys_take_at_most_32_bytes_each() {
    let mut index = PrimaryKeyIndex::new(&[DataType::Int64]).unwrap();
    let files: Vec<u32> = (0..100)
        .map(|i| index.register_file(&format!("file:///lake/data/part-{i:05}.parquet")))
        .collect();
    let n = 1_000_000i64;
    for k in 0..n {
        let loc = RowLocation {
            file: files[(k % 100) as usize],
            pos: (k / 100) as u32,
        };
        index.upsert(lakehouse::index::pk_index::Key::Int(k * 31 + 7), loc);
    }
    assert_eq!(index.len(), n as usize);
    let per_row = index.heap_bytes() as f64 / n as f64;
    eprintln!(
        "primary-key index: {n} bigint keys, {} bytes, {per_row:.1} bytes per live row",
        index.heap_bytes()
    );
    assert!(per_row <= 32.0, "{per_row:.1} bytes per row");
}

/// A launched batch's changes are held apart from the next batch's: the
/// next one rolls back alone, the held one stays until its commit lands
/// (released) or does not (both rolled back).
#[test]
fn a_held_batch_rolls_back_apart_from_the_next() {
    let key = Int32Array::from(vec![1, 2, 3]);
    let key = StructArray::from(vec![(
        Arc::new(Field::new("id", DataType::Int32, false)),
        Arc::new(key) as ArrayRef,
    )]);
    let mut index = PrimaryKeyIndex::new(&[DataType::Int32]).unwrap();
    let keys = index.batch_keys(&key).unwrap();
    let (one, two, three) = (
        keys.get(0).unwrap(),
        keys.get(1).unwrap(),
        keys.get(2).unwrap(),
    );
    let f = index.register_file("f");
    let g = index.register_file("g");
    let at = |file, pos| RowLocation { file, pos };
    index.upsert(one, at(f, 0));
    index.keep();

    // batch N: moves key 1, adds key 2; launched
    index.begin();
    index.upsert(one, at(f, 1));
    index.upsert(two, at(f, 2));
    index.hold();
    // batch N+1, on top of it: moves key 2, adds key 3; rolled back alone
    index.begin();
    assert_eq!(index.upsert(two, at(g, 0)), del("f", 2));
    index.upsert(three, at(g, 1));
    index.rollback();
    assert_eq!(index.location(one), Some(at(f, 1)));
    assert_eq!(index.location(two), Some(at(f, 2)));
    assert_eq!(index.location(three), None);

    // planned again, then N's commit does not land: both undone
    index.begin();
    index.upsert(three, at(g, 1));
    index.rollback_all();
    assert_eq!(index.location(one), Some(at(f, 0)));
    assert_eq!(index.location(two), None);
    assert_eq!(index.location(three), None);
    assert_eq!(index.len(), 1);

    // N held again, N+1 on top; N lands: N+1 still rolls back alone
    index.begin();
    index.upsert(two, at(f, 2));
    index.hold();
    index.begin();
    index.upsert(three, at(g, 1));
    index.release_held();
    index.rollback();
    assert_eq!(index.location(two), Some(at(f, 2)));
    assert_eq!(index.location(three), None);
    index.keep();
    assert_eq!(index.len(), 2);
}
