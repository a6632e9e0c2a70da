//! The row-delta commit against a real SQLite catalog, read back through
//! iceberg's own scan, which applies position deletes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::{Array, Int32Array, RecordBatch, StringArray};
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::{DataContentType, DataFile, Struct};
use iceberg::table::Table;
use iceberg::writer::file_writer::{FileWriter, FileWriterBuilder, ParquetWriterBuilder};
use lakehouse::commit::{commit_row_delta, CommitError, RowDelta, SqlCatalogPointer};
use lakehouse::position_delete::{write_position_deletes, PositionDelete};
use lakehouse::{ensure_table, open_catalog, LakeConfig, TableTarget};
use parquet::file::properties::WriterProperties;

/// Writes `rows` of the vendors table (vendor_id, name) as one data file.
async fn data_file(table: &Table, file: &str, rows: &[(i32, &str)]) -> DataFile {
    let schema = table.metadata().current_schema().clone();
    let arrow = Arc::new(schema_to_arrow_schema(&schema).unwrap());
    let ids = Int32Array::from_iter_values(rows.iter().map(|r| r.0));
    let names = StringArray::from_iter_values(rows.iter().map(|r| r.1));
    let batch = RecordBatch::try_new(arrow, vec![Arc::new(ids), Arc::new(names)]).unwrap();
    let location = format!("{}/data/{file}.parquet", table.metadata().location());
    let output = table.file_io().new_output(&location).unwrap();
    let mut writer = ParquetWriterBuilder::new(WriterProperties::default(), schema)
        .build(output)
        .await
        .unwrap();
    writer.write(&batch).await.unwrap();
    let mut builder = writer.close().await.unwrap().pop().unwrap();
    builder
        .content(DataContentType::Data)
        .partition(Struct::empty())
        .partition_spec_id(0)
        .build()
        .unwrap()
}

/// Every live row, as iceberg's scan returns it.
async fn rows(table: &Table) -> BTreeSet<(i32, String)> {
    let batches = crate::support::scan_all(table).await;
    let mut out = BTreeSet::new();
    for b in batches {
        let ids = b
            .column_by_name("vendor_id")
            .unwrap()
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .clone();
        let names = b
            .column_by_name("name")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone();
        for i in 0..b.num_rows() {
            out.insert((ids.value(i), names.value(i).to_string()));
        }
    }
    out
}

fn set(rows: &[(i32, &str)]) -> BTreeSet<(i32, String)> {
    rows.iter().map(|(i, n)| (*i, n.to_string())).collect()
}

#[tokio::test]
async fn row_delta_commits_apply_position_deletes_and_refuse_stale_parents() {
    let vendors = crate::support::recorded_batches(Some("taxi.public.vendors"))
        .await
        .remove(0);

    let warehouse = std::env::temp_dir().join(format!("floe-commit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&warehouse);
    let lake = LakeConfig {
        warehouse: warehouse.clone().into(),
        ..LakeConfig::default()
    };
    let catalog = open_catalog(&lake).await.unwrap();
    let target = TableTarget::for_batch(&vendors, &lake.tables).unwrap();
    let table = ensure_table(catalog.as_ref(), &target, &vendors)
        .await
        .unwrap();
    let pointer = SqlCatalogPointer::connect(&format!(
        "sqlite://{}?mode=rwc",
        warehouse.join("catalog.db").display()
    ))
    .await
    .unwrap();

    // 1: three rows
    let first = data_file(&table, "first", &[(1, "A"), (2, "B"), (3, "C")]).await;
    let first_path = first.file_path().to_string();
    let delta = RowDelta {
        data_files: vec![first],
        ..Default::default()
    };
    let v1 = commit_row_delta(&pointer.clone().into(), &table, delta)
        .await
        .unwrap();
    assert_eq!(rows(&v1).await, set(&[(1, "A"), (2, "B"), (3, "C")]));
    let s1 = v1.metadata().current_snapshot().unwrap().clone();
    assert_eq!(s1.sequence_number(), 1);
    assert!(s1.parent_snapshot_id().is_none());

    // 2: update vendor 2 = delete its row by position + add the new row, in one snapshot
    let deletes = write_position_deletes(
        v1.file_io(),
        &format!("{}/data/deletes-1.parquet", v1.metadata().location()),
        vec![PositionDelete {
            file_path: Arc::from(first_path.as_str()),
            pos: 1,
        }],
        Struct::empty(),
        0,
    )
    .await
    .unwrap()
    .unwrap();
    let second = data_file(&v1, "second", &[(2, "B2")]).await;
    let offsets = HashMap::from([(
        "floe.kafka-offsets".to_string(),
        "taxi.public.vendors:0:4".to_string(),
    )]);
    let delta = RowDelta {
        data_files: vec![second],
        delete_files: vec![deletes],
        properties: offsets,
        ..Default::default()
    };
    let v2 = commit_row_delta(&pointer.clone().into(), &v1, delta)
        .await
        .unwrap();
    assert_eq!(
        rows(&v2).await,
        set(&[(1, "A"), (2, "B2"), (3, "C")]),
        "the deleted position is gone"
    );
    let s2 = v2.metadata().current_snapshot().unwrap().clone();
    assert_eq!(s2.parent_snapshot_id(), Some(s1.snapshot_id()));
    assert_eq!(s2.sequence_number(), 2);
    let props = &s2.summary().additional_properties;
    assert_eq!(props["total-records"], "4");
    assert_eq!(props["total-data-files"], "2");
    assert_eq!(props["total-delete-files"], "1");
    assert_eq!(props["total-position-deletes"], "1");
    assert_eq!(props["added-records"], "1");
    assert_eq!(props["floe.kafka-offsets"], "taxi.public.vendors:0:4");
    assert_eq!(s2.summary().operation, iceberg::spec::Operation::Overwrite);

    // 3: a commit built on the stale v1 must not overwrite v2
    let stale = data_file(&v1, "stale", &[(9, "Z")]).await;
    let err = commit_row_delta(
        &pointer.clone().into(),
        &v1,
        RowDelta {
            data_files: vec![stale],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CommitError::Conflict { .. }), "{err}");

    // 4: a fresh catalog sees v2, unchanged by the failed commit
    let catalog = open_catalog(&lake).await.unwrap();
    let reloaded = catalog.load_table(&target.ident).await.unwrap();
    assert_eq!(reloaded.metadata_location(), v2.metadata_location());
    assert_eq!(
        reloaded
            .metadata()
            .current_snapshot()
            .unwrap()
            .snapshot_id(),
        s2.snapshot_id()
    );
    assert_eq!(rows(&reloaded).await, set(&[(1, "A"), (2, "B2"), (3, "C")]));
    assert_eq!(reloaded.metadata().snapshots().count(), 2);
    std::fs::remove_dir_all(&warehouse).ok();
}
