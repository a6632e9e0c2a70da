//! Orphan cleanup deletes exactly the files no metadata names and that are
//! older than the threshold, checked by listing the store: on a table with
//! a history (appends, an overwrite, an expiry) whose every file is made
//! old, planted leftovers of a crashed writer go, a young one stays, and
//! every referenced file stays however old it is.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use arrow_array::{Array, Int64Array};
use iceberg::TableIdent;
use lakehouse::maintain::{expire, orphans, ExpirePolicy, OrphanPolicy};
use lakehouse::sink::WriteMode;

use crate::expire::write;

const DAY: Duration = Duration::from_secs(86_400);

/// Every file under `dir`, relative to it.
fn walk(dir: &Path) -> BTreeSet<String> {
    fn visit(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                visit(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    visit(dir, dir, &mut out);
    out
}

fn age(path: &Path, by: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - by).unwrap();
}

fn plant(dir: &Path, name: &str, old: bool) -> String {
    let path: PathBuf = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"left by a writer that never committed").unwrap();
    if old {
        age(&path, 4 * DAY);
    }
    name.to_string()
}

async fn values(lake: &lakehouse::Lake, ident: &TableIdent) -> Vec<i64> {
    let table = lake.catalog().load_table(ident).await.unwrap();
    let mut out = Vec::new();
    for b in crate::support::scan_all(&table).await {
        let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        out.extend((0..c.len()).map(|i| c.value(i)));
    }
    out.sort();
    out
}

#[tokio::test]
async fn orphan_cleanup_deletes_exactly_the_old_unreferenced_files() {
    let (warehouse, lake) = crate::support::temp_lake("orphans").await;
    for i in 0..4 {
        write(&lake, WriteMode::Append, &[i]).await;
    }
    write(&lake, WriteMode::Overwrite, &[7, 8]).await;
    write(&lake, WriteMode::Append, &[9]).await;
    let ident = TableIdent::from_strs(["results", "history"]).unwrap();
    // the expiry leaves older metadata files that only the log names
    expire(
        &lake,
        &ident,
        &ExpirePolicy {
            older_than: Duration::ZERO,
            retain_last: 2,
        },
        false,
    )
    .await
    .unwrap();
    let table_dir = warehouse.join("results/history");
    let referenced = walk(&table_dir);
    for f in &referenced {
        age(&table_dir.join(f), 10 * DAY);
    }
    let planted_old: BTreeSet<String> = [
        plant(&table_dir, "data/00000-9-crashed.parquet", true),
        plant(
            &table_dir,
            "data/day=2024-03-01/00000-9-crashed.parquet",
            true,
        ),
        plant(&table_dir, "metadata/00099-lost-race.metadata.json", true),
        plant(&table_dir, "metadata/snap-99-1-lost-race.avro", true),
    ]
    .into();
    let young = plant(&table_dir, "data/00000-10-being-committed.parquet", false);
    // beside the table's folders: not the table's to clean
    let outside = plant(&table_dir, "notes/readme.txt", true);
    let before = walk(&table_dir);
    let rows = values(&lake, &ident).await;
    assert_eq!(rows, [7, 8, 9]);
    let policy = OrphanPolicy {
        older_than: 3 * DAY,
    };

    let dry = orphans(&lake, &ident, &policy, true).await.unwrap();
    assert_eq!(walk(&table_dir), before, "a dry run deletes nothing");
    let names = |files: &[lakehouse::spec::store::ListedFile]| -> BTreeSet<String> {
        files.iter().map(|f| f.name.clone()).collect()
    };
    assert_eq!(names(&dry.orphans), planted_old);
    assert_eq!(names(&dry.young), [young.clone()].into());
    assert_eq!(dry.listed, before.len() - 1, "notes/ is not listed");

    let report = orphans(&lake, &ident, &policy, false).await.unwrap();
    assert_eq!(names(&report.orphans), planted_old);
    let after = walk(&table_dir);
    let deleted: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(
        deleted, planted_old,
        "exactly the old orphans left the store"
    );
    assert!(after.contains(&young) && after.contains(&outside));
    assert!(
        referenced.is_subset(&after),
        "no referenced file was touched"
    );

    // the table still reads, and takes commits
    assert_eq!(values(&lake, &ident).await, rows);
    write(&lake, WriteMode::Append, &[10]).await;
    assert_eq!(values(&lake, &ident).await, [7, 8, 9, 10]);
    let again = orphans(&lake, &ident, &policy, false).await.unwrap();
    assert!(again.orphans.is_empty());
    let _ = std::fs::remove_dir_all(&warehouse);
}
