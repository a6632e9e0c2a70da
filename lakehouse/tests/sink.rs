//! `sink::write_result` on a day-partitioned table: overwrite, append and
//! overwrite-partitions, read back through iceberg's scan, with the
//! snapshot's carried totals checked against what the scan counts.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::{Array, Date32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use iceberg::TableIdent;
use lakehouse::sink::{write_result, WriteMode};
use lakehouse::Lake;

/// (day since epoch, value)
type Row = (i32, i64);

fn batch(rows: &[Row]) -> (Schema, RecordBatch) {
    let schema = Schema::new(vec![
        Field::new("day", DataType::Date32, false),
        Field::new("value", DataType::Int64, false),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema.clone()),
        vec![
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )
    .unwrap();
    (schema, batch)
}

async fn write(lake: &Lake, mode: WriteMode, rows: &[Row]) {
    let ident = TableIdent::from_strs(["results", "daily"]).unwrap();
    let (schema, batch) = batch(rows);
    write_result(
        lake,
        &ident,
        &["day".to_string()],
        mode,
        &schema,
        &[batch],
        Default::default(),
    )
    .await
    .unwrap();
}

async fn read(lake: &Lake) -> (BTreeSet<Row>, HashMap<String, String>) {
    let ident = TableIdent::from_strs(["results", "daily"]).unwrap();
    let table = lake.catalog().load_table(&ident).await.unwrap();
    let mut rows = BTreeSet::new();
    for b in crate::support::scan_all(&table).await {
        let days = b.column(0).as_any().downcast_ref::<Date32Array>().unwrap();
        let values = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            rows.insert((days.value(i), values.value(i)));
        }
    }
    let summary = table
        .metadata()
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties
        .clone();
    (rows, summary)
}

fn set(rows: &[Row]) -> BTreeSet<Row> {
    rows.iter().copied().collect()
}

#[tokio::test]
async fn overwrite_partitions_replaces_only_the_partitions_written() {
    let (warehouse, lake) = crate::support::temp_lake("sink").await;

    write(
        &lake,
        WriteMode::Overwrite,
        &[(1, 10), (1, 11), (2, 20), (3, 30)],
    )
    .await;
    write(&lake, WriteMode::Append, &[(3, 31)]).await;
    let (rows, _) = read(&lake).await;
    assert_eq!(rows, set(&[(1, 10), (1, 11), (2, 20), (3, 30), (3, 31)]));

    // day 1 gets new rows, day 3 (two files) is replaced by one row, day 2
    // is left alone
    write(
        &lake,
        WriteMode::OverwritePartitions,
        &[(1, 12), (3, 32), (4, 40)],
    )
    .await;
    let (rows, summary) = read(&lake).await;
    assert_eq!(rows, set(&[(1, 12), (2, 20), (3, 32), (4, 40)]));
    assert_eq!(summary["total-records"], "4");
    assert_eq!(summary["total-data-files"], "4");
    assert_eq!(summary["deleted-data-files"], "3");
    assert_eq!(summary["deleted-records"], "4");

    // the same write again changes nothing a reader sees
    write(
        &lake,
        WriteMode::OverwritePartitions,
        &[(1, 12), (3, 32), (4, 40)],
    )
    .await;
    let (again, summary) = read(&lake).await;
    assert_eq!(again, rows);
    assert_eq!(summary["total-records"], "4");

    write(&lake, WriteMode::Overwrite, &[(5, 50)]).await;
    let (rows, summary) = read(&lake).await;
    assert_eq!(rows, set(&[(5, 50)]));
    assert_eq!(summary["total-records"], "1");
    let _ = std::fs::remove_dir_all(&warehouse);
}
