//! Writing change-batch rows into partitioned data files and committing
//! them, read back with parquet-rs and iceberg's scan.

use std::collections::BTreeSet;
use std::fs::File;

use arrow_array::{Array, Int64Array, RecordBatch, StructArray, UInt32Array};
use iceberg::spec::Literal;
use iceberg::spec::Operation;
use ingest::{ChangeBatch, Op};
use lakehouse::spec::write::{table_rows, write_rows};
use lakehouse::transaction::{
    CatalogPointer, Rebasable, SnapshotUpdate, SqlCatalogPointer, Transaction,
};
use lakehouse::{ensure_table, open_catalog, LakeConfig, LakehouseError, TableTarget};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

async fn trips_batches() -> Vec<ChangeBatch> {
    crate::support::recorded_batches(Some("taxi.public.trips")).await
}

/// The after-images of a batch's inserts, updates and snapshot reads.
fn upserted(batch: &ChangeBatch) -> StructArray {
    let keep: Vec<u32> = (0..batch.num_rows())
        .filter(|&i| batch.op(i) != Some(Op::Delete))
        .map(|i| i as u32)
        .collect();
    let after =
        arrow_select::take::take(batch.after().unwrap(), &UInt32Array::from(keep), None).unwrap();
    after
        .as_any()
        .downcast_ref::<StructArray>()
        .unwrap()
        .clone()
}

fn ids(rows: &RecordBatch) -> Vec<i64> {
    rows.column_by_name("trip_id")
        .unwrap()
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec()
}

async fn lake_with_trips(test: &str) -> (LakeConfig, std::sync::Arc<dyn iceberg::Catalog>) {
    let warehouse = std::env::temp_dir().join(format!("floe-write-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&warehouse);
    let mut lake = LakeConfig {
        warehouse: warehouse.into(),
        ..LakeConfig::default()
    };
    crate::support::trips_by_day(&mut lake);
    let catalog = open_catalog(&lake).await.unwrap();
    (lake, catalog)
}

#[tokio::test]
async fn rows_land_in_one_file_per_day_and_their_positions_are_known() {
    let batches = trips_batches().await;
    let (lake, catalog) = lake_with_trips("days").await;
    let first = &batches[0];
    let target = TableTarget::for_batch(first, &lake.tables).unwrap();
    let table = ensure_table(catalog.as_ref(), &target, first)
        .await
        .unwrap();

    let after = upserted(first);
    let rows = table_rows(&after, table.metadata().current_schema(), "taxi_cdc.trips").unwrap();
    let input_ids = ids(&rows);
    assert_eq!(input_ids, [1, 2, 3, 1, 2, 3], "r, r, c, u, u, u");
    let written = write_rows(&table, &rows, "batch-0").await.unwrap();

    // pickups: trip 1 on 03-01, trip 2 on 03-01 then 03-05, trip 3 on 03-02
    let day = |d: &str| (chrono_days(d)) as i32;
    let mut partitions: Vec<i32> = written
        .files
        .iter()
        .map(|f| match f.partition().fields().first() {
            Some(Some(Literal::Primitive(iceberg::spec::PrimitiveLiteral::Int(v)))) => *v,
            other => panic!("unexpected partition value {other:?}"),
        })
        .collect();
    partitions.sort();
    assert_eq!(
        partitions,
        [day("2024-03-01"), day("2024-03-02"), day("2024-03-05")]
    );
    for f in &written.files {
        assert!(
            f.file_path().contains("pickup_datetime_day="),
            "{}",
            f.file_path()
        );
    }
    assert_eq!(
        written.files.iter().map(|f| f.record_count()).sum::<u64>(),
        6
    );

    // every input row is where `locations` says
    for (row, (file, pos)) in written.locations.iter().enumerate() {
        let path = written.files[*file as usize]
            .file_path()
            .trim_start_matches("file://")
            .to_string();
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        let all: Vec<i64> = batches.iter().flat_map(ids).collect();
        assert_eq!(all[*pos as usize], input_ids[row], "row {row}");
    }

    // committed, iceberg's scan sees all six rows
    let uri = format!(
        "sqlite://{}?mode=rwc",
        lake.warehouse
            .local_dir()
            .unwrap()
            .join("catalog.db")
            .display()
    );
    let pointer = CatalogPointer::from(SqlCatalogPointer::connect(&uri).await.unwrap());
    let update = SnapshotUpdate::new(Operation::Append, written.files);
    let table = Transaction::new(catalog.as_ref(), &pointer, table, Rebasable(update))
        .commit()
        .await
        .unwrap()
        .table;
    let scanned = crate::support::scan_all(&table).await;
    let mut got: Vec<i64> = scanned.iter().flat_map(ids).collect();
    got.sort();
    assert_eq!(got, [1, 1, 2, 2, 3, 3]);
    std::fs::remove_dir_all(lake.warehouse.local_dir().unwrap()).ok();
}

fn chrono_days(date: &str) -> i64 {
    // days since 1970-01-01, computed independently of floe's code
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (y, m, day) = (d[0], d[1], d[2]);
    let days_before_month =
        [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334][(m - 1) as usize];
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut days = (1970..y)
        .map(|yy| {
            if (yy % 4 == 0 && yy % 100 != 0) || yy % 400 == 0 {
                366
            } else {
                365
            }
        })
        .sum::<i64>();
    days += days_before_month + if leap && m > 2 { 1 } else { 0 } + day - 1;
    days
}

#[tokio::test]
async fn schema_differences_between_batch_and_table() {
    let batches = trips_batches().await;
    assert!(batches[1].schema_changed());
    let (lake, catalog) = lake_with_trips("schemas").await;

    // a table made from the old schema refuses rows with the added column
    let target = TableTarget::for_batch(&batches[0], &lake.tables).unwrap();
    let table = ensure_table(catalog.as_ref(), &target, &batches[0])
        .await
        .unwrap();
    let err = table_rows(
        &upserted(&batches[1]),
        table.metadata().current_schema(),
        "taxi_cdc.trips",
    )
    .unwrap_err();
    assert!(
        matches!(err, LakehouseError::SchemaMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("congestion_surcharge"), "{err}");

    // rows of the old schema fit a table with the added column, as nulls
    let mut lake2 = lake.clone();
    lake2.tables.by_source.get_mut("public.trips").unwrap().name = Some("trips_v2".into());
    let target2 = TableTarget::for_batch(&batches[1], &lake2.tables).unwrap();
    let table2 = ensure_table(catalog.as_ref(), &target2, &batches[1])
        .await
        .unwrap();
    let rows = table_rows(
        &upserted(&batches[0]),
        table2.metadata().current_schema(),
        "taxi_cdc.trips_v2",
    )
    .unwrap();
    let surcharge = rows.column_by_name("congestion_surcharge").unwrap();
    assert_eq!(surcharge.null_count(), rows.num_rows());
    let ids_seen: BTreeSet<i64> = ids(&rows).into_iter().collect();
    assert_eq!(ids_seen, BTreeSet::from([1, 2, 3]));
    std::fs::remove_dir_all(lake.warehouse.local_dir().unwrap()).ok();
}
