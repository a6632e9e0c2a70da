//! The SQL catalog on PostgreSQL: a private server started for the test
//! (`scripts/lib/common.sh` `pg_start`), the recorded trips history applied
//! through it, and the table read back through a fresh catalog.

use arrow_array::Int64Array;
use lakehouse::apply::TableWriter;
use lakehouse::transaction::SqlCatalogPointer;
use lakehouse::{ensure_table, open_catalog, CatalogConfig, LakeConfig, TableTarget};

use crate::support::{recorded_batches, scan_all, Postgres};

#[tokio::test]
async fn a_postgres_catalog_holds_the_applied_table() {
    let root = std::env::temp_dir().join(format!("floe-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let pg = Postgres::start(&root.join("pg"));

    let mut lake = LakeConfig {
        warehouse: root.join("warehouse").into(),
        catalog: CatalogConfig::Sql { uri: pg.uri() },
        ..LakeConfig::default()
    };
    crate::support::trips_by_day(&mut lake);
    let batches = recorded_batches(Some("taxi.public.trips")).await;
    let catalog = open_catalog(&lake).await.unwrap();
    let target = TableTarget::for_batch(&batches[0], &lake.tables).unwrap();
    let table = ensure_table(catalog.as_ref(), &target, &batches[0])
        .await
        .unwrap();
    let pointer = SqlCatalogPointer::connect(&pg.uri()).await.unwrap();
    let mut writer = TableWriter::open(catalog.clone(), table, pointer)
        .await
        .unwrap();
    for b in &batches {
        writer.apply(b).await.unwrap();
    }
    drop(writer);

    // the catalog rows live in Postgres: a fresh catalog finds the final state
    let catalog = open_catalog(&lake).await.unwrap();
    let table = catalog.load_table(&target.ident).await.unwrap();
    let mut ids: Vec<i64> = scan_all(&table)
        .await
        .iter()
        .flat_map(|b| {
            b.column_by_name("trip_id")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [2, 3, 4],
        "trip 1 deleted; 2 moved; 3 updated; 4 inserted after ADD COLUMN"
    );
    assert!(table
        .metadata()
        .current_schema()
        .field_by_name("congestion_surcharge")
        .is_some());
    assert_eq!(
        table.metadata().snapshots().count(),
        2,
        "one snapshot per batch"
    );
    drop(pg);
    std::fs::remove_dir_all(&root).ok();
}

/// Several processes (ingest instances) opening a new Postgres catalog at
/// the same moment: each creates the catalog's tables if missing, and
/// Postgres's CREATE TABLE IF NOT EXISTS can fail for all but one; every
/// one of them opens the catalog.
#[tokio::test]
async fn instances_opening_a_new_postgres_catalog_at_once_all_open_it() {
    let root = std::env::temp_dir().join(format!("floe-pg-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let pg = Postgres::start(&root.join("pg"));
    let lake = LakeConfig {
        warehouse: root.join("warehouse").into(),
        catalog: CatalogConfig::Sql { uri: pg.uri() },
        ..LakeConfig::default()
    };
    let opened = futures::future::join_all((0..16).map(|_| open_catalog(&lake))).await;
    for catalog in opened {
        catalog.unwrap_or_else(|e| panic!("{e}"));
    }
    drop(pg);
    std::fs::remove_dir_all(&root).ok();
}
