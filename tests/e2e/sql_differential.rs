//! Query results are right (issue 14): the analyst query corpus
//! (tests/fixtures/queries/corpus.sql, 500-odd queries: every column type
//! against literals of the others, casts, NULL tests, IN lists, BETWEEN,
//! LIKE, date and time arithmetic, joins with the zones table, windows,
//! aggregates, time travel) runs through floe's DataFusion session, the one
//! `floe sql` and the jobs use, and through DuckDB 1.5.5 on the same lake:
//! the quickstart's tables, the jobs' tables and the type test's tables.
//! `scripts/differential-sql.py` compares each pair of results (exact
//! values; floating point to a relative 1e-9).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use analytics::LakeSession;
use iceberg::TableIdent;

use crate::jobs::ok;
use crate::stack::{fresh_dir, repo, text};

/// The corpus's queries, with their placeholders unfilled.
fn corpus() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/queries/corpus.sql")).unwrap();
    let mut out = Vec::new();
    let mut name = String::new();
    let mut sql = String::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("-- q: ") {
            name = n.to_string();
        } else if line.starts_with("--") || line.trim().is_empty() {
            continue;
        } else {
            sql.push_str(line);
            sql.push('\n');
            if line.trim_end().ends_with(';') {
                let q = sql.trim().trim_end_matches(';').to_string();
                out.push((name.clone(), q));
                sql.clear();
            }
        }
    }
    out
}

/// The values of the corpus's `{metadata:ns.table}` and
/// `{first_snapshot:ns.table}` placeholders on this lake.
async fn substitutions(session: &LakeSession) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/queries/corpus.sql")).unwrap();
    let mut out = BTreeMap::new();
    for (start, _) in text.match_indices('{') {
        let Some(end) = text[start..].find('}') else {
            continue;
        };
        let key = &text[start + 1..start + end];
        let Some((kind, table)) = key.split_once(':') else {
            continue;
        };
        let ident = TableIdent::from_strs(table.split('.')).unwrap();
        let t = session.lake.catalog().load_table(&ident).await.unwrap();
        let value = match kind {
            "metadata" => t.metadata_location().unwrap().to_string(),
            "first_snapshot" => t
                .metadata()
                .snapshots()
                .min_by_key(|s| s.sequence_number())
                .unwrap()
                .snapshot_id()
                .to_string(),
            _ => continue,
        };
        out.insert(key.to_string(), value);
    }
    out
}

fn fill(sql: &str, values: &BTreeMap<String, String>) -> String {
    let mut sql = sql.to_string();
    for (k, v) in values {
        sql = sql.replace(&format!("{{{k}}}"), v);
    }
    sql
}

/// Far more than any corpus query takes (the whole corpus runs in under a
/// minute).
const QUERY_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Writes each query's result (Arrow IPC) or error into `dir`.
async fn run_with_floe(session: &LakeSession, values: &BTreeMap<String, String>, dir: &Path) {
    use datafusion::arrow::ipc::writer::FileWriter;
    std::fs::create_dir_all(dir).unwrap();
    for (i, (name, sql)) in corpus().iter().enumerate() {
        let base = dir.join(format!("{:03}", i + 1));
        // a query that never answers fails the test naming it, instead of
        // holding the whole e2e binary (CI-M: query 395 idle, never seen
        // again in the same runs by hand)
        let answer = async {
            let frame = session.ctx.sql(&fill(sql, values)).await?;
            let schema = Arc::new(frame.schema().as_arrow().clone());
            Ok::<_, datafusion::error::DataFusionError>((schema, frame.collect().await?))
        };
        let answer = tokio::time::timeout(QUERY_LIMIT, answer)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "query {} ({name}) did not answer within {QUERY_LIMIT:?}: {sql}",
                    i + 1
                )
            });
        match answer {
            Ok((schema, batches)) => {
                let file = std::fs::File::create(base.with_extension("arrow")).unwrap();
                let mut writer = FileWriter::try_new(file, &schema).unwrap();
                for b in &batches {
                    writer.write(b).unwrap();
                }
                writer.finish().unwrap();
            }
            Err(e) => std::fs::write(base.with_extension("error"), e.to_string()).unwrap(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyst_queries_answer_as_duckdb_does() {
    let dir = fresh_dir("sql-differential");
    // the quickstart's lake (its tables and the jobs'), plus the type test's
    let quickstart = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["quickstart", "--dir"])
        .arg(&dir)
        .current_dir(repo())
        .env_remove("FLOE_WEATHER_URL")
        .output()
        .expect("floe runs");
    ok(quickstart);
    let config = dir.join("floe.toml");
    ok(Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["replay", "--input"])
        .arg(repo().join("tests/fixtures/types"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("floe runs"));

    let doc: toml::Table = toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let lake: lakehouse::LakeConfig = doc["lake"].clone().try_into().unwrap();
    let session = LakeSession::open(&lake).await.unwrap();
    let values = substitutions(&session).await;
    let results = dir.join("results");
    run_with_floe(&session, &values, &results).await;
    let values_file = dir.join("substitutions.json");
    std::fs::write(&values_file, serde_json::to_string(&values).unwrap()).unwrap();

    let out = crate::types::lake_script("differential-sql.py", &dir.join("warehouse"))
        .arg("--corpus")
        .arg(repo().join("tests/fixtures/queries/corpus.sql"))
        .arg("--results")
        .arg(&results)
        .arg("--substitutions")
        .arg(&values_file)
        .output()
        .expect("the comparison runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", text(&out)));
    let queries = report["queries"].as_u64().unwrap();
    assert!(queries >= 200, "{queries} queries");
    assert_eq!(
        report["equal"].as_u64().unwrap(),
        queries,
        "queries answered differently: {:#}",
        report["differences"]
    );
    std::fs::remove_dir_all(&dir).ok();
}
