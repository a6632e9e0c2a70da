//! Every Postgres type, edge value, schema change and key shape, end to
//! end (issue 14): the recording `scripts/record-types.sh` made with real
//! Debezium 3.6.3 (tests/fixtures/types) goes through `floe replay` and
//! through `floe ingest` (from tansu, schemas from the registry stand-in);
//! pyiceberg 0.12 and DuckDB 1.5.5 then read every table, and
//! `scripts/compare-types.py` compares each cell, in PostgreSQL's own text
//! output, with what psql printed for the final state at recording time.
//! A cell may differ only by a rule docs/types.md names.
//!
//! What the lake cannot take (tests/fixtures/types/refused: a column turned
//! from text into integer, timestamps past Iceberg's range) stops floe
//! within seconds with the reason, or with `on_error = "dead_letter"` is
//! recorded as dead letters while everything around it is applied.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use iceberg::TableIdent;
use lakehouse::{Lake, LakeConfig};

use crate::jobs::ok;
use crate::stack::{fresh_dir, repo, text, Stack};

const GOOD_TABLES: &str = "wide,composite_key,text_key,uuid_key,keyless,readings,evolving";

/// The lake's tables for the type test: partitioned on the edge values
/// themselves (infinite dates and timestamps), by a hash, and by month.
const TABLES: &str = r#"
[lake.tables]
"public.wide" = { partition = ["hour(c_timestamptz)", "day(c_date)"] }
"public.evolving" = { partition = ["bucket[4](id)"] }
"public.readings" = { partition = ["month(taken_at)"] }
"#;

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/types")
}

/// Runs a script after sourcing the scripts' helpers; its stdout.
fn bash(script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}/scripts/lib/common.sh' && {script}",
            repo().display()
        ))
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "`{script}`: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// A local lake in `dir` with the type test's table settings and `extra`
/// configuration; returns the config file.
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    crate::foreign::config(dir, TABLES, extra)
}

/// The python with pyiceberg and DuckDB (`scripts/lib/common.sh`).
pub(crate) fn lake_readers_python() -> String {
    bash("lake_readers_python").trim().to_string()
}

/// `scripts/{script}` run by the lake readers' python on the local lake
/// whose warehouse is `warehouse` (its SQLite catalog and files); the
/// caller adds the script's own arguments.
pub(crate) fn lake_script(script: &str, warehouse: &Path) -> Command {
    let mut command = Command::new(lake_readers_python());
    command
        .arg(repo().join("scripts").join(script))
        .arg("--catalog-uri")
        .arg(format!(
            "sqlite:///{}",
            warehouse.join("catalog.db").display()
        ))
        .arg("--warehouse")
        .arg(format!("file://{}", warehouse.display()));
    command
}

/// `scripts/compare-types.py` on the lake in `dir`: the JSON report.
fn compare(dir: &Path, namespace: &str, tables: &str) -> serde_json::Value {
    let out = lake_script("compare-types.py", &dir.join("lake"))
        .arg("--expected")
        .arg(fixtures().join("final_state.json"))
        .args(["--namespace", namespace, "--tables", tables])
        .output()
        .expect("the comparison runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", text(&out)));
    report
}

/// Asserts the report found no difference outside docs/types.md's rules,
/// that both readers read every table, and returns the divergences seen
/// (rule name to cells).
fn assert_equal_to_postgres(report: &serde_json::Value) -> Vec<(String, u64)> {
    let docs = std::fs::read_to_string(repo().join("docs/types.md")).unwrap();
    let mut seen: Vec<(String, u64)> = Vec::new();
    for t in report["tables"].as_array().unwrap() {
        let name = format!("{} ({})", t["table"], t["reader"]);
        assert_eq!(
            t["mismatches"].as_array().unwrap().len(),
            0,
            "{name} differs from Postgres: {:#}",
            t["mismatches"]
        );
        assert_eq!(t["rows_read"], t["rows_expected"], "{name}");
        assert!(t["cells"].as_u64().unwrap() > 0, "{name} compared nothing");
        for (rule, cells) in t["divergences"].as_object().unwrap() {
            // every deliberate divergence is documented, by its name
            assert!(
                docs.contains(&format!("`{rule}`")),
                "divergence {rule} is not in docs/types.md"
            );
            match seen.iter_mut().find(|(r, _)| r == rule) {
                Some((_, n)) => *n += cells.as_u64().unwrap(),
                None => seen.push((rule.clone(), cells.as_u64().unwrap())),
            }
        }
    }
    assert_eq!(report["mismatches"], 0);
    seen
}

/// The divergences the recording must show (each rule is exercised, so a
/// rule that stops matching, or a fix that makes one unnecessary, shows).
fn assert_divergences(seen: &[(String, u64)]) {
    for rule in [
        "time-24",
        "timetz-utc",
        "interval-micros",
        "money-number",
        "numeric-special-null",
        "bc-date-era",
        "multidimensional-array",
        "hstore-json",
        "varbit-bytes",
        "bit1-boolean",
    ] {
        assert!(
            seen.iter().any(|(r, n)| r == rule && *n > 0),
            "no cell needed rule {rule}: {seen:?}"
        );
    }
}

#[test]
fn every_type_lands_as_postgres_prints_it_through_replay() {
    let dir = fresh_dir("types-replay");
    let config = write_config(&dir, "");
    let replay = || {
        Command::new(env!("CARGO_BIN_EXE_floe"))
            .args(["replay", "--input"])
            .arg(fixtures())
            .arg("--config")
            .arg(&config)
            .output()
            .expect("floe runs")
    };
    let first = ok(replay());
    assert!(first.contains("replayed 102 messages"), "{first}");
    let seen = assert_equal_to_postgres(&compare(&dir, "types_cdc", GOOD_TABLES));
    assert_divergences(&seen);
    // again: every change is already in the lake
    let again = ok(replay());
    assert!(again.contains(": 0 changes applied"), "{again}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn what_the_lake_cannot_take_stops_replay_at_it() {
    let dir = fresh_dir("types-refused");
    let config = write_config(&dir, "");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["replay", "--input"])
        .arg(fixtures().join("refused"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("floe runs");
    let took = started.elapsed();
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    // the first refusal in the recording: Debezium's overflow of
    // 294276-12-31, named with its position and the reason
    assert!(
        said.contains("bad.public.out_of_range partition 0 offset 1")
            && said.contains("cannot be stored")
            && said.contains("294247"),
        "{said}"
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The stack's broker and registry with the recording's schemas; the
/// recordings produced to their topics in order (offsets as recorded).
async fn kafka_with_recordings(dir: &Path) -> Stack {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(fixtures().join("schemas.json"), dir.join("registry.json")).unwrap();
    let stack = Stack::only(dir, &["broker", "kafka", "registry", "s3"]);
    let bootstrap = stack.env["KAFKA_BOOTSTRAP"].clone();
    for recording in [fixtures(), fixtures().join("refused")] {
        produce(&bootstrap, &recording).await;
    }
    stack
}

async fn produce(bootstrap: &str, recording: &Path) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "false")
        .create()
        .unwrap();
    let rec = ingest::Recording::load(recording).unwrap();
    for m in &rec.messages {
        let mut record = FutureRecord::<[u8], [u8]>::to(&m.topic).partition(m.partition);
        if let Some(k) = m.key.as_deref() {
            record = record.key(k);
        }
        if let Some(v) = m.value.as_deref() {
            record = record.payload(v);
        }
        producer
            .send(record, Duration::from_secs(20))
            .await
            .map_err(|(e, _)| e)
            .unwrap_or_else(|e| panic!("producing {} offset {}: {e}", m.topic, m.offset));
    }
}

/// The `[kafka]`, `[registry]` and `[ingest]` sections for `topics`.
fn ingest_settings(stack: &Stack, group: &str, topics: &str, on_error: &str) -> String {
    format!(
        r#"
[kafka]
bootstrap_servers = "{}"
group_id = "{group}"
topic_regex = '{topics}'
properties = {{ "session.timeout.ms" = "6000" }}

[registry]
url = "{}"

[ingest]
commit_interval_ms = 1000
on_error = "{on_error}"
"#,
        stack.env["KAFKA_BOOTSTRAP"], stack.env["SCHEMA_REGISTRY_URL"]
    )
}

fn floe_ingest(config: &Path) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["ingest", "--stop-when-idle", "4", "--config"])
        .arg(config)
        .env("FLOE_LOG", "info")
        .output()
        .expect("floe runs");
    (out, started.elapsed())
}

/// Rows of `sql` over one lake table through DataFusion, `|`-joined.
async fn rows(config: &LakeConfig, table: &str, sql: &str) -> Vec<String> {
    let lake = Lake::open(config).await.unwrap();
    let ident = TableIdent::from_strs(table.split('.')).unwrap();
    let table = lake.catalog().load_table(&ident).await.unwrap();
    let ctx = datafusion::prelude::SessionContext::new();
    let provider = iceberg_datafusion::IcebergStaticTableProvider::try_new_from_table(table)
        .await
        .unwrap();
    ctx.register_table("t", std::sync::Arc::new(provider))
        .unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| arrow::util::display::array_value_to_string(c, i).unwrap())
                .collect();
            out.push(cells.join("|"));
        }
    }
    out
}

fn lake_config(dir: &Path) -> LakeConfig {
    toml::from_str(&format!("warehouse = \"{}\"", dir.join("lake").display())).unwrap()
}

#[tokio::test]
async fn every_type_lands_through_ingest_and_refusals_stop_or_are_dead_lettered() {
    let dir = fresh_dir("types-ingest");
    let stack = kafka_with_recordings(&dir.join("stack")).await;

    // the types: the same comparison as through replay
    let good = dir.join("good");
    std::fs::create_dir_all(&good).unwrap();
    let config = write_config(
        &good,
        &ingest_settings(&stack, "types", r"types\..*", "fail"),
    );
    let (out, _) = floe_ingest(&config);
    assert!(out.status.success(), "{}", text(&out));
    let seen = assert_equal_to_postgres(&compare(&good, "types_cdc", GOOD_TABLES));
    assert_divergences(&seen);

    // fail mode: each refusal stops floe within seconds, saying why, and
    // what came before it is in the lake
    for (topic, reason) in [
        (
            r"bad\.public\.incompatible",
            "column \"v\" changed type from string to int",
        ),
        (r"bad\.public\.out_of_range", "cannot be stored"),
    ] {
        let run = dir.join(topic.replace('\\', "").replace('.', "-"));
        std::fs::create_dir_all(&run).unwrap();
        let config = write_config(
            &run,
            &ingest_settings(&stack, &run.display().to_string(), topic, "fail"),
        );
        let (out, took) = floe_ingest(&config);
        assert!(!out.status.success(), "{topic}: {}", text(&out));
        assert!(text(&out).contains(reason), "{topic}: {}", text(&out));
        assert!(took < Duration::from_secs(30), "{topic} took {took:?}");
    }

    // dead-letter mode: the refused messages are recorded, the rest applied
    let letters = dir.join("dead-letters");
    std::fs::create_dir_all(&letters).unwrap();
    let config = write_config(
        &letters,
        &ingest_settings(&stack, "dead-letters", r"bad\..*", "dead_letter"),
    );
    let (out, took) = floe_ingest(&config);
    assert!(out.status.success(), "{}", text(&out));
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let lake = lake_config(&letters);
    let mut dead = rows(
        &lake,
        "floe.dead_letters",
        "SELECT topic, CAST(\"offset\" AS VARCHAR) FROM t ORDER BY 1, 2",
    )
    .await;
    dead.sort();
    assert_eq!(
        dead,
        [
            // after the ALTER ... TYPE integer: the insert and the update
            "bad.public.incompatible|3",
            "bad.public.incompatible|4",
            // the three timestamps past Iceberg's range
            "bad.public.out_of_range|1",
            "bad.public.out_of_range|2",
            "bad.public.out_of_range|3",
        ]
    );
    // around them: the text value from before the change, the later insert
    assert_eq!(
        rows(
            &lake,
            "bad_cdc.incompatible",
            "SELECT id, v FROM t ORDER BY id"
        )
        .await,
        ["1|11", "2|20"]
    );
    assert_eq!(
        rows(
            &lake,
            "bad_cdc.out_of_range",
            "SELECT id, CAST(ts AS VARCHAR) FROM t ORDER BY id"
        )
        .await,
        ["1|2024-01-01T00:00:00", "2|2024-01-02T00:00:00"]
    );

    // storage refusing floe (wrong keys, no such bucket): permanent in
    // either mode, so floe stops within seconds instead of retrying
    for (case, bucket, secret, reason) in [
        ("keys", "lake", "0".repeat(64), "PermissionDenied"),
        (
            "bucket",
            "no-such-bucket",
            stack.env["AWS_SECRET_ACCESS_KEY"].clone(),
            "no-such-bucket",
        ),
    ] {
        for on_error in ["fail", "dead_letter"] {
            let run = dir.join(format!("s3-{case}-{on_error}"));
            std::fs::create_dir_all(&run).unwrap();
            let config = run.join("floe.toml");
            std::fs::write(
                &config,
                format!(
                    "{}\n[lake]\nwarehouse = \"s3://{bucket}/wh\"\n[lake.catalog]\ntype = \"sqlite\"\npath = \"{}\"\n\
                     [lake.s3]\nendpoint = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{secret}\"\n",
                    ingest_settings(&stack, &format!("s3-{case}-{on_error}"), r"types\.public\.text_key", on_error),
                    run.join("catalog.db").display(),
                    stack.env["FLOE_S3_ENDPOINT"],
                    stack.env["AWS_ACCESS_KEY_ID"],
                ),
            )
            .unwrap();
            let (out, took) = floe_ingest(&config);
            assert!(!out.status.success(), "{case}, {on_error}: {}", text(&out));
            assert!(
                text(&out).contains(reason),
                "{case}, {on_error}: {}",
                text(&out)
            );
            assert!(
                took < Duration::from_secs(30),
                "{case}, {on_error} took {took:?}"
            );
        }
    }
    drop(stack);
    std::fs::remove_dir_all(&dir).ok();
}
