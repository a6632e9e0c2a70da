//! The REST catalog: floe's commits posted to the catalog's commit
//! endpoint with requirements, a lost race answered with HTTP 409 and
//! retried, and a clear error for a catalog that refuses floe.
//!
//! The server is `scripts/rest-catalog-standin.py`, a TEST STAND-IN: no
//! REST catalog server can be installed from the registries this project
//! reaches. It delegates to pyiceberg's SqlCatalog, so requirement checks
//! and metadata writing are pyiceberg's, not floe's.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use lakehouse::{CatalogConfig, Lake, LakeConfig, LakehouseError};

use crate::interop::{bash, canonical, check_expected, history};
use crate::support::{repo, scan_all};

const TOKEN: &str = "s3cret-token";

/// The stand-in REST catalog on a free loopback port; killed on drop.
struct RestStandin {
    child: Child,
    url: String,
}

impl RestStandin {
    fn start(dir: &Path) -> Self {
        let python = bash("lake_readers_python").trim().to_string();
        let mut child = Command::new(python)
            .arg(repo().join("scripts/rest-catalog-standin.py"))
            .args(["--warehouse", &format!("file://{}", dir.display())])
            .args(["--db", &dir.join("rest.db").display().to_string()])
            .args(["--token", TOKEN])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the REST stand-in starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("http://"), "stand-in said {line:?}");
        Self {
            child,
            url: line.trim().to_string(),
        }
    }
}

impl Drop for RestStandin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, uri: &str, token: &str) -> LakeConfig {
    let mut config = LakeConfig {
        warehouse: dir.join("warehouse").into(),
        catalog: CatalogConfig::Rest {
            uri: uri.to_string(),
            warehouse: None,
            token: Some(token.to_string()),
        },
        ..LakeConfig::default()
    };
    crate::support::trips_by_day(&mut config);
    config
}

#[tokio::test]
async fn a_rest_catalog_takes_floes_commits_and_rejects_a_stale_one() {
    let dir = std::env::temp_dir().join(format!("floe-rest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("warehouse")).unwrap();
    let server = RestStandin::start(&dir.join("warehouse"));
    let batches = history().await;

    let lake = Lake::open(&config(&dir, &server.url, TOKEN)).await.unwrap();
    let mut first = lake.writer(&batches[0]).await.unwrap();
    // a second writer on the same table, opened before the first commits
    let mut second = lake.writer(&batches[0]).await.unwrap();
    first.apply(&batches[0]).await.unwrap();
    first.apply(&batches[1]).await.unwrap();
    // its commit asserts the snapshot it read: the catalog answers 409,
    // and the writer reloads, skips what the table holds, and retries
    let stats = second.apply(&batches[1]).await.unwrap();
    assert_eq!(stats.already_applied, batches[1].num_rows());
    let (last, middle) = batches[2..].split_last().unwrap();
    for b in middle {
        second.apply(b).await.unwrap();
    }
    // and a writer opened now starts from the catalog's current table
    let mut first = lake.writer(&batches[0]).await.unwrap();
    first.apply(last).await.unwrap();

    // the table as the catalog has it now, read through a fresh load
    let table = lake
        .catalog()
        .load_table(first.table().identifier())
        .await
        .unwrap();
    assert_eq!(table.metadata_location(), first.table().metadata_location());
    let rows = canonical(&scan_all(&table).await);
    check_expected(&rows);
    // one snapshot per batch that changed the table (the replayed one did not)
    assert_eq!(table.metadata().snapshots().count(), batches.len());

    // a catalog that refuses floe's token is a clear error at open
    let err = Lake::open(&config(&dir, &server.url, "wrong"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LakehouseError::RestCatalog { .. } | LakehouseError::Catalog { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&server.url), "{err}");

    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}
