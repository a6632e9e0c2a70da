//! Position-delete files written by floe, read back with parquet-rs.

use std::fs::File;
use std::sync::Arc;

use arrow_array::{Array, Int64Array, StringArray};
use iceberg::io::FileIO;
use iceberg::spec::{DataContentType, DataFileFormat, Datum, Literal, Struct};
use lakehouse::spec::parquet::FileTier;
use lakehouse::spec::position_delete::{
    write_position_deletes, PositionDelete, FILE_PATH_FIELD_ID, POS_FIELD_ID,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn delete(path: &str, pos: i64) -> PositionDelete {
    PositionDelete {
        file_path: Arc::from(path),
        pos,
    }
}

#[tokio::test]
async fn sorted_deduplicated_with_reserved_ids_and_exact_bounds() {
    let dir = std::env::temp_dir().join(format!("floe-posdel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let location = format!("file://{}/delete-00001.parquet", dir.display());
    // longer than parquet-rs's default 64-byte statistics truncation
    let long = "file:///warehouse/taxi_cdc/trips/data/pickup_datetime_day=2024-03-01/00000-0-5a0f3c6e-1b7d-4c55-9d0e-7f1e2a3b4c5d.parquet";
    let a =
        "file:///warehouse/taxi_cdc/trips/data/pickup_datetime_day=2024-03-01/00000-0-aaaa.parquet";
    let z = "file:///warehouse/taxi_cdc/trips/data/pickup_datetime_day=2024-03-05/00000-0-zzzz-zzzz-zzzz-zzzz-zzzz-zzzz-zzzz.parquet";
    let deletes = vec![
        delete(z, 3),
        delete(long, 9),
        delete(a, 7),
        delete(long, 2),
        delete(a, 7),
        delete(z, 0),
        delete(a, 1),
    ];
    let partition = Struct::from_iter([Some(Literal::int(19_783))]);
    let file = write_position_deletes(
        &FileIO::new_with_fs(),
        &Default::default(),
        &location,
        deletes,
        partition.clone(),
        3,
        FileTier::Settled,
    )
    .await
    .unwrap()
    .expect("a file for non-empty deletes");

    assert_eq!(file.content_type(), DataContentType::PositionDeletes);
    assert_eq!(file.file_format(), DataFileFormat::Parquet);
    assert_eq!(file.record_count(), 6, "the duplicate is written once");
    assert_eq!(file.partition(), &partition);
    assert_eq!(
        file.referenced_data_file(),
        None,
        "deletes of three data files name none of them as the one"
    );
    assert_eq!(
        file.lower_bounds().get(&FILE_PATH_FIELD_ID),
        Some(&Datum::string(long)),
        "exact lower bound"
    );
    assert_eq!(
        file.upper_bounds().get(&FILE_PATH_FIELD_ID),
        Some(&Datum::string(z)),
        "exact upper bound"
    );
    assert_eq!(
        file.lower_bounds().get(&POS_FIELD_ID),
        Some(&Datum::long(0))
    );
    assert_eq!(
        file.upper_bounds().get(&POS_FIELD_ID),
        Some(&Datum::long(9))
    );

    let path = file.file_path().trim_start_matches("file://").to_string();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        file.file_size_in_bytes()
    );
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
    let schema = reader.schema().clone();
    let ids: Vec<(String, String)> = schema
        .fields()
        .iter()
        .map(|f| {
            (
                f.name().clone(),
                f.metadata()
                    .get("PARQUET:field_id")
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("file_path".into(), "2147483546".into()),
            ("pos".into(), "2147483545".into())
        ]
    );
    assert!(schema.fields().iter().all(|f| !f.is_nullable()));
    let batches: Vec<_> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
    let mut rows = Vec::new();
    for b in &batches {
        let paths = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let pos = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        for i in 0..b.num_rows() {
            rows.push((paths.value(i).to_string(), pos.value(i)));
        }
    }
    let expected: Vec<(String, i64)> = [(long, 2), (long, 9), (a, 1), (a, 7), (z, 0), (z, 3)]
        .iter()
        .map(|(p, n)| (p.to_string(), *n))
        .collect();
    assert_eq!(rows, expected, "sorted by path, then position");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn no_deletes_no_file() {
    let dir = std::env::temp_dir().join(format!("floe-posdel-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let location = format!("file://{}/empty.parquet", dir.display());
    let file = write_position_deletes(
        &FileIO::new_with_fs(),
        &Default::default(),
        &location,
        vec![],
        Struct::empty(),
        0,
        FileTier::Settled,
    )
    .await
    .unwrap();
    assert!(file.is_none());
    assert!(!dir.join("empty.parquet").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn deletes_of_one_data_file_name_it_as_referenced() {
    let dir = std::env::temp_dir().join(format!("floe-posdel-one-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let location = format!("file://{}/one.parquet", dir.display());
    let data = "file:///warehouse/t/data/x=1/00000-0-aaaa.parquet";
    let file = write_position_deletes(
        &FileIO::new_with_fs(),
        &Default::default(),
        &location,
        vec![delete(data, 4), delete(data, 1)],
        Struct::empty(),
        0,
        FileTier::Fresh,
    )
    .await
    .unwrap()
    .expect("a file");
    assert_eq!(file.referenced_data_file().as_deref(), Some(data));
    assert_eq!(file.record_count(), 2);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn delete_granularity_reads_as_iceberg_spells_it() {
    use lakehouse::spec::position_delete::DeleteGranularity;
    assert_eq!(
        DeleteGranularity::parse("file"),
        Ok(DeleteGranularity::File)
    );
    assert_eq!(
        DeleteGranularity::parse(" Partition "),
        Ok(DeleteGranularity::Partition)
    );
    let refused = DeleteGranularity::parse("row").unwrap_err();
    assert!(refused.contains("write.delete.granularity"), "{refused}");
}
