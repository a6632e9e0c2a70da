//! The local stack (`scripts/stack.sh`) and `scripts/setup-connectors.sh`
//! against the real Kafka Connect worker: the connector is registered
//! (and registering again only updates it), a broken config fails with
//! the task's trace, and a Postgres change travels Debezium → Connect's
//! AvroConverter → the registry stand-in → tansu → floe's decoder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ingest::{ChangeDecoder, Op, RawMessage, RegistryConfig, SchemaRegistryClient};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::ClientConfig;

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An empty folder for one test, `$TMPDIR/floe-e2e-NAME-PID`.
pub(crate) fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("floe-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The whole stack in a private directory on free ports; down on drop.
pub(crate) struct Stack {
    dir: PathBuf,
    pub(crate) env: HashMap<String, String>,
}

impl Stack {
    /// Rows of a query on the source database, each row's columns joined
    /// by `|` (psql's unaligned output).
    pub(crate) fn query(&self, sql: &str) -> Vec<String> {
        let o = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.env["PGPORT"]])
            .args(["-U", "postgres", "-d", "taxi", "-v", "ON_ERROR_STOP=1"])
            .args(["-A", "-t", "-F", "|", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(o.status.success(), "{sql}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub(crate) fn up(dir: &Path) -> Self {
        Self::up_with(dir, &[])
    }

    /// [`Stack::up`] with `env` set for `scripts/stack.sh` (its `STACK_*`
    /// settings).
    pub(crate) fn up_with(dir: &Path, env: &[(&str, &str)]) -> Self {
        let o = Command::new("bash")
            .arg(repo().join("scripts/stack.sh"))
            .args(["up", &dir.display().to_string()])
            .envs(env.iter().copied())
            .output()
            .expect("bash runs");
        assert!(o.status.success(), "stack.sh up failed:\n{}", text(&o));
        let env = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self {
            dir: dir.to_path_buf(),
            env,
        }
    }

    /// Only the given services of the stack (`scripts/stack.sh start
    /// SERVICE` each), in a private directory; down on drop. Files placed in
    /// `dir` first are used (e.g. `registry.json`, the registry's state).
    pub(crate) fn only(dir: &Path, services: &[&str]) -> Self {
        for service in services {
            let o = Command::new("bash")
                .arg(repo().join("scripts/stack.sh"))
                .args(["start", service, &dir.display().to_string()])
                .output()
                .expect("bash runs");
            assert!(
                o.status.success(),
                "stack.sh start {service}:\n{}",
                text(&o)
            );
        }
        let o = Command::new("bash")
            .arg(repo().join("scripts/stack.sh"))
            .args(["env", &dir.display().to_string()])
            .output()
            .expect("bash runs");
        let env = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self {
            dir: dir.to_path_buf(),
            env,
        }
    }

    /// `scripts/stack.sh start|stop SERVICE` on this stack.
    pub(crate) fn service(&self, action: &str, name: &str) {
        let o = Command::new("bash")
            .arg(repo().join("scripts/stack.sh"))
            .args([action, name, &self.dir.display().to_string()])
            .output()
            .expect("bash runs");
        assert!(o.status.success(), "stack.sh {action} {name}: {}", text(&o));
    }

    pub(crate) fn psql(&self, sql: &str) {
        let o = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.env["PGPORT"]])
            .args([
                "-U",
                "postgres",
                "-d",
                "taxi",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
            ])
            .args(["-c", sql])
            .output()
            .expect("psql runs");
        assert!(o.status.success(), "{sql}: {}", text(&o));
    }

    pub(crate) fn setup_connectors(&self, extra: &[&str]) -> Output {
        let registry = &self.env["SCHEMA_REGISTRY_URL"];
        Command::new("bash")
            .arg(repo().join("scripts/setup-connectors.sh"))
            .args(["--connect-url", &self.env["CONNECT_URL"]])
            .args(["--set", &format!("database.port={}", self.env["PGPORT"])])
            .args([
                "--set",
                &format!("key.converter.schema.registry.url={registry}"),
            ])
            .args([
                "--set",
                &format!("value.converter.schema.registry.url={registry}"),
            ])
            .args(["--timeout", "60"])
            .args(extra)
            .output()
            .expect("bash runs")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("scripts/stack.sh"))
            .args(["down", &self.dir.display().to_string()])
            .output();
    }
}

#[tokio::test]
async fn a_postgres_change_reaches_floes_decoder_through_the_real_stack() {
    let dir = std::env::temp_dir().join(format!("floe-stack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let stack = Stack::up(&dir);
    stack.psql("INSERT INTO vendors VALUES (1, 'Creative Mobile')");

    let first = stack.setup_connectors(&[]);
    assert!(first.status.success(), "{}", text(&first));
    assert!(text(&first).contains("created"), "{}", text(&first));
    assert!(text(&first).contains("RUNNING"), "{}", text(&first));
    let again = stack.setup_connectors(&[]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("updated"), "{}", text(&again));

    // a connector that cannot reach its database: refused (Debezium
    // validates the connection) or FAILED, either way with the reason shown
    let broken = dir.join("broken.json");
    std::fs::write(
        &broken,
        std::fs::read_to_string(repo().join("connectors/taxi-postgres.json"))
            .unwrap()
            .replace("\"taxi-postgres\"", "\"broken\""),
    )
    .unwrap();
    let failed = stack.setup_connectors(&[
        "--config",
        &broken.display().to_string(),
        "--set",
        "database.password=wrong",
        "--set",
        "database.dbname=no_such_db",
        "--set",
        "slot.name=broken",
    ]);
    assert!(!failed.status.success(), "{}", text(&failed));
    assert!(text(&failed).contains("no_such_db"), "{}", text(&failed));

    stack.psql("INSERT INTO vendors VALUES (2, 'VeriFone')");
    stack.psql("UPDATE vendors SET name = 'Creative Mobile Technologies' WHERE vendor_id = 1");

    // read the topic back and decode it with schemas from the registry
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.env["KAFKA_BOOTSTRAP"])
        .set("group.id", "floe-e2e-stack")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&["taxi.public.vendors"]).unwrap();
    let registry = SchemaRegistryClient::new(RegistryConfig::new(
        stack.env["SCHEMA_REGISTRY_URL"].clone(),
    ))
    .unwrap();
    let mut decoder = ChangeDecoder::new(registry);
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while seen < 3 && Instant::now() < deadline {
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await else {
            continue;
        };
        decoder.push(&RawMessage::from(&m)).await.unwrap();
        seen += 1;
    }
    assert_eq!(seen, 3, "the three changes reached Kafka");
    let batches = decoder.flush();
    let ops: Vec<Op> = batches
        .iter()
        .flat_map(|b| (0..b.num_rows()).filter_map(|i| b.op(i)))
        .collect();
    assert_eq!(ops, [Op::Read, Op::Create, Op::Update]);
    drop(stack);
    std::fs::remove_dir_all(&dir).ok();
}
