//! The transaction layer's commits against a real SQLite catalog, read
//! back through iceberg's own scan, which applies position deletes.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::{Array, Int32Array, RecordBatch, StringArray};
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::Operation;
use iceberg::spec::{DataContentType, DataFile, Struct};
use iceberg::table::Table;
use iceberg::writer::file_writer::{FileWriter, FileWriterBuilder, ParquetWriterBuilder};
use iceberg::Catalog;
use lakehouse::spec::parquet::FileTier;
use lakehouse::spec::position_delete::{write_position_deletes, PositionDelete};
use lakehouse::transaction::{
    CatalogPointer, KafkaOffsets, OnThisTable, Rebasable, RetryPolicy, SnapshotUpdate,
    SqlCatalogPointer, StateChange, Transaction,
};
use lakehouse::LakehouseError;
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

/// Commits `update` on `base` as the CDC row delta does: once, a lost
/// race returned at once.
async fn commit(
    catalog: &dyn Catalog,
    pointer: &CatalogPointer,
    base: &Table,
    update: SnapshotUpdate,
    state: StateChange,
) -> Result<Table, LakehouseError> {
    let policy = RetryPolicy {
        conflicts: 0,
        ..RetryPolicy::default()
    };
    Transaction::new(catalog, pointer, base.clone(), OnThisTable(update))
        .state(state)
        .retry(policy)
        .commit()
        .await
        .map(|c| c.table)
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
    let pointer = CatalogPointer::from(pointer);
    let catalog = catalog.as_ref();

    // 1: three rows
    let first = data_file(&table, "first", &[(1, "A"), (2, "B"), (3, "C")]).await;
    let first_path = first.file_path().to_string();
    let update = SnapshotUpdate::new(Operation::Append, vec![first]);
    let v1 = commit(catalog, &pointer, &table, update, StateChange::default())
        .await
        .unwrap();
    assert_eq!(rows(&v1).await, set(&[(1, "A"), (2, "B"), (3, "C")]));
    let s1 = v1.metadata().current_snapshot().unwrap().clone();
    assert_eq!(s1.sequence_number(), 1);
    assert!(s1.parent_snapshot_id().is_none());

    // 2: update vendor 2 = delete its row by position + add the new row, in one snapshot
    let deletes = write_position_deletes(
        v1.file_io(),
        v1.metadata().properties(),
        &format!("{}/data/deletes-1.parquet", v1.metadata().location()),
        vec![PositionDelete {
            file_path: Arc::from(first_path.as_str()),
            pos: 1,
        }],
        Struct::empty(),
        0,
        FileTier::Settled,
    )
    .await
    .unwrap()
    .unwrap();
    let second = data_file(&v1, "second", &[(2, "B2")]).await;
    let offsets = StateChange::offsets("taxi.public.vendors", [(0, 0, 4)]);
    let mut update = SnapshotUpdate::new(Operation::Overwrite, vec![second]);
    update.delete_files = vec![deletes];
    let v2 = commit(catalog, &pointer, &v1, update, offsets)
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
    assert_eq!(props["floe.offset.taxi.public.vendors.0"], "4");
    assert_eq!(KafkaOffsets::of(&v2).get("taxi.public.vendors", 0), Some(4));
    assert_eq!(s2.summary().operation, iceberg::spec::Operation::Overwrite);

    // 3: a commit built on the stale v1 must not overwrite v2
    let stale = data_file(&v1, "stale", &[(9, "Z")]).await;
    let update = SnapshotUpdate::new(Operation::Append, vec![stale]);
    let err = commit(catalog, &pointer, &v1, update, StateChange::default())
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");

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

/// The transaction's retry and its streaming idempotency: an append built
/// on a stale table commits on top of the newer one (a second attempt),
/// floe's state carried; offsets the table already holds are refused.
#[tokio::test]
async fn a_rebasable_commit_lands_on_the_newer_table_and_offsets_are_never_applied_twice() {
    let vendors = crate::support::recorded_batches(Some("taxi.public.vendors"))
        .await
        .remove(0);
    let warehouse = std::env::temp_dir().join(format!("floe-rebase-{}", std::process::id()));
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
    let pointer = CatalogPointer::from(
        SqlCatalogPointer::connect(&format!(
            "sqlite://{}?mode=rwc",
            warehouse.join("catalog.db").display()
        ))
        .await
        .unwrap(),
    );
    let fast = RetryPolicy {
        min_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(5),
        ..RetryPolicy::default()
    };
    let append = |table: Table, name: &'static str, rows: &'static [(i32, &'static str)]| {
        let catalog = catalog.clone();
        let pointer = pointer.clone();
        let fast = fast.clone();
        async move {
            let file = data_file(&table, name, rows).await;
            Transaction::new(
                catalog.as_ref(),
                &pointer,
                table,
                Rebasable(SnapshotUpdate::new(Operation::Append, vec![file])),
            )
            .state(StateChange::offsets(
                "t",
                [(0, rows[0].0 as i64, rows[rows.len() - 1].0 as i64)],
            ))
            .retry(fast)
            .commit()
            .await
        }
    };
    let v1 = append(table.clone(), "one", &[(1, "A"), (2, "B")])
        .await
        .unwrap();
    assert_eq!(v1.attempts, 1);
    // built on the empty table, which v1 has moved past
    let v2 = append(table.clone(), "two", &[(3, "C")]).await.unwrap();
    assert_eq!(v2.attempts, 2, "lost the race once, then committed on v1");
    assert_eq!(rows(&v2.table).await, set(&[(1, "A"), (2, "B"), (3, "C")]));
    let snapshot = v2.table.metadata().current_snapshot().unwrap();
    assert_eq!(
        snapshot.parent_snapshot_id(),
        v1.table.metadata().current_snapshot_id()
    );
    assert_eq!(KafkaOffsets::of(&v2.table).get("t", 0), Some(3));
    // offsets 2..=2 are in the table already
    let again = append(v2.table.clone(), "again", &[(2, "B")])
        .await
        .unwrap_err();
    assert!(
        matches!(
            again,
            LakehouseError::Commit {
                source: lakehouse::transaction::CommitError::AlreadyApplied { .. },
                ..
            }
        ),
        "{again}"
    );
    let reloaded = catalog.load_table(&target.ident).await.unwrap();
    assert_eq!(reloaded.metadata().snapshots().count(), 2);
    std::fs::remove_dir_all(&warehouse).ok();
}
