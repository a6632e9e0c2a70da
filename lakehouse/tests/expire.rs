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

/// An ingest writer expiring its own table's snapshots as it commits
/// (`[lake.tables.expire]`; here every 4 commits, keeping the newest 5 of
/// any age): the metadata never holds more than 5 + 3 snapshots, the rows
/// are every change's, nothing is deleted from storage (the expired
/// snapshots' files are left for `floe maintain orphans`), and a writer
/// opened again resumes from the offsets the table holds.
#[tokio::test]
async fn an_ingest_writer_expires_its_own_snapshots_in_metadata_only() {
    let expiry = lakehouse::SnapshotExpiry {
        enabled: true,
        keep_minutes: 0,
        keep_last: 5,
        every_commits: 4,
        max_snapshots: 200,
    };
    writer_expiry("writer-expiry", expiry, 5).await;
}

/// The same with every snapshot young enough to keep by age (60 minutes):
/// `max_snapshots` alone bounds the history, the newest 5 of it.
#[tokio::test]
async fn an_ingest_writers_history_stays_within_max_snapshots_however_young() {
    let expiry = lakehouse::SnapshotExpiry {
        enabled: true,
        keep_minutes: 60,
        keep_last: 2,
        every_commits: 4,
        max_snapshots: 5,
    };
    writer_expiry("writer-expiry-cap", expiry, 5).await;
}

/// 30 changes committed one by one by a writer expiring by `expiry`: at
/// most `kept` + `every_commits` - 1 snapshots are ever held.
async fn writer_expiry(name: &str, expiry: lakehouse::SnapshotExpiry, kept: usize) {
    use ingest::{ChangeDecoder, Op};
    use lakehouse::apply::TableWriter;

    let most = kept + expiry.every_commits as usize - 1;
    let lake = crate::source_order::TestLake::new(name).await;
    let mut topic = crate::resnapshot::Topic::spread_over(1);
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..30_i64 {
        let id = i % 7;
        topic.upsert(id, 100 + i, if i < 7 { Op::Create } else { Op::Update });
        expected.insert(id, i128::from(100 + i));
    }
    let (rec, _) = crate::source_order::recording();
    let mut writer: Option<TableWriter> = None;
    let mut expired = 0;
    for message in &topic.messages {
        let mut decoder = ChangeDecoder::new(rec.schemas.clone());
        decoder.push(&message.as_raw()).await.unwrap();
        for batch in decoder.flush() {
            if writer.is_none() {
                let opened = lake.writer(&batch).await;
                writer = Some(opened.with_snapshot_expiry(expiry.clone()));
            }
            let writer = writer.as_mut().unwrap();
            expired += writer.apply(&batch).await.unwrap().expired;
            let held = writer.table().metadata().snapshots().count();
            assert!(
                held <= most,
                "{held} snapshots held, at most {most} expected"
            );
        }
    }
    let writer = writer.unwrap();
    let ident = writer.table().identifier().clone();
    let held = writer.table().metadata().snapshots().count();
    assert!(
        expired + held >= 30,
        "every commit's snapshot expired or held"
    );
    assert!(expired >= 20, "{expired} expired");
    assert_eq!(crate::resnapshot::rows_of(&lake, &ident).await, expected);

    // metadata only: every commit's data file is still in storage
    let location = writer.table().metadata().location().to_string();
    let data_dir = std::path::Path::new(location.trim_start_matches("file://")).join("data");
    let files = walk(&data_dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    assert!(
        files >= 30,
        "{files} data files left in {}",
        data_dir.display()
    );

    // a writer opened again skips every change the table holds
    let mut again: Option<TableWriter> = None;
    let mut decoder = ChangeDecoder::new(rec.schemas.clone());
    for message in &topic.messages {
        decoder.push(&message.as_raw()).await.unwrap();
    }
    for batch in decoder.flush() {
        if again.is_none() {
            again = Some(lake.writer(&batch).await);
        }
        let stats = again.as_mut().unwrap().apply(&batch).await.unwrap();
        assert_eq!(stats.already_applied, batch.num_rows());
    }
}

/// Every file under `dir`, at any depth.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
