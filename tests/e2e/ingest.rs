//! `floe ingest` against the real stack: a Postgres workload captured by
//! Debezium in Kafka Connect, through tansu and the registry stand-in,
//! applied to Iceberg tables on Garage; afterwards every table equals its
//! Postgres table row for row (compared as text, through DataFusion on one
//! side and Postgres on the other).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use iceberg::TableIdent;
use iceberg_datafusion::IcebergStaticTableProvider;
use lakehouse::Lake;

use crate::stack::{text, Stack};

pub(crate) const SETUP: &str = "
INSERT INTO vendors VALUES (1, 'Creative Mobile'), (2, 'VeriFone');
INSERT INTO payment_types VALUES (1, 'Credit card'), (2, 'Cash'), (3, 'No charge');
INSERT INTO trips
SELECT i, 1 + i % 2, timestamp '2024-03-01 00:00' + (i % 7) * interval '1 day' + i * interval '1 minute',
       timestamp '2024-03-01 00:20' + (i % 7) * interval '1 day' + i * interval '1 minute',
       1 + i % 265, 1 + (i * 7) % 265, 1 + i % 4, (i % 300) / 10.0, 5 + (i % 50), i % 5, 10 + (i % 60), 1 + i % 3,
       CASE WHEN i % 50 = 0 THEN repeat('long note ', 1000) END
FROM generate_series(1, 2000) AS i;
";

pub(crate) const WORKLOAD: &str = "
INSERT INTO trips
SELECT i, 1, timestamp '2024-03-08 00:00' + i * interval '1 minute', timestamp '2024-03-08 00:30' + i * interval '1 minute',
       7, 8, 1, 1.5, 9.5, 1, 12, 2, NULL
FROM generate_series(2001, 3000) AS i;
UPDATE trips SET fare_amount = fare_amount + 1 WHERE trip_id % 10 = 0;
UPDATE trips SET pickup_datetime = pickup_datetime + interval '3 days' WHERE trip_id % 97 = 0;
UPDATE trips SET tip_amount = 7 WHERE trip_id % 50 = 0;
DELETE FROM trips WHERE trip_id % 13 = 0;
UPDATE vendors SET vendor_id = 3 WHERE vendor_id = 2;
TRUNCATE payment_types;
INSERT INTO payment_types VALUES (1, 'Credit card'), (4, 'Dispute');
ALTER TABLE trips ADD COLUMN congestion_surcharge numeric(6, 2);
INSERT INTO trips VALUES (5000, 1, '2024-03-09 10:00', '2024-03-09 10:30', 1, 2, 1, 3.2, 14.0, 2.0, 18.5, 1, 'after the new column', 2.50);
UPDATE trips SET congestion_surcharge = 2.75 WHERE trip_id BETWEEN 2001 AND 2100;
";

const DURING_OUTAGE: &str = "
INSERT INTO trips
SELECT i, 2, timestamp '2024-03-10 00:00' + i * interval '1 minute', timestamp '2024-03-10 00:30' + i * interval '1 minute',
       9, 10, 2, 2.5, 11.0, 1.5, 14, 1, NULL, 2.50
FROM generate_series(6001, 6500) AS i;
UPDATE trips SET fare_amount = 99 WHERE trip_id BETWEEN 1 AND 300;
DELETE FROM trips WHERE trip_id BETWEEN 301 AND 350;
";

const DURING_BROKER_OUTAGE: &str = "
INSERT INTO trips
SELECT i, 1, timestamp '2024-03-12 00:00' + i * interval '1 minute', timestamp '2024-03-12 00:30' + i * interval '1 minute',
       4, 5, 1, 1.5, 9.0, 1.0, 11, 2, NULL, NULL
FROM generate_series(6501, 6800) AS i;
UPDATE trips SET tip_amount = 7 WHERE trip_id BETWEEN 6001 AND 6100;
DELETE FROM trips WHERE trip_id BETWEEN 351 AND 380;
";

/// What each table is compared on, written once for both sides: Postgres
/// and DataFusion both understand these expressions.
const CHECKS: [(&str, &str); 3] = [
    ("vendors", "SELECT vendor_id, name FROM {t} ORDER BY 1"),
    (
        "payment_types",
        "SELECT payment_type_id, description FROM {t} ORDER BY 1",
    ),
    (
        "trips",
        "SELECT trip_id, vendor_id, CAST(date_part('epoch', pickup_datetime) * 1000000 AS BIGINT), pickup_zone_id, \
         CAST(fare_amount AS VARCHAR), CAST(tip_amount AS VARCHAR), md5(coalesce(notes, '')), \
         CAST(congestion_surcharge AS VARCHAR) FROM {t} ORDER BY 1",
    ),
];

/// A free port for floe's metrics listener or a test's gate, below the
/// kernel's ephemeral range (32768 and up here): a process stopped and
/// started again on it must find it still free, and a port from the
/// ephemeral range can meanwhile become some client connection's source
/// port (a chaos run's Connect restart failed so in CI).
pub(crate) fn metrics_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    const LOW: u16 = 20000;
    const SPAN: u16 = 12000;
    let start = RandomState::new().hash_one(std::process::id()) as u16 % SPAN;
    (0..SPAN)
        .map(|i| LOW + (start + i) % SPAN)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free TCP port between 20000 and 32000")
}

/// GET `path` from floe's metrics listener.
fn http_get(config: &Path, path: &str) -> String {
    use std::io::{Read, Write};
    let text = std::fs::read_to_string(config).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    let listen = doc["ingest"]["metrics_listen"].as_str().unwrap();
    // a connection can be refused or reset on a loaded machine; what is
    // tested is the answer, so a few attempts are allowed
    let mut last_error = String::new();
    for _ in 0..5 {
        let attempt = (|| -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect(listen)?;
            write!(stream, "GET {path} HTTP/1.1\r\nHost: floe\r\n\r\n")?;
            let mut out = String::new();
            stream.read_to_string(&mut out)?;
            Ok(out)
        })();
        match attempt {
            Ok(out) => return out,
            Err(e) => last_error = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("GET {path} from floe at {listen}: {last_error}");
}

/// GET `path`, trying again until `within` has passed (while the listener
/// works through a backlog, say).
fn http_get_within(config: &Path, path: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        match std::panic::catch_unwind(|| http_get(config, path)) {
            Ok(out) => return out,
            Err(e) if Instant::now() >= deadline => std::panic::resume_unwind(e),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Idle connections to floe's metrics listener, held until dropped (by
/// helper processes: one process's file limit is below the flood).
struct IdleFlood(Vec<Child>);

impl IdleFlood {
    fn open(config: &Path, connections: usize) -> Self {
        use std::io::BufRead;
        let text = std::fs::read_to_string(config).unwrap();
        let doc: toml::Table = toml::from_str(&text).unwrap();
        let listen = doc["ingest"]["metrics_listen"].as_str().unwrap();
        let (host, port) = listen.rsplit_once(':').unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/idle_connections.py"
        );
        let per_process = 5_000;
        let mut helpers = Vec::new();
        for _ in 0..connections.div_ceil(per_process) {
            let mut helper = Command::new("python3")
                .args([script, host, port, &per_process.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3 runs");
            // it prints how many it opened once all are under way
            let mut line = String::new();
            std::io::BufReader::new(helper.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line.trim(), per_process.to_string());
            helpers.push(helper);
        }
        Self(helpers)
    }
}

impl Drop for IdleFlood {
    fn drop(&mut self) {
        for helper in &mut self.0 {
            let _ = helper.kill();
            let _ = helper.wait();
        }
    }
}

/// File descriptors process `pid` has open.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

pub(crate) fn write_config(path: &Path, stack: &Stack, warehouse: &str, catalog: &Path) {
    let e = &stack.env;
    std::fs::write(
        path,
        format!(
            r#"
[kafka]
bootstrap_servers = "{kafka}"
group_id = "floe-e2e"
topic_regex = 'taxi\.public\..*'
# a restarted consumer must not wait minutes for the dead one's session
properties = {{ "session.timeout.ms" = "6000", "max.poll.interval.ms" = "20000" }}

[registry]
url = "{registry}"

[lake]
warehouse = "{warehouse}"

[lake.catalog]
type = "sqlite"
path = "{catalog}"

[lake.s3]
endpoint = "{endpoint}"
access_key_id = "{key}"
secret_access_key = "{secret}"

[lake.tables]
"public.trips" = {{ partition = ["day(pickup_datetime)"] }}

[ingest]
commit_interval_ms = 1000
metrics_listen = "127.0.0.1:{metrics_port}"

[ingest.health]
lake_down_seconds = 5
"#,
            metrics_port = metrics_port(),
            kafka = e["KAFKA_BOOTSTRAP"],
            registry = e["SCHEMA_REGISTRY_URL"],
            catalog = catalog.display(),
            endpoint = e["FLOE_S3_ENDPOINT"],
            key = e["AWS_ACCESS_KEY_ID"],
            secret = e["AWS_SECRET_ACCESS_KEY"],
        ),
    )
    .unwrap();
}

/// floe ingest in the background, logging to `log`.
/// A running `floe ingest`, killed if the test ends (or fails) before
/// stopping it, so a failed assertion never leaves it consuming.
pub(crate) struct Ingest(Child);

impl std::ops::Deref for Ingest {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Ingest {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn_floe(config: &Path, log: &Path) -> Ingest {
    spawn_floe_env(config, log, &[])
}

pub(crate) fn spawn_floe_env(config: &Path, log: &Path, env: &[(&str, &str)]) -> Ingest {
    Ingest(
        Command::new(env!("CARGO_BIN_EXE_floe"))
            .args(["ingest", "--config", &config.display().to_string()])
            .env("FLOE_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("floe runs"),
    )
}

fn floe_ingest(config: &Path, extra: &[&str]) -> std::process::Output {
    floe_ingest_env(config, extra, &[])
}

fn floe_ingest_env(config: &Path, extra: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["ingest", "--config", &config.display().to_string()])
        .args(extra)
        .env("FLOE_LOG", "info")
        .envs(env.iter().copied())
        .output()
        .expect("floe runs")
}

/// Writes `value` (not a Confluent-framed Avro message) to `topic`.
pub(crate) async fn produce_poison(bootstrap: &str, topic: &str, value: &[u8]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::<[u8], [u8]>::to(topic).payload(value),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The dead-letter table's rows: topic, value (hex) and error, `|`-joined.
async fn dead_letters(lake: &Lake) -> Vec<String> {
    let ident = TableIdent::from_strs(["floe", "dead_letters"]).unwrap();
    // values are raw Kafka bytes (Avro is not UTF-8): compared as hex
    let sql = "SELECT topic, encode(value, 'hex'), error FROM t";
    let Ok(batches) = lake_sql(lake, &ident, sql).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            let col = |c: usize| {
                arrow::util::display::array_value_to_string(b.column(c), i).unwrap_or_default()
            };
            out.push(format!("{}|{}|{}", col(0), col(1), col(2)));
        }
    }
    out
}

/// `sql` over the lake table `ident`, registered as `t`, through DataFusion.
async fn lake_sql(
    lake: &Lake,
    ident: &TableIdent,
    sql: &str,
) -> Result<Vec<arrow::array::RecordBatch>, String> {
    let table = lake
        .catalog()
        .load_table(ident)
        .await
        .map_err(|e| e.to_string())?;
    let ctx = SessionContext::new();
    let provider = IcebergStaticTableProvider::try_new_from_table(table)
        .await
        .unwrap();
    ctx.register_table("t", Arc::new(provider)).unwrap();
    // a column the table does not have yet is a difference, not a failure
    let frame = ctx.sql(sql).await.map_err(|e| e.to_string())?;
    frame.collect().await.map_err(|e| e.to_string())
}

/// The table's rows through DataFusion, as `|`-joined text like psql's.
pub(crate) async fn lake_rows(lake: &Lake, table: &str, sql: &str) -> Result<Vec<String>, String> {
    lake_rows_in(lake, "taxi_cdc", table, sql).await
}

/// [`lake_rows`] of a table in `namespace`.
pub(crate) async fn lake_rows_in(
    lake: &Lake,
    namespace: &str,
    table: &str,
    sql: &str,
) -> Result<Vec<String>, String> {
    let ident = TableIdent::from_strs([namespace, table]).unwrap();
    let batches = lake_sql(lake, &ident, &sql.replace("{t}", "t")).await?;
    let mut rows = Vec::new();
    for b in &batches {
        let formats: Vec<_> = b
            .columns()
            .iter()
            .map(|c| {
                arrow::util::display::ArrayFormatter::try_new(
                    c.as_ref(),
                    &arrow::util::display::FormatOptions::default().with_null(""),
                )
                .unwrap()
            })
            .collect();
        for i in 0..b.num_rows() {
            let row: Vec<String> = formats.iter().map(|f| f.value(i).to_string()).collect();
            rows.push(row.join("|"));
        }
    }
    Ok(rows)
}

/// The first difference between the lake and Postgres, if any.
pub(crate) async fn difference(stack: &Stack, lake: &Lake, added_column: bool) -> Option<String> {
    difference_in(
        stack,
        lake,
        added_column,
        &["vendors", "payment_types", "trips"],
    )
    .await
}

/// The first difference between the lake and Postgres in `tables`.
pub(crate) async fn difference_in(
    stack: &Stack,
    lake: &Lake,
    added_column: bool,
    tables: &[&str],
) -> Option<String> {
    for (table, sql) in CHECKS.iter().filter(|(t, _)| tables.contains(t)) {
        // before the workload's ADD COLUMN neither side has the column
        let sql = if added_column {
            sql.to_string()
        } else {
            sql.replace(", CAST(congestion_surcharge AS VARCHAR)", "")
        };
        let sql = sql.as_str();
        let source = stack.query(&sql.replace("{t}", table));
        let lake_rows = match lake_rows(lake, table, sql).await {
            Ok(rows) => rows,
            Err(e) => return Some(format!("{table}: {e}")),
        };
        if lake_rows.len() != source.len() {
            // the first key on each side the other lacks: what a run that
            // lost or kept rows did it to
            let keys = |rows: &[String]| -> std::collections::BTreeSet<String> {
                rows.iter()
                    .filter_map(|r| r.split('|').next().map(str::to_string))
                    .collect()
            };
            let (in_lake, in_source) = (keys(&lake_rows), keys(&source));
            let only = |a: &std::collections::BTreeSet<String>,
                        b: &std::collections::BTreeSet<String>|
             -> Vec<String> { a.difference(b).take(10).cloned().collect() };
            // rows sharing a key in the lake: a change applied twice
            let repeated: Vec<&String> = lake_rows
                .windows(2)
                .filter(|w| w[0].split('|').next() == w[1].split('|').next())
                .map(|w| &w[1])
                .take(10)
                .collect();
            return Some(format!(
                "{table}: {} rows in the lake, {} in Postgres; keys only in the lake {:?}, only in Postgres {:?}, rows of a key the lake holds twice {:?}",
                lake_rows.len(),
                source.len(),
                only(&in_lake, &in_source),
                only(&in_source, &in_lake),
                repeated,
            ));
        }
        if let Some((l, s)) = lake_rows.iter().zip(&source).find(|(l, s)| l != s) {
            return Some(format!("{table}: lake row {l:?}, Postgres row {s:?}"));
        }
    }
    None
}

/// Waits until every table equals Postgres (floe running meanwhile).
async fn wait_until_equal(stack: &Stack, lake: &Lake, floe: &mut Child, added_column: bool) {
    wait_until_all_equal(stack, lake, &mut [floe], added_column).await
}

/// Waits until every table equals Postgres, with all of `floes` running.
pub(crate) async fn wait_until_all_equal(
    stack: &Stack,
    lake: &Lake,
    floes: &mut [&mut Child],
    added_column: bool,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let diff = difference(stack, lake, added_column).await;
        let Some(diff) = diff else { return };
        for floe in floes.iter_mut() {
            if let Ok(Some(status)) = floe.try_wait() {
                panic!("floe ingest exited ({status}) before the lake caught up: {diff}");
            }
        }
        assert!(
            Instant::now() < deadline,
            "the lake did not catch up: {diff}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Stops floe as an operator would (SIGTERM) and returns its log.
pub(crate) fn stop(floe: Ingest, log: &Path) -> String {
    let (status, out) = terminate(floe, log);
    assert!(status.success(), "floe ingest failed on SIGTERM: {out}");
    out
}

/// Sends SIGTERM and waits: floe's exit status and its log.
pub(crate) fn terminate(mut floe: Ingest, log: &Path) -> (std::process::ExitStatus, String) {
    let _ = Command::new("kill")
        .args(["-TERM", &floe.id().to_string()])
        .status();
    let status = floe.wait().unwrap();
    (status, std::fs::read_to_string(log).unwrap_or_default())
}

/// The first string value of `key` in a config written by
/// [`write_config`], unquoted.
fn setting(config: &str, key: &str) -> String {
    let prefix = format!("{key} = ");
    config
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("no {key} in {config}"))
}

/// `--check` on the same config with storage broken three ways: each
/// fails the storage line alone and names the step to fix, while the
/// catalog (SQLite here) still answers.
fn storage_faults_are_named_by_check(dir: &Path, config: &Path) {
    let good = std::fs::read_to_string(config).unwrap();
    let endpoint = setting(&good, "endpoint");
    let secret = format!("\"{}\"", setting(&good, "secret_access_key"));
    // a port nothing listens on: bound, then released
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (fault, bad, step) in [
        (
            "an endpoint that is down",
            good.replace(&endpoint, &format!("http://127.0.0.1:{closed}")),
            "FAILED  storage: connection (the endpoint does not answer)",
        ),
        (
            "a bucket that does not exist",
            good.replace("s3://lake/e2e", "s3://no-such-bucket/e2e"),
            "FAILED  storage: bucket (it does not exist)",
        ),
        (
            "a wrong secret key",
            good.replace(&secret, "\"not-the-secret\""),
            "FAILED  storage: credentials (the keys are refused or lack a permission)",
        ),
    ] {
        let path = dir.join("storage-fault.toml");
        std::fs::write(&path, bad).unwrap();
        let started = Instant::now();
        let out = floe_ingest(&path, &["--check"]);
        let shown = text(&out);
        assert!(!out.status.success(), "{fault}: {shown}");
        assert!(shown.contains(step), "{fault}: {shown}");
        assert!(shown.contains("ok      catalog"), "{fault}: {shown}");
        assert_eq!(shown.matches("FAILED").count(), 1, "{fault}: {shown}");
        assert!(!shown.contains("not-the-secret"), "{fault}: {shown}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{fault}: --check took {:?}",
            started.elapsed()
        );
    }
}

/// A tansu broker of its own (in-memory) listening on `port` and
/// advertising `advertised`, with `extra` broker flags; up when returned.
fn tansu_broker(port: u16, advertised: u16, extra: &[&str]) -> Child {
    let broker = Command::new(tansu_path())
        .arg("broker")
        .args(extra)
        .args(["--storage-engine", "memory://tansu/"])
        .arg("--listener-url")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .arg("--advertised-listener-url")
        .arg(format!("tcp://127.0.0.1:{advertised}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_kafka(port);
    broker
}

/// Waits until a Kafka broker on `port` answers an ApiVersions request
/// (which it must answer before any login). Listening is not enough: a
/// loaded machine has seen tansu accept connections for more than the
/// 10 s `--check` waits before it answered one (CI-G, stop 33).
fn wait_for_kafka(port: u16) {
    use std::io::{Read, Write};
    let client = b"floe-e2e";
    // ApiVersions v0: size, api key 18, version 0, correlation id 1,
    // client id, and an empty body
    let mut request = Vec::new();
    request.extend_from_slice(&((2 + 2 + 4 + 2 + client.len()) as i32).to_be_bytes());
    request.extend_from_slice(&18i16.to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes());
    request.extend_from_slice(&1i32.to_be_bytes());
    request.extend_from_slice(&(client.len() as i16).to_be_bytes());
    request.extend_from_slice(client);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answered = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(&request)?;
            let mut size = [0u8; 4];
            s.read_exact(&mut size)
        });
        if answered.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the broker on {port} does not answer ApiVersions: {answered:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The tansu broker the stack runs.
fn tansu_path() -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg("source scripts/lib/common.sh && source scripts/lib/stack.sh && tansu_bin")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits until something listens on `port`.
pub(crate) fn wait_for(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}

/// A test CA in `dir`: `{ca}.pem` and `{ca}.key`.
pub(crate) fn test_ca(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=floe test CA",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
        ],
    );
}

/// `{name}.pem` and `{name}.key` in `dir`: a certificate for `san`
/// (`subjectAltName=...`) signed by the test CA `ca.pem` there.
pub(crate) fn signed_certificate(dir: &Path, name: &str, san: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), san).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// `[kafka.tls]` against a real TLS handshake: a TLS-terminating gate
/// (scripts/tcp-gate.py) in front of the stack's broker, with a
/// certificate from a test CA. floe's `--check` reaches the broker with
/// that CA, and fails with another CA or when the certificate names
/// another host (unless `verify_hostname = false`). Behind a gate that
/// asks for client certificates (mutual TLS), floe's own certificate
/// (`cert_file`, `key_file`) passes and none fails. Which step the line
/// names depends on librdkafka's log reaching floe within the timeout,
/// so only the failure is asserted.
fn kafka_tls_is_checked_by_a_real_handshake(dir: &Path, config: &Path, stack: &Stack) {
    let certs = dir.join("kafka-tls");
    std::fs::create_dir_all(&certs).unwrap();
    for ca in ["ca", "other-ca"] {
        test_ca(&certs, ca);
    }
    // one certificate for 127.0.0.1, one naming only another host, and
    // floe's own for mutual TLS
    for (name, san) in [
        ("broker", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("elsewhere", "subjectAltName=DNS:elsewhere.example"),
        ("client", "subjectAltName=DNS:floe.example"),
    ] {
        signed_certificate(&certs, name, san);
    }
    let plain = stack.env["KAFKA_BOOTSTRAP"].clone();
    // a broker of its own behind each gate, advertising the gate: every
    // connection librdkafka makes is TLS through it
    // with `mutual`, the gate wants a client certificate from the test CA
    let gate = |name: &str, mutual: bool| {
        let (broker_port, port) = (metrics_port(), metrics_port());
        let broker = tansu_broker(broker_port, port, &[]);
        let mut gate = Command::new("python3");
        gate.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tcp-gate.py"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--to", &format!("127.0.0.1:{broker_port}")])
            .arg("--tls-cert")
            .arg(certs.join(format!("{name}.pem")))
            .arg("--tls-key")
            .arg(certs.join(format!("{name}.key")));
        if mutual {
            gate.arg("--tls-client-ca").arg(certs.join("ca.pem"));
        }
        let gate = gate.stdout(Stdio::null()).spawn().unwrap();
        wait_for(port);
        (vec![broker, gate], format!("127.0.0.1:{port}"))
    };
    let (good_gate, good) = gate("broker", false);
    let (other_gate, elsewhere) = gate("elsewhere", false);
    let (mutual_gate, mutual) = gate("broker", true);
    let client = format!(
        "cert_file = {:?}\nkey_file = {:?}",
        certs.join("client.pem").display().to_string(),
        certs.join("client.key").display().to_string()
    );
    let base = std::fs::read_to_string(config).unwrap();
    let ca = |name: &str| certs.join(format!("{name}.pem")).display().to_string();
    for (case, bootstrap, tls, expect) in [
        (
            "the test CA",
            &good,
            format!("ca_file = {:?}", ca("ca")),
            "ok      kafka",
        ),
        (
            "another CA",
            &good,
            format!("ca_file = {:?}", ca("other-ca")),
            "FAILED  kafka:",
        ),
        (
            "a certificate for another host",
            &elsewhere,
            format!("ca_file = {:?}", ca("ca")),
            "FAILED  kafka:",
        ),
        (
            "another host, not checked",
            &elsewhere,
            format!("ca_file = {:?}\nverify_hostname = false", ca("ca")),
            "ok      kafka",
        ),
        (
            "mutual TLS with floe's certificate",
            &mutual,
            format!("ca_file = {:?}\n{client}", ca("ca")),
            "ok      kafka",
        ),
        (
            "mutual TLS without a client certificate",
            &mutual,
            format!("ca_file = {:?}", ca("ca")),
            "FAILED  kafka:",
        ),
    ] {
        let text_of = base
            .replace(&plain, bootstrap)
            .replace("[registry]", &format!("[kafka.tls]\n{tls}\n\n[registry]"));
        let path = dir.join("kafka-tls.toml");
        std::fs::write(&path, text_of).unwrap();
        let out = floe_ingest(&path, &["--check"]);
        let shown = text(&out);
        assert!(shown.contains(expect), "{case}: {shown}");
    }
    for mut child in good_gate.into_iter().chain(other_gate).chain(mutual_gate) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `[kafka.sasl]` against a broker that requires SASL (tansu with
/// `--authentication`): librdkafka's SCRAM-SHA-256 and SCRAM-SHA-512
/// exchanges with it fail for a user it does not know, and `--check` says
/// so within seconds without printing the password. A successful login
/// cannot be shown here: tansu 0.6 creates SCRAM users only while
/// authentication is off, and the build the stack uses keeps them in
/// memory, so a broker restarted with authentication has none (see README).
fn kafka_sasl_is_checked_against_a_broker_that_requires_it(
    dir: &Path,
    config: &Path,
    stack: &Stack,
) {
    let port = metrics_port();
    let mut broker = tansu_broker(port, port, &["--authentication"]);
    let base = std::fs::read_to_string(config)
        .unwrap()
        .replace(&stack.env["KAFKA_BOOTSTRAP"], &format!("127.0.0.1:{port}"));
    for (mechanism, password) in [
        ("SCRAM-SHA-256", "scram-256-secret"),
        ("SCRAM-SHA-512", "scram-512-secret"),
    ] {
        let sasl = format!(
            "[kafka.sasl]\nmechanism = \"{mechanism}\"\nusername = \"floe\"\npassword = \"{password}\"\n\n[registry]"
        );
        let path = dir.join("kafka-sasl.toml");
        std::fs::write(&path, base.replace("[registry]", &sasl)).unwrap();
        // A loaded machine (CI runs the chaos campaign beside this test)
        // has seen tansu accept the connection and then not answer the
        // exchange within `--check`'s 10 s, after answering the one before
        // (CI-G at stop 33, CI-I at stop 34). Only that silence is tried
        // again, twice; any other answer is checked as it is.
        let mut tries = 0;
        let (started, shown) = loop {
            tries += 1;
            let started = Instant::now();
            let shown = text(&floe_ingest(&path, &["--check"]));
            let silent =
                shown.contains("FAILED  kafka: TCP connection") && shown.contains("no answer from");
            if !silent || tries == 3 {
                break (started, shown);
            }
        };
        // the SCRAM exchange ran and was refused (without [kafka.sasl] the
        // broker only drops the connection: a transport failure)
        assert!(
            shown.contains("FAILED  kafka: authentication")
                && shown.contains("SASL SCRAM authentication failed"),
            "{mechanism}: {shown}"
        );
        assert!(shown.contains("ok      catalog"), "{mechanism}: {shown}");
        assert!(
            !shown.contains(password),
            "{mechanism}: the password is printed: {shown}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{mechanism}: --check took {:?}",
            started.elapsed()
        );
    }
    broker.kill().unwrap();
    broker.wait().unwrap();
}

/// `--check --log debug`, in both log formats, with every kind of secret
/// floe takes: the S3 secret key (which the S3 signer's debug log prints),
/// a registry URL with a password in it, an all-digit registry password
/// from the environment, and a password under a misspelled librdkafka key
/// (which librdkafka's error repeats). None of them is printed; the
/// misspelled key is named.
fn secrets_stay_out_of_check_at_debug_level(dir: &Path, config: &Path) {
    let good = std::fs::read_to_string(config).unwrap();
    let s3_secret = setting(&good, "secret_access_key");
    let registry = setting(&good, "url");
    let with_password = registry.replacen("://", "://reader:url-pass-5151@", 1);
    let config_text = good
        .replace(
            &format!("url = \"{registry}\""),
            &format!("url = \"{with_password}\"\nusername = \"reader\"\npassword = \"file-pass\""),
        )
        .replace(
            "\"max.poll.interval.ms\" = \"20000\" }",
            "\"max.poll.interval.ms\" = \"20000\", \"sasl.pasword\" = \"kafka-typo-secret\" }",
        );
    let path = dir.join("secrets.toml");
    std::fs::write(&path, config_text).unwrap();
    for format in ["text", "json"] {
        let out = floe_ingest_env(
            &path,
            &["--check", "--log", "debug", "--log-format", format],
            &[("FLOE__REGISTRY__PASSWORD", "73194286")],
        );
        let shown = text(&out);
        for secret in [
            s3_secret.as_str(),
            "url-pass-5151",
            "73194286",
            "kafka-typo-secret",
        ] {
            assert!(
                !shown.contains(secret),
                "{format}: {secret} printed: {shown}"
            );
        }
        // the all-digit password was taken as a string, the typo named,
        // and the storage probe (whose signer logs at debug) ran
        assert!(!shown.contains("environment override"), "{format}: {shown}");
        assert!(
            shown.contains("properties \"sasl.pasword\""),
            "{format}: {shown}"
        );
        assert!(shown.contains("ok      storage"), "{format}: {shown}");
        assert!(shown.contains("reader:***@"), "{format}: {shown}");
    }
}

#[tokio::test]
async fn every_table_equals_postgres_after_floe_ingest() {
    let dir = std::env::temp_dir().join(format!("floe-e2e-ingest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let stack = Stack::up(&dir.join("stack"));
    stack.psql(SETUP);

    let config = dir.join("floe.toml");
    write_config(&config, &stack, "s3://lake/e2e", &dir.join("catalog.db"));
    let check = floe_ingest(&config, &["--check"]);
    assert!(check.status.success(), "{}", text(&check));
    // kafka, registry, catalog, storage and tables; librdkafka's chatter
    // stays out
    assert_eq!(text(&check).matches("ok ").count(), 5, "{}", text(&check));
    assert!(
        text(&check).contains("ok      storage: s3://lake/e2e: wrote, read back and deleted"),
        "{}",
        text(&check)
    );
    assert!(!text(&check).contains("librdkafka"), "{}", text(&check));
    storage_faults_are_named_by_check(&dir, &config);
    secrets_stay_out_of_check_at_debug_level(&dir, &config);
    kafka_tls_is_checked_by_a_real_handshake(&dir, &config, &stack);
    kafka_sasl_is_checked_against_a_broker_that_requires_it(&dir, &config, &stack);

    let lake_config: lakehouse::LakeConfig = {
        let text = std::fs::read_to_string(&config).unwrap();
        let doc: toml::Table = toml::from_str(&text).unwrap();
        doc["lake"].clone().try_into().unwrap()
    };
    let lake = Lake::open(&lake_config).await.unwrap();

    // floe first, then the connector: the topics appear while floe runs
    // (its regex subscription must pick them up), then the snapshot, then
    // the workload
    let log = dir.join("floe.log");
    let mut floe = spawn_floe(&config, &log);
    let registered = stack.setup_connectors(&[]);
    assert!(registered.status.success(), "{}", text(&registered));
    wait_until_equal(&stack, &lake, &mut floe, false).await;
    let health = http_get(&config, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = http_get(&config, "/metrics");
    assert!(
        metrics.contains("floe_events_applied_total{table=\"taxi_cdc.trips\",op=\"r\"} 2000"),
        "{metrics}"
    );
    assert!(metrics.contains("floe_commit_seconds_count "), "{metrics}");
    assert!(metrics.contains("floe_freshness_seconds "), "{metrics}");
    crate::serve::dashboard_shows_ingest(&config, &dir).await;
    // the table's files after its last commit: the snapshot's 2,000 trips
    assert!(
        metrics.contains("floe_table_live_rows{table=\"taxi_cdc.trips\"} 2000\n"),
        "{metrics}"
    );
    let data_files = metrics
        .lines()
        .find_map(|l| l.strip_prefix("floe_table_data_files{table=\"taxi_cdc.trips\"} "))
        .unwrap_or_else(|| panic!("no data file gauge: {metrics}"));
    assert!(data_files.parse::<u64>().unwrap() >= 1, "{metrics}");
    assert!(
        metrics.contains("floe_table_deleted_row_share{table=\"taxi_cdc.trips\"} 0.0\n"),
        "{metrics}"
    );
    assert!(http_get(&config, "/readyz").starts_with("HTTP/1.1 200"));

    // with the topics and their schemas there, --check builds each
    // partition spec on the source columns and warns of a table setting
    // that no topic uses
    let checked = floe_ingest(&config, &["--check"]);
    assert!(
        text(&checked).contains("1 partition specs match"),
        "{}",
        text(&checked)
    );
    let mistaken = dir.join("mistaken.toml");
    std::fs::write(
        &mistaken,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("day(pickup_datetime)", "day(pickup_datetim)")
            .replace("[lake.tables]\n", "[lake.tables]\n\"public.tripz\" = {}\n"),
    )
    .unwrap();
    let caught = floe_ingest(&mistaken, &["--check"]);
    assert!(!caught.status.success(), "{}", text(&caught));
    assert!(
        text(&caught).contains("FAILED  [lake.tables.\"public.trips\"] partition")
            && text(&caught).contains("pickup_datetim\" in the table"),
        "{}",
        text(&caught)
    );
    assert!(
        text(&caught).contains("warn    [lake.tables.\"public.tripz\"]"),
        "{}",
        text(&caught)
    );
    // lag per partition, from librdkafka's statistics (every 5 s) against
    // the group offsets floe commits after each Iceberg commit
    let caught_up = "floe_consumer_lag{topic=\"taxi.public.trips\",partition=\"0\"} 0\n";
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http_get(&config, "/metrics").contains(caught_up) {
        assert!(
            Instant::now() < deadline,
            "no zero lag for trips: {}",
            http_get(&config, "/metrics")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // 20,000 connections that never send a request, held while the
    // workload streams: floe caps what it serves, so it keeps its file
    // descriptors for Kafka and the store and goes on consuming
    let flood = IdleFlood::open(&config, 20_000);
    stack.psql(WORKLOAD);
    wait_until_equal(&stack, &lake, &mut floe, true).await;
    let fds = open_files(floe.id());
    assert!(
        fds < 400,
        "floe holds {fds} file descriptors under the flood"
    );
    drop(flood);
    let health = http_get_within(&config, "/healthz", Duration::from_secs(30));
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let out = stop(floe, &log);
    assert!(out.contains("SIGTERM: stopping"), "{out}");

    // restarted: resumes after the offsets the tables hold, applies nothing
    let again = floe_ingest(&config, &["--stop-when-idle", "5"]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("resuming from the offset the table holds"),
        "{}",
        text(&again)
    );
    assert!(
        text(&again).contains(" 0 events applied"),
        "{}",
        text(&again)
    );
    assert_eq!(difference(&stack, &lake, true).await, None);

    // the object store down for 15 s while changes stream: floe logs,
    // waits it out and catches up, with nothing lost or doubled; with a
    // small buffer limit, it pauses its partitions meanwhile
    let log = dir.join("floe-outage.log");
    let small_buffer = [("FLOE__INGEST__MAX_BUFFER_BYTES", "20000")];
    let mut floe = spawn_floe_env(&config, &log, &small_buffer);
    std::thread::sleep(Duration::from_secs(3));
    stack.service("stop", "s3");
    stack.psql(DURING_OUTAGE);
    // once commits have failed for lake_down_seconds (5 here) /healthz
    // says so, with the reason (the store's client retries for a few
    // seconds before the first attempt fails)
    let down_at = Instant::now();
    let health = loop {
        let health = http_get(&config, "/healthz");
        if health.starts_with("HTTP/1.1 503") || down_at.elapsed() > Duration::from_secs(30) {
            break health;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(
        health.contains("503") && health.contains("the lake cannot be written for"),
        "{health}"
    );
    std::thread::sleep(Duration::from_secs(15).saturating_sub(down_at.elapsed()));
    assert!(
        floe.try_wait().unwrap().is_none(),
        "floe survived the outage"
    );
    stack.service("start", "s3");
    wait_until_equal(&stack, &lake, &mut floe, true).await;
    let health = http_get_within(&config, "/healthz", Duration::from_secs(10));
    assert!(
        health.starts_with("HTTP/1.1 200"),
        "healthy again: {health}"
    );
    let out = stop(floe, &log);
    assert!(
        out.contains("cannot apply yet"),
        "the outage was logged: {out}"
    );
    assert!(
        out.contains("partitions paused") && out.contains("partitions resumed"),
        "buffers filled during the outage: {out}"
    );

    // the broker unreachable for 15 s (its listener gone: connections
    // refused and dropped) while changes are made: Debezium's producer and
    // floe's consumer both wait it out
    let log = dir.join("floe-broker-outage.log");
    let mut floe = spawn_floe(&config, &log);
    std::thread::sleep(Duration::from_secs(3));
    stack.service("stop", "kafka");
    stack.psql(DURING_BROKER_OUTAGE);
    std::thread::sleep(Duration::from_secs(15));
    assert!(
        floe.try_wait().unwrap().is_none(),
        "floe survived the broker outage"
    );
    stack.service("start", "kafka");
    wait_until_equal(&stack, &lake, &mut floe, true).await;
    let out = stop(floe, &log);
    assert!(
        out.contains("Connection refused") || out.contains("Kafka:"),
        "the broker outage was logged: {out}"
    );

    // kill -9 while writes stream in, then restart: equal again, and no
    // event applied twice (a duplicate would show as an extra row)
    let mut floe = spawn_floe(&config, &dir.join("floe-killed.log"));
    let port = stack.env["PGPORT"].clone();
    let writes = std::thread::spawn(move || {
        for k in 0..12 {
            let first = 7000 + k * 50;
            let sql = format!(
                "INSERT INTO trips SELECT i, 1, timestamp '2024-03-11 00:00' + i * interval '1 second', \
                 timestamp '2024-03-11 00:30', 3, 4, 1, 1.0, 8.0, 1.0, 10.0, 1, NULL, NULL \
                 FROM generate_series({first}, {}) AS i; \
                 UPDATE trips SET tip_amount = {k} WHERE trip_id BETWEEN {first} - 50 AND {first} - 25;",
                first + 49
            );
            let ok = Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-d",
                    "taxi",
                ])
                .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", &sql])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "workload statement {k} failed");
            std::thread::sleep(Duration::from_millis(400));
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    floe.kill().unwrap();
    floe.wait().unwrap();
    writes.join().unwrap();
    let log = dir.join("floe-restarted.log");
    let mut floe = spawn_floe(&config, &log);
    wait_until_equal(&stack, &lake, &mut floe, true).await;
    let out = stop(floe, &log);
    assert!(
        out.contains("resuming from the offset the table holds"),
        "{out}"
    );

    // an undecodable message, then a good change behind it
    let poison = b"this is not a Confluent Avro message";
    produce_poison(&stack.env["KAFKA_BOOTSTRAP"], "taxi.public.vendors", poison).await;
    stack.psql("INSERT INTO vendors VALUES (9, 'Curb')");
    std::thread::sleep(Duration::from_secs(3));
    // on_error = fail: stops, names the message, applies nothing past it
    let failed = floe_ingest(&config, &["--stop-when-idle", "5"]);
    assert!(!failed.status.success(), "{}", text(&failed));
    assert!(
        text(&failed).contains("topic taxi.public.vendors partition 0 offset")
            && text(&failed).contains("cannot decode"),
        "{}",
        text(&failed)
    );
    assert!(
        difference(&stack, &lake, true).await.is_some(),
        "vendor 9 is behind the bad message: not applied"
    );
    // on_error = dead_letter (by environment override): recorded, then on
    let dlq = [("FLOE__INGEST__ON_ERROR", "dead_letter")];
    let recorded = floe_ingest_env(
        &config,
        &["--stop-when-idle", "5", "--log-format", "json"],
        &dlq,
    );
    assert!(recorded.status.success(), "{}", text(&recorded));
    // JSON logs: the dead letter is one parseable line with its position
    let logged = String::from_utf8_lossy(&recorded.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("dead-letter table"))
        })
        .unwrap_or_else(|| panic!("no JSON log line for the dead letter: {}", text(&recorded)));
    assert_eq!(logged["fields"]["topic"], "taxi.public.vendors");
    assert_eq!(logged["level"], "ERROR");
    assert_eq!(difference(&stack, &lake, true).await, None);
    let letters = dead_letters(&lake).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0].starts_with("taxi.public.vendors|") && letters[0].contains(&hex(poison)),
        "{letters:?}"
    );
    // and a restart resumes after it: no second letter
    let again = floe_ingest_env(&config, &["--stop-when-idle", "5"], &dlq);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(dead_letters(&lake).await.len(), 1);

    // a change that decodes but cannot be applied: vendors.name turns into
    // an integer, which no Iceberg promotion allows
    stack.psql(
        "ALTER TABLE vendors ALTER COLUMN name TYPE integer USING length(name); \
         INSERT INTO vendors VALUES (10, 42)",
    );
    std::thread::sleep(Duration::from_secs(3));
    let failed = floe_ingest(&config, &["--stop-when-idle", "5"]);
    assert!(!failed.status.success(), "{}", text(&failed));
    assert!(
        text(&failed).contains("cannot apply taxi.public.vendors")
            && text(&failed).contains("changed type from string to int"),
        "{}",
        text(&failed)
    );
    assert_eq!(
        dead_letters(&lake).await.len(),
        1,
        "fail mode letters nothing"
    );
    // dead-letter mode: the message, read back from Kafka, is recorded
    let recorded = floe_ingest_env(&config, &["--stop-when-idle", "5"], &dlq);
    assert!(recorded.status.success(), "{}", text(&recorded));
    let letters = dead_letters(&lake).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    let rejected = letters
        .iter()
        .find(|l| l.contains("changed type"))
        .unwrap_or_else(|| panic!("no letter for the rejected change: {letters:?}"));
    let fields: Vec<&str> = rejected.splitn(3, '|').collect();
    assert_eq!(fields[0], "taxi.public.vendors");
    assert!(
        !fields[1].is_empty(),
        "the raw value was read back: {rejected}"
    );
    let again = floe_ingest_env(&config, &["--stop-when-idle", "5"], &dlq);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(dead_letters(&lake).await.len(), 2, "recorded once");

    drop(stack);
    std::fs::remove_dir_all(&dir).ok();
}

/// With Kafka unreachable, floe ingest at its default log level says so
/// once and then once per 30 s window with how many times it held back
/// (it said the same warning every 50 ms before, with librdkafka's own
/// at every reconnect: about 40 lines a second).
#[test]
fn kafka_down_is_said_once_a_window_not_at_every_poll() {
    let dir = crate::stack::fresh_dir("kafka-down");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let config = dir.join("floe.toml");
    let metrics = metrics_port();
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbootstrap_servers = \"127.0.0.1:{port}\"\ngroup_id = \"g\"\n\
             topics = [\"taxi.public.trips\"]\n[registry]\nurl = \"http://127.0.0.1:{port}\"\n\
             [lake]\nwarehouse = \"{}\"\n\
             [ingest]\nmetrics_listen = \"127.0.0.1:{metrics}\"\n\
             [ingest.health]\nbroker_down_seconds = 3\n",
            dir.join("lake").display()
        ),
    )
    .unwrap();
    let log = dir.join("floe.log");
    let floe = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["ingest", "--config", &config.display().to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let floe = Ingest(floe);
    std::thread::sleep(Duration::from_secs(6));
    // /healthz says why it is unhealthy; /readyz where start-up waits;
    // every metric is there before the first event
    let health = http_get(&config, "/healthz");
    assert!(
        health.starts_with("HTTP/1.1 503") && health.contains("no Kafka broker reachable"),
        "{health}"
    );
    let ready = http_get(&config, "/readyz");
    assert!(
        ready.starts_with("HTTP/1.1 503") && ready.contains("assign partitions"),
        "{ready}"
    );
    let scraped = http_get(&config, "/metrics");
    for series in [
        "floe_freshness_seconds ",
        "floe_errors_total{kind=\"kafka\"} ",
        "floe_healthy 0",
        "# EOF",
    ] {
        assert!(scraped.contains(series), "{series}: {scraped}");
    }
    std::thread::sleep(Duration::from_secs(2));
    let out = stop(floe, &log);
    let lines = out.lines().count();
    assert!(
        out.contains("Connection refused") || out.contains("retrying"),
        "the outage is said: {out}"
    );
    assert!(lines <= 9, "{lines} lines in 8 s: {out}");

    // --stop-when-idle stops with Kafka unreachable too: joining the group
    // is given 30 s, then floe says what it waited for
    let began = Instant::now();
    let idle = floe_ingest(&config, &["--stop-when-idle", "2"]);
    assert!(!idle.status.success(), "{}", text(&idle));
    assert!(
        text(&idle).contains("no partition was assigned in 30 s")
            && text(&idle).contains(&format!("127.0.0.1:{port}")),
        "{}",
        text(&idle)
    );
    assert!(
        began.elapsed() < Duration::from_secs(45),
        "{:?}",
        began.elapsed()
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A Postgres catalog that refuses connections, or accepts them and never
/// answers, is reported within seconds with its address (password hidden)
/// and the reason, by any command that opens the lake (the pool alone
/// waited 30 s, three times, and said only "pool timed out").
#[test]
fn an_unreachable_catalog_is_reported_within_seconds_with_its_address() {
    let dir = crate::stack::fresh_dir("catalog-down");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = closed.local_addr().unwrap().port();
    drop(closed);
    // bound but never accepted: connections complete, nothing answers
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    for (port, reason) in [
        (refused, "Connection refused"),
        (silent_port, "no answer within 5 s"),
    ] {
        let config = dir.join(format!("floe-{port}.toml"));
        std::fs::write(
            &config,
            format!(
                "[lake]\nwarehouse = \"{}\"\n[lake.catalog]\ntype = \"sql\"\n\
                 uri = \"postgres://floe:s3cret@127.0.0.1:{port}/catalog\"\n",
                dir.join("lake").display()
            ),
        )
        .unwrap();
        let began = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_floe"))
            .args(["sql", "--config", &config.display().to_string()])
            .args(["-e", "SELECT 1"])
            .output()
            .unwrap();
        let took = began.elapsed();
        let said = text(&out);
        assert!(!out.status.success(), "{said}");
        assert!(took < Duration::from_secs(9), "{took:?}: {said}");
        assert!(
            said.contains(&format!("floe:***@127.0.0.1:{port}/catalog")) && said.contains(reason),
            "{said}"
        );
        assert!(!said.contains("s3cret"), "{said}");
    }
    drop(silent);
    std::fs::remove_dir_all(&dir).ok();
}
