//! Snapshot expiry on a table with a history: eight appends, then an
//! overwrite. Keeping only the current snapshot must delete exactly the
//! files no kept snapshot reaches, checked by listing the store: the data
//! folder then holds exactly the current snapshot's data files, and the
//! rows read are the same.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use iceberg::TableIdent;
use lakehouse::maintain::{expire, ExpirePolicy};
use lakehouse::sink::{write_result, WriteMode};
use lakehouse::Lake;

pub(crate) async fn write(lake: &Lake, mode: WriteMode, values: &[i64]) {
    let schema = Schema::new(vec![Field::new("v", DataType::Int64, false)]);
    let batch = RecordBatch::try_new(
        Arc::new(schema.clone()),
        vec![Arc::new(Int64Array::from(values.to_vec()))],
    )
    .unwrap();
    let ident = TableIdent::from_strs(["results", "history"]).unwrap();
    write_result(
        lake,
        &ident,
        &[],
        mode,
        &schema,
        &[batch],
        Default::default(),
    )
    .await
    .unwrap();
}

fn listing(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for sub in ["data", "metadata"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            out.insert(format!(
                "{sub}/{}",
                entry.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    out
}

#[tokio::test]
async fn expiry_deletes_exactly_the_files_only_expired_snapshots_reached() {
    let (warehouse, lake) = crate::support::temp_lake("expire").await;
    for i in 0..8 {
        write(&lake, WriteMode::Append, &[i, i + 10]).await;
    }
    write(&lake, WriteMode::Overwrite, &[100, 200]).await;
    let ident = TableIdent::from_strs(["results", "history"]).unwrap();
    let table_dir = warehouse.join("results/history");
    let before = listing(&table_dir);
    let policy = ExpirePolicy {
        older_than: Duration::ZERO,
        retain_last: 1,
    };

    let dry = expire(&lake, &ident, &policy, true).await.unwrap();
    assert_eq!(dry.expired.len(), 8);
    assert_eq!(listing(&table_dir), before, "a dry run deletes nothing");

    let report = expire(&lake, &ident, &policy, false).await.unwrap();
    assert_eq!(report.expired, dry.expired);
    assert_eq!(report.kept, 1);
    let after = listing(&table_dir);
    let deleted: BTreeSet<String> = before.difference(&after).cloned().collect();
    let reported: BTreeSet<String> = report
        .files
        .iter()
        .map(|f| {
            let p = f.trim_start_matches("file://");
            let rel = Path::new(p).strip_prefix(&table_dir).unwrap();
            rel.display().to_string()
        })
        .collect();
    assert_eq!(
        deleted, reported,
        "exactly the reported files left the store"
    );
    // eight appended data files, eight manifest lists, and the manifests
    // only the expired snapshots listed
    assert_eq!(
        deleted.iter().filter(|f| f.ends_with(".parquet")).count(),
        8
    );
    assert_eq!(deleted.iter().filter(|f| f.contains("/snap-")).count(), 8);
    assert!(after.iter().any(|f| f.ends_with(".metadata.json")));

    // the data folder holds exactly what the current snapshot reads
    let table = lake.catalog().load_table(&ident).await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 1);
    let tasks = crate::support::scan_tasks(&table).await;
    let live: BTreeSet<String> = tasks
        .iter()
        .map(|t| {
            let name = Path::new(&t.data_file_path).file_name().unwrap();
            format!("data/{}", name.to_string_lossy())
        })
        .collect();
    let on_disk: BTreeSet<String> = after
        .iter()
        .filter(|f| f.starts_with("data/"))
        .cloned()
        .collect();
    assert_eq!(on_disk, live);
    let mut values = Vec::new();
    for b in crate::support::scan_all(&table).await {
        let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        values.extend((0..c.len()).map(|i| c.value(i)));
    }
    values.sort();
    assert_eq!(values, [100, 200]);

    // nothing left to expire
    let again = expire(&lake, &ident, &policy, false).await.unwrap();
    assert!(again.expired.is_empty() && again.files.is_empty());
    let _ = std::fs::remove_dir_all(&warehouse);
}

/// Tables floe creates delete the `metadata.json` files their commits
/// retire from the metadata log (`write.metadata.delete-after-commit.enabled`,
/// `write.metadata.previous-versions-max`), so they do not pile up between
/// orphan cleanups; every retained one is still in the log.
#[tokio::test]
async fn commits_delete_the_metadata_files_they_retire() {
    use lakehouse::transaction::{METADATA_DELETE_AFTER_COMMIT, METADATA_PREVIOUS_VERSIONS_MAX};

    let (warehouse, lake) = crate::support::temp_lake("metadata-retired").await;
    write(&lake, WriteMode::Append, &[0]).await;
    let ident = TableIdent::from_strs(["results", "history"]).unwrap();
    let table = lake.catalog().load_table(&ident).await.unwrap();
    assert_eq!(
        table
            .metadata()
            .properties()
            .get(METADATA_DELETE_AFTER_COMMIT),
        Some(&"true".to_string())
    );
    crate::support::set_properties(&lake, &ident, &[(METADATA_PREVIOUS_VERSIONS_MAX, "2")]).await;
    for i in 1..8 {
        write(&lake, WriteMode::Append, &[i]).await;
    }
    let table = lake.catalog().load_table(&ident).await.unwrap();
    let dir = warehouse.join("results/history/metadata");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".metadata.json"))
        .collect();
    let mut kept: BTreeSet<String> = table
        .metadata()
        .metadata_log()
        .iter()
        .map(|l| l.metadata_file.rsplit('/').next().unwrap().to_string())
        .collect();
    kept.insert(
        table
            .metadata_location()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string(),
    );
    assert_eq!(kept.len(), 3, "the current file and a log of two");
    assert_eq!(on_disk, kept);
    let _ = std::fs::remove_dir_all(&warehouse);
}
