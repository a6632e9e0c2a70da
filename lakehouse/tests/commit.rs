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

/// A position-delete file `name` of `table` deleting row `pos` of the
/// data file at `data_path`.
async fn position_delete(table: &Table, name: &str, data_path: &str, pos: i64) -> DataFile {
    write_position_deletes(
        table.file_io(),
        table.metadata().properties(),
        &format!("{}/data/{name}.parquet", table.metadata().location()),
        vec![PositionDelete {
            file_path: Arc::from(data_path),
            pos,
        }],
        Struct::empty(),
        0,
        FileTier::Settled,
    )
    .await
    .unwrap()
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

/// Commits `update` on `table` of `lake`, carrying no state.
async fn commit_on(lake: &lakehouse::Lake, table: &Table, update: SnapshotUpdate) -> Table {
    commit(
        lake.catalog().as_ref(),
        lake.pointer(),
        table,
        update,
        StateChange::default(),
    )
    .await
    .unwrap()
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
    let deletes = position_delete(&v1, "deletes-1", &first_path, 1).await;
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

/// A table committed once per change keeps a short manifest list: once
/// 16 small manifests of a kind pile up (the count floe sets on the
/// tables it creates), a commit merges them, every file keeping the
/// sequence number it was added with, so position deletes still hit
/// exactly the rows they hit before; a table that turns merging off lets
/// them pile up.
#[tokio::test]
async fn small_manifests_are_merged_keeping_sequence_numbers() {
    let vendors = crate::support::recorded_batches(Some("taxi.public.vendors"))
        .await
        .remove(0);
    let (warehouse, lake) = crate::support::temp_lake("manifest-merge").await;
    let target = TableTarget::for_batch(&vendors, &lake.config().tables).unwrap();
    let mut table = ensure_table(lake.catalog().as_ref(), &target, &vendors)
        .await
        .unwrap();
    assert_eq!(
        table.metadata().properties()[lakehouse::transaction::MANIFEST_MIN_COUNT_TO_MERGE],
        "16"
    );
    let mut expected = std::collections::BTreeMap::new();
    let mut added_at: std::collections::HashMap<String, i64> = Default::default();
    let mut longest = 0;
    for i in 0..60i32 {
        // each commit adds a row; every third also deletes, by position,
        // the row the previous commit added
        let name = format!("v{i}");
        let file = data_file(&table, &format!("f{i}"), &[(i, &name)]).await;
        let path = file.file_path().to_string();
        let mut update = SnapshotUpdate::new(Operation::Append, vec![file]);
        if i % 3 == 2 {
            let previous = format!("{}/data/f{}.parquet", table.metadata().location(), i - 1);
            let deletes = position_delete(&table, &format!("d{i}"), &previous, 0).await;
            update.operation = Operation::Overwrite;
            update.delete_files = vec![deletes];
            expected.remove(&(i - 1));
        }
        expected.insert(i, name);
        table = commit_on(&lake, &table, update).await;
        let sequence = table
            .metadata()
            .current_snapshot()
            .unwrap()
            .sequence_number();
        added_at.insert(path, sequence);
        let listed = crate::support::manifests(&table).await;
        longest = longest.max(listed.len());
        // at most 15 small ones of each kind carried, plus this commit's
        assert!(
            listed.len() <= 2 * 15 + 2,
            "{} manifests after commit {i}",
            listed.len()
        );
    }
    assert!(
        longest >= 20,
        "manifests were merged, not never written: {longest}"
    );
    let want: BTreeSet<(i32, String)> = expected.into_iter().collect();
    assert_eq!(rows(&table).await, want);
    // every live data file keeps the sequence number of its commit
    let mut live = 0;
    for manifest in crate::support::manifests(&table).await {
        let loaded = manifest.load_manifest(table.file_io()).await.unwrap();
        for entry in loaded.entries().iter().filter(|e| e.is_alive()) {
            if let Some(seq) = added_at.get(entry.data_file().file_path()) {
                assert_eq!(entry.sequence_number(), Some(*seq));
                live += 1;
            }
        }
    }
    assert_eq!(live, 60, "every data file is still listed once");
    let merged = crate::support::manifests(&table)
        .await
        .into_iter()
        .filter(|m| m.existing_files_count.unwrap_or(0) > 1)
        .count();
    assert!(merged > 0, "a merged manifest lists files as existing");

    // a table that turns merging off keeps every manifest
    let ident = table.identifier().clone();
    crate::support::set_properties(
        &lake,
        &ident,
        &[(lakehouse::transaction::MANIFEST_MERGE_ENABLED, "false")],
    )
    .await;
    table = lake.catalog().load_table(&ident).await.unwrap();
    let before = crate::support::manifests(&table).await.len();
    for i in 100..120i32 {
        let file = data_file(&table, &format!("f{i}"), &[(i, "later")]).await;
        let update = SnapshotUpdate::new(Operation::Append, vec![file]);
        table = commit_on(&lake, &table, update).await;
    }
    assert_eq!(crate::support::manifests(&table).await.len(), before + 20);
    assert_eq!(rows(&table).await.len(), want.len() + 20);
    std::fs::remove_dir_all(&warehouse).ok();
}
