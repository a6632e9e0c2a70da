//! `floe.toml`: the service's configuration, read from a TOML file with
//! environment overrides.
//!
//! Any key can be overridden by an environment variable named `FLOE__`
//! followed by its path with `__` between levels, upper-cased:
//! `FLOE__KAFKA__BOOTSTRAP_SERVERS=broker:9092`,
//! `FLOE__LAKE__S3__ENDPOINT=http://minio:9000`,
//! `FLOE__INGEST__COMMIT_INTERVAL_MS=1000`. The value is read as a TOML
//! value when it parses as one (numbers, booleans, arrays), else as a
//! string.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lakehouse::maintain::MaintainConfig;
use lakehouse::LakeConfig;
use serde::Deserialize;

use crate::metrics::HealthRules;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloeConfig {
    pub kafka: KafkaConfig,
    pub registry: RegistrySection,
    #[serde(default)]
    pub lake: LakeConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    /// Table maintenance (read by `floe maintain` and `floe jobs schedule`).
    #[serde(default)]
    pub maintain: MaintainConfig,
    /// The batch jobs. `floe jobs` reads this section on its own
    /// ([`jobs_dir`]); it is here so that a whole-file load checks it too.
    #[serde(default)]
    #[allow(dead_code)]
    pub jobs: JobsSection,
    /// `floe serve`. Read on its own ([`load_serve`]); here so that a
    /// whole-file load checks it too.
    #[serde(default)]
    #[allow(dead_code)]
    pub serve: ServeSection,
}

/// `[serve]`: the HTTP API of `floe serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// `host:port` to listen on. Default `127.0.0.1:8080` (this machine
    /// only).
    #[serde(default = "default_serve_listen")]
    pub listen: String,
    /// The bearer token every request must carry (`Authorization: Bearer
    /// ...`; or `token_file`, or FLOE__SERVE__TOKEN). Required unless
    /// `listen` is a loopback address.
    #[serde(default)]
    pub token: Option<String>,
    /// A query still running after this many seconds is stopped. Default 30.
    #[serde(default = "default_query_timeout")]
    pub query_timeout_secs: u64,
    /// Rows a response returns at most (a cut result says so). Default 100000.
    #[serde(default = "default_serve_rows")]
    pub max_rows: usize,
    /// Queries run at once; more wait. Default 4.
    #[serde(default = "default_serve_queries")]
    pub max_concurrent_queries: usize,
    /// Memory one query may hold (MiB; sorts, joins, aggregations). The
    /// server's queries together hold at most this times
    /// `max_concurrent_queries`. Default 512.
    #[serde(default = "default_query_memory")]
    pub query_memory_mb: usize,
    /// A PEM certificate chain and its key: both ports then speak TLS
    /// (https, grpc+tls). Neither by default.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Rows a Flight SQL result streams at most; past it the stream ends
    /// with an error (results stream, so this is a guard, not a buffer).
    /// Default 100000000.
    #[serde(default = "default_flight_rows")]
    pub flight_max_rows: usize,
    /// `host:port` of the Arrow Flight SQL endpoint (gRPC). Default
    /// `127.0.0.1:50051`; the same token rule as `listen`.
    #[serde(default = "default_flight_listen")]
    pub flight_listen: String,
    /// `floe ingest`'s metrics URL (`http://host:port/metrics`): the
    /// dashboard then shows its lag, freshness and health.
    #[serde(default)]
    pub ingest_metrics: Option<String>,
}

impl Default for ServeSection {
    fn default() -> Self {
        Self {
            listen: default_serve_listen(),
            token: None,
            query_timeout_secs: default_query_timeout(),
            max_rows: default_serve_rows(),
            max_concurrent_queries: default_serve_queries(),
            query_memory_mb: default_query_memory(),
            ingest_metrics: None,
            flight_listen: default_flight_listen(),
            flight_max_rows: default_flight_rows(),
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

fn default_serve_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_query_timeout() -> u64 {
    30
}
fn default_serve_rows() -> usize {
    100_000
}
fn default_serve_queries() -> usize {
    4
}
fn default_query_memory() -> usize {
    512
}
fn default_flight_rows() -> usize {
    100_000_000
}
fn default_flight_listen() -> String {
    "127.0.0.1:50051".into()
}

/// The `[serve]` section of the file at `path` (defaults when absent).
pub fn load_serve(path: &Path) -> Result<ServeSection> {
    let serve: ServeSection = section(path, "serve")?.unwrap_or_default();
    if serve.query_timeout_secs == 0
        || serve.max_rows == 0
        || serve.max_concurrent_queries == 0
        || serve.query_memory_mb == 0
        || serve.flight_max_rows == 0
    {
        bail!(
            "config file {}: [serve] query_timeout_secs, max_rows, max_concurrent_queries, \
             query_memory_mb and flight_max_rows must be positive",
            path.display()
        );
    }
    Ok(serve)
}

/// `[jobs]`: where `floe jobs` finds its manifests.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsSection {
    /// The jobs folder, relative to this file's folder. Default
    /// `analytics/jobs` beside this file.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// The jobs folder: `--jobs-dir` (or `FLOE_JOBS_DIR`) when given, else
/// `[jobs] dir` of the configuration file, else `analytics/jobs`; the
/// latter two relative to the configuration file's folder, so the answer
/// does not depend on where floe is started.
pub fn jobs_dir(config: &Path, given: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir.to_path_buf());
    }
    let section: JobsSection = if config.exists() {
        section(config, "jobs")?.unwrap_or_default()
    } else {
        JobsSection::default()
    };
    let dir = section
        .dir
        .unwrap_or_else(|| PathBuf::from("analytics/jobs"));
    let base = config.parent().unwrap_or(Path::new(""));
    Ok(base.join(dir))
}

/// `[kafka]`: where the Debezium topics are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    /// Consumer group. Default `floe`.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Topics to consume, by name.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Or by regular expression (librdkafka syntax, without the leading
    /// `^`), e.g. `taxi\.public\..*`.
    #[serde(default)]
    pub topic_regex: Option<String>,
    /// `[kafka.tls]`: TLS to the brokers, on when the section is there.
    #[serde(default)]
    pub tls: Option<KafkaTls>,
    /// `[kafka.sasl]`: SASL authentication, on when the section is there.
    #[serde(default)]
    pub sasl: Option<KafkaSasl>,
    /// Extra librdkafka properties, set after (and over) the typed keys.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// `[kafka.tls]`: how floe checks the brokers and, for mutual TLS, who it
/// is. PEM files.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTls {
    /// The CA that signed the brokers' certificates (default: the
    /// system's CAs).
    pub ca_file: Option<PathBuf>,
    /// floe's own certificate and key, for brokers that ask for one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Check that a broker's certificate names the host floe dialled
    /// (default true).
    #[serde(default = "default_true")]
    pub verify_hostname: bool,
}

/// `[kafka.sasl]`: the user floe authenticates as.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (others through
    /// `properties`).
    pub mechanism: String,
    pub username: String,
    /// Or `password_file`.
    pub password: String,
}

// hand-written so that the password never reaches a log line
impl std::fmt::Debug for KafkaSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

const SASL_MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

fn default_true() -> bool {
    true
}

impl KafkaConfig {
    /// The librdkafka properties the typed keys stand for:
    /// `security.protocol` from which of TLS and SASL are on, then theirs.
    pub fn security_properties(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let protocol = match (&self.tls, &self.sasl) {
            (Some(_), Some(_)) => "SASL_SSL",
            (Some(_), None) => "SSL",
            (None, Some(_)) => "SASL_PLAINTEXT",
            (None, None) => return out,
        };
        out.push(("security.protocol", protocol.to_string()));
        if let Some(tls) = &self.tls {
            let path = |p: &PathBuf| p.display().to_string();
            if let Some(ca) = &tls.ca_file {
                out.push(("ssl.ca.location", path(ca)));
            }
            if let Some(cert) = &tls.cert_file {
                out.push(("ssl.certificate.location", path(cert)));
            }
            if let Some(key) = &tls.key_file {
                out.push(("ssl.key.location", path(key)));
            }
            let check = if tls.verify_hostname { "https" } else { "none" };
            out.push(("ssl.endpoint.identification.algorithm", check.to_string()));
        }
        if let Some(sasl) = &self.sasl {
            out.push(("sasl.mechanism", sasl.mechanism.clone()));
            out.push(("sasl.username", sasl.username.clone()));
            out.push(("sasl.password", sasl.password.clone()));
        }
        out
    }

    /// Refuses a mechanism librdkafka would take only at connect time, and
    /// TLS files that are not there.
    fn check_security(&self) -> Result<()> {
        if let Some(sasl) = &self.sasl {
            if !SASL_MECHANISMS.contains(&sasl.mechanism.as_str()) {
                bail!(
                    "[kafka.sasl] mechanism = {:?}: use one of {} (others through [kafka] properties)",
                    sasl.mechanism,
                    SASL_MECHANISMS.join(", ")
                );
            }
        }
        if let Some(tls) = &self.tls {
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                bail!("[kafka.tls] cert_file and key_file go together (mutual TLS)");
            }
            for (key, file) in [
                ("ca_file", &tls.ca_file),
                ("cert_file", &tls.cert_file),
                ("key_file", &tls.key_file),
            ] {
                if let Some(file) = file {
                    if !file.is_file() {
                        bail!("[kafka.tls] {key} = {}: no such file", file.display());
                    }
                }
            }
        }
        Ok(())
    }
}

fn default_group() -> String {
    "floe".into()
}

/// `[registry]`: the Confluent-compatible schema registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// `[ingest]`: when to commit and what to do with bad messages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Commit a table's buffered changes once the oldest has waited this
    /// long, or, while they keep coming, this long after the table's last
    /// commit was cut (milliseconds, at least 200; see `cadence`).
    /// Default 10000.
    #[serde(default = "default_interval")]
    pub commit_interval_ms: u64,
    /// Or as soon as the table has this many change events buffered.
    /// Default 100000.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Or as soon as they come to this many bytes (as Kafka messages).
    /// Default 64 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Bytes buffered over all tables at which floe commits everything it
    /// holds, and pauses its partitions while a commit is still running
    /// (memory stays bounded however slow the lake is). Default 256 MiB.
    #[serde(default = "default_max_buffer_bytes")]
    pub max_buffer_bytes: usize,
    /// On SIGINT/SIGTERM, wait this long (seconds) for a running commit
    /// before giving it up; whatever it held is read again on restart.
    /// Default 30.
    #[serde(default = "default_stop_grace")]
    pub stop_grace_seconds: u64,
    /// A message that cannot be decoded: `fail` (default) stops floe,
    /// naming its topic, partition, offset and reason, without passing it;
    /// `dead_letter` writes its raw key and value bytes and the reason to
    /// the dead-letter table and goes on.
    #[serde(default)]
    pub on_error: OnError,
    /// The dead-letter table, `namespace.name`. Default `floe.dead_letters`.
    #[serde(default = "default_dead_letter_table")]
    pub dead_letter_table: String,
    /// Serve Prometheus `/metrics`, `/healthz` and `/readyz` on this
    /// address, e.g. `127.0.0.1:9464`. Default: not served.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// `[ingest.health]`: when `/healthz` says unhealthy.
    #[serde(default)]
    pub health: HealthRules,
    /// Debezium's signal table (`schema.table`, the connector's
    /// `signal.data.collection`): floe reads the incremental snapshots
    /// asked for there, and the chunk windows Debezium marks there, so
    /// that when one ends it deletes the rows it did not read. Default
    /// `public.debezium_signal`; `""` turns it off.
    #[serde(default = "default_signal_table")]
    pub signal_table: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Fail,
    DeadLetter,
}

fn default_signal_table() -> String {
    "public.debezium_signal".into()
}

fn default_dead_letter_table() -> String {
    "floe.dead_letters".into()
}

/// The shortest commit interval: below it the tick that checks for due
/// tables (50 ms) and a commit's own round trips to the catalog and the
/// store take most of the interval.
const MIN_COMMIT_INTERVAL_MS: u64 = 200;

fn default_interval() -> u64 {
    10_000
}

fn default_max_rows() -> usize {
    100_000
}

fn default_max_bytes() -> usize {
    64 << 20
}

fn default_max_buffer_bytes() -> usize {
    256 << 20
}

fn default_stop_grace() -> u64 {
    30
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            commit_interval_ms: default_interval(),
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
            max_buffer_bytes: default_max_buffer_bytes(),
            stop_grace_seconds: default_stop_grace(),
            on_error: OnError::default(),
            dead_letter_table: default_dead_letter_table(),
            metrics_listen: None,
            health: HealthRules::default(),
            signal_table: default_signal_table(),
        }
    }
}

const ENV_PREFIX: &str = "FLOE__";

impl FloeConfig {
    /// Reads `path`, applies `FLOE__...` overrides from the process
    /// environment, and checks the result.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        Self::parse(&text, std::env::vars())
            .with_context(|| format!("config file {}", path.display()))
    }

    /// Parses `text` with overrides from `env` (name, value) pairs.
    pub fn parse(text: &str, env: impl Iterator<Item = (String, String)>) -> Result<Self> {
        let doc = document(text, env)?;
        let config: FloeConfig = toml::Value::Table(doc).try_into()?;
        if config.kafka.topics.is_empty() && config.kafka.topic_regex.is_none() {
            bail!("[kafka] needs `topics` or `topic_regex`");
        }
        config.kafka.check_security()?;
        if config.ingest.dead_letter_table.split_once('.').is_none() {
            bail!("[ingest] dead_letter_table must be `namespace.name`");
        }
        if config.ingest.commit_interval_ms < MIN_COMMIT_INTERVAL_MS {
            bail!("[ingest] commit_interval_ms must be at least {MIN_COMMIT_INTERVAL_MS}");
        }
        if config.ingest.max_rows == 0 || config.ingest.max_bytes == 0 {
            bail!("[ingest] max_rows and max_bytes must be positive");
        }
        if let Some(listen) = &config.ingest.metrics_listen {
            // found at load, not when ingest first binds it
            use std::net::ToSocketAddrs;
            if listen.to_socket_addrs().is_err() {
                bail!(
                    "[ingest] metrics_listen = {listen:?} is not an address to listen on: \
                     use host:port, e.g. \"127.0.0.1:9464\""
                );
            }
        }
        config.maintain.validate().map_err(anyhow::Error::msg)?;
        check_tables(&config.lake)?;
        Ok(config)
    }
}

/// The file's TOML with `FLOE__...` overrides from `env` applied.
fn document(text: &str, env: impl Iterator<Item = (String, String)>) -> Result<toml::Table> {
    let mut doc: toml::Table = toml::from_str(text)?;
    for (name, value) in env {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
        // a secret is a string, whatever it looks like (`73194286`)
        let value = if crate::secrets::is_secret_key(path) {
            toml::Value::String(value)
        } else {
            parse_value(&value)
        };
        set(&mut doc, &keys, value).with_context(|| format!("environment override {name}"))?;
    }
    secrets_from_files(&mut doc, "")?;
    crate::secrets::keep_out_of_toml(&toml::Value::Table(doc.clone()));
    Ok(doc)
}

/// Replaces each `KEY_file = "path"` whose KEY names a secret
/// (`password_file`, `secret_access_key_file`, `token_file`, and
/// `"sasl.password_file"` among Kafka properties) with `KEY` set to the
/// file's content, without its final newline: the way container secrets
/// and Kubernetes mount them. Setting both is refused.
fn secrets_from_files(table: &mut toml::Table, at: &str) -> Result<()> {
    let named: Vec<String> = table
        .iter()
        .filter(|(k, v)| {
            v.is_str()
                && k.strip_suffix("_file")
                    .is_some_and(crate::secrets::is_secret_key)
        })
        .map(|(k, _)| k.clone())
        .collect();
    for file_key in named {
        let key = file_key.trim_end_matches("_file").to_string();
        let shown = format!("{at}{file_key}");
        if table.contains_key(&key) {
            bail!("{shown} and {at}{key} are both set: keep one");
        }
        let Some(toml::Value::String(path)) = table.remove(&file_key) else {
            continue;
        };
        let content = std::fs::read_to_string(&path)
            .with_context(|| format!("{shown}: cannot read {path}"))?;
        let secret = content.strip_suffix('\n').unwrap_or(&content);
        let secret = secret.strip_suffix('\r').unwrap_or(secret);
        if secret.is_empty() {
            bail!("{shown}: {path} is empty");
        }
        table.insert(key, toml::Value::String(secret.to_string()));
    }
    for (k, v) in table.iter_mut() {
        if let toml::Value::Table(inner) = v {
            secrets_from_files(inner, &format!("{at}{k}."))?;
        }
    }
    Ok(())
}

/// Only the `[lake]` section of a floe configuration file (with its
/// environment overrides), for commands that read the lake and nothing else.
pub fn load_lake(path: &Path) -> Result<LakeConfig> {
    let lake: LakeConfig = section(path, "lake")?
        .with_context(|| format!("config file {}: no [lake] section", path.display()))?;
    check_tables(&lake).with_context(|| format!("config file {}", path.display()))?;
    Ok(lake)
}

/// The per-table settings: names, partition syntax, merge policies.
fn check_tables(lake: &LakeConfig) -> Result<()> {
    let tables = &lake.tables;
    tables
        .merge
        .check()
        .map_err(|e| anyhow::anyhow!("[lake.tables.merge]: {e}"))?;
    tables
        .expire
        .check()
        .map_err(|e| anyhow::anyhow!("[lake.tables.expire]: {e}"))?;
    for (source, table) in &tables.by_source {
        if source.split('.').count() != 2 {
            bail!(
                "[lake.tables.\"{source}\"]: a source table is named `schema.table` \
                 (as in the Debezium topic prefix.schema.table), e.g. \"public.trips\""
            );
        }
        // the columns are known only once changes arrive; the syntax now
        for field in &table.partition {
            lakehouse::spec::partition::PartitionField::parse(field)
                .map_err(|e| anyhow::anyhow!("[lake.tables.\"{source}\"] partition: {e}"))?;
        }
        table
            .check_properties()
            .map_err(|e| anyhow::anyhow!("[lake.tables.\"{source}\"] properties: {e}"))?;
        if let Some(merge) = &table.merge {
            merge
                .check()
                .map_err(|e| anyhow::anyhow!("[lake.tables.\"{source}\".merge]: {e}"))?;
        }
        if let Some(expire) = &table.expire {
            expire
                .check()
                .map_err(|e| anyhow::anyhow!("[lake.tables.\"{source}\".expire]: {e}"))?;
        }
    }
    Ok(())
}

/// The `[maintain]` section (defaults when there is none), checked.
pub fn load_maintain(path: &Path) -> Result<MaintainConfig> {
    let config: MaintainConfig = section(path, "maintain")?.unwrap_or_default();
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
    Ok(config)
}

/// One section of the file, with the environment overrides applied.
fn section<T: serde::de::DeserializeOwned>(path: &Path, name: &str) -> Result<Option<T>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let mut doc = document(&text, std::env::vars())
        .with_context(|| format!("config file {}", path.display()))?;
    doc.remove(name)
        .map(|value| {
            value
                .try_into()
                .with_context(|| format!("config file {}: [{name}]", path.display()))
        })
        .transpose()
}

fn parse_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

fn set(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<()> {
    match keys {
        [] => bail!("empty key"),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(inner) => set(inner, rest, value),
                _ => bail!("{first} is not a section"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [kafka]
        bootstrap_servers = "127.0.0.1:9092"
        topic_regex = 'taxi\.public\..*'
        [registry]
        url = "http://127.0.0.1:8081"
    "#;

    #[test]
    fn environment_overrides_any_key() {
        let env = [
            ("FLOE__KAFKA__BOOTSTRAP_SERVERS", "broker:29092"),
            ("FLOE__INGEST__COMMIT_INTERVAL_MS", "2000"),
            ("FLOE__LAKE__WAREHOUSE", "s3://lake/wh"),
            ("FLOE__LAKE__S3__PATH_STYLE", "true"),
            ("UNRELATED", "x"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let c = FloeConfig::parse(MINIMAL, env.into_iter()).unwrap();
        assert_eq!(c.kafka.bootstrap_servers, "broker:29092");
        assert_eq!(c.ingest.commit_interval_ms, 2000);
        assert_eq!(c.lake.warehouse, lakehouse::Warehouse::from("s3://lake/wh"));
        assert_eq!(c.lake.s3.path_style, Some(true));
        assert_eq!(c.kafka.group_id, "floe");
    }

    #[test]
    fn the_example_file_is_valid() {
        let c =
            FloeConfig::parse(include_str!("../floe.example.toml"), std::iter::empty()).unwrap();
        assert_eq!(c.kafka.topic_regex.as_deref(), Some(r"taxi\.public\..*"));
        assert_eq!(
            c.lake.tables.by_source["public.trips"].partition,
            ["day(pickup_datetime)"]
        );
        use lakehouse::maintain::{Operation, TablePolicy};
        assert_eq!(
            c.maintain
                .schedule(Operation::Orphans, "taxi_cdc.trips")
                .as_deref(),
            Some("0 30 3 * * *")
        );
        let TablePolicy::Expire(expire) = c.maintain.policy(Operation::Expire, "a.b") else {
            panic!("an expire policy")
        };
        assert_eq!(expire.retain_last, 10);
    }

    #[test]
    fn table_settings_are_checked_when_the_file_is_loaded() {
        for (table, expect) in [
            (
                r#""public.trips" = { partition = ["dya(pickup_datetime)"] }"#,
                "unknown transform",
            ),
            (
                r#""public.trips" = { partition = ["day(pickup_datetime"] }"#,
                "expected `transform(column)`",
            ),
            (r#""trips" = { partition = ["day(x)"] }"#, "schema.table"),
            (
                r#""public.trips" = { properties = { "write.delete.granularity" = "row" } }"#,
                "expected \"partition\" or \"file\"",
            ),
        ] {
            let text = format!("{MINIMAL}\n[lake.tables]\n{table}\n");
            let err = FloeConfig::parse(&text, std::iter::empty()).unwrap_err();
            assert!(format!("{err:#}").contains(expect), "{table}: {err:#}");
        }
    }

    #[test]
    fn a_too_young_orphan_age_is_refused() {
        let text = format!("{MINIMAL}\n[maintain.orphans]\nolder_than = \"10m\"\n");
        let err = FloeConfig::parse(&text, std::iter::empty()).unwrap_err();
        assert!(format!("{err:#}").contains("at least 1h"), "{err:#}");
    }

    #[test]
    fn the_docker_compose_config_is_valid() {
        let c = FloeConfig::parse(include_str!("../docker/floe.toml"), std::iter::empty()).unwrap();
        assert_eq!(c.kafka.bootstrap_servers, "kafka:9092");
        assert!(matches!(
            c.lake.catalog,
            lakehouse::CatalogConfig::Sql { .. }
        ));
        assert_eq!(c.ingest.on_error, OnError::DeadLetter);
    }

    #[test]
    fn mistakes_are_named() {
        let typo = MINIMAL.replace("[registry]", "[registry]\nulr = 'x'");
        let err = FloeConfig::parse(&typo, std::iter::empty()).unwrap_err();
        assert!(format!("{err:#}").contains("ulr"), "{err:#}");
        let fast = FloeConfig::parse(
            MINIMAL,
            [("FLOE__INGEST__COMMIT_INTERVAL_MS".into(), "10".into())].into_iter(),
        )
        .unwrap_err();
        assert!(fast.to_string().contains("at least 200"), "{fast}");
        let quick = FloeConfig::parse(
            MINIMAL,
            [("FLOE__INGEST__COMMIT_INTERVAL_MS".into(), "200".into())].into_iter(),
        )
        .unwrap();
        assert_eq!(quick.ingest.commit_interval_ms, 200);
        for bad in ["9464", "localhost", "127.0.0.1:port", "nonsense:99999"] {
            let text = format!("{MINIMAL}\n[ingest]\nmetrics_listen = {bad:?}\n");
            let err = FloeConfig::parse(&text, std::iter::empty()).unwrap_err();
            assert!(err.to_string().contains("metrics_listen"), "{bad}: {err}");
        }
        for good in [
            "127.0.0.1:9464",
            "[::1]:9464",
            "localhost:9464",
            "0.0.0.0:0",
        ] {
            let text = format!("{MINIMAL}\n[ingest]\nmetrics_listen = {good:?}\n");
            FloeConfig::parse(&text, std::iter::empty()).unwrap();
        }
    }

    #[test]
    fn merge_policies_by_default_and_per_table() {
        let text = format!(
            "{MINIMAL}\n[lake.tables.merge]\nmax_files = 8\ncpu_share = 0.25\n\
             [lake.tables.\"public.trips\"]\npartition = [\"day(pickup_datetime)\"]\n\
             merge = {{ enabled = false }}\n"
        );
        let c = FloeConfig::parse(&text, std::iter::empty()).unwrap();
        let tables = &c.lake.tables;
        assert_eq!(tables.merge_policy("public.zones").max_files, 8);
        assert!(tables.merge_policy("public.zones").enabled);
        assert_eq!(tables.merge_policy("public.zones").cpu_share, 0.25);
        assert_eq!(tables.merge_policy("public.trips").cpu_share, 0.5);
        assert!(!tables.merge_policy("public.trips").enabled);
        // the table's section replaces the default whole
        assert_eq!(tables.merge_policy("public.trips").max_files, 12);
        for (bad, named) in [
            ("[lake.tables.merge]\nmax_files = 1", "max_files"),
            ("[lake.tables.merge]\nfanout = 1", "fanout"),
            (
                "[lake.tables.merge]\nmax_deleted_share = 0.0",
                "max_deleted_share",
            ),
            ("[lake.tables.merge]\ncpu_share = 0.0", "cpu_share"),
            ("[lake.tables.merge]\ncpu_share = -1.0", "cpu_share"),
            (
                "[lake.tables.\"public.trips\"]\nmerge = { target_file_bytes = 0 }",
                "public.trips",
            ),
            ("[lake.tables.merge]\nmax_filez = 3", "max_filez"),
        ] {
            let text = format!("{MINIMAL}\n{bad}\n");
            let err = FloeConfig::parse(&text, std::iter::empty()).unwrap_err();
            assert!(format!("{err:#}").contains(named), "{bad}: {err:#}");
        }
    }

    #[test]
    fn snapshot_expiry_by_default_and_per_table() {
        let c = FloeConfig::parse(MINIMAL, std::iter::empty()).unwrap();
        let default = c.lake.tables.expiry("public.zones");
        assert!(default.enabled);
        assert_eq!(
            (
                default.keep_minutes,
                default.keep_last,
                default.max_snapshots
            ),
            (60, 100, 200)
        );
        let text = format!(
            "{MINIMAL}\n[lake.tables.expire]\nkeep_minutes = 10\n\
             [lake.tables.\"public.trips\"]\nexpire = {{ enabled = false }}\n"
        );
        let c = FloeConfig::parse(&text, std::iter::empty()).unwrap();
        let tables = &c.lake.tables;
        assert_eq!(tables.expiry("public.zones").keep_minutes, 10);
        assert!(!tables.expiry("public.trips").enabled);
        for (bad, named) in [
            ("[lake.tables.expire]\nevery_commits = 0", "every_commits"),
            ("[lake.tables.expire]\nkeep_last = 0", "keep_last"),
            (
                "[lake.tables.expire]\nkeep_last = 20\nmax_snapshots = 10",
                "max_snapshots",
            ),
            (
                "[lake.tables.\"public.trips\"]\nexpire = { keep_last = 0 }",
                "public.trips",
            ),
            ("[lake.tables.expire]\nkeep_minute = 3", "keep_minute"),
        ] {
            let text = format!("{MINIMAL}\n{bad}\n");
            let err = FloeConfig::parse(&text, std::iter::empty()).unwrap_err();
            assert!(format!("{err:#}").contains(named), "{bad}: {err:#}");
        }
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = std::env::temp_dir().join(format!("floe-secret-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let registry = dir.join("registry");
        std::fs::write(&registry, "from-a-file\n").unwrap();
        let kafka = dir.join("kafka");
        std::fs::write(&kafka, "kafka-from-file").unwrap();
        let text = format!(
            "[kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\ntopic_regex = 'x'\n\
             properties = {{ \"sasl.password_file\" = {kafka:?} }}\n\
             [registry]\nurl = \"http://r\"\nusername = \"u\"\npassword_file = {registry:?}\n",
            kafka = kafka.display().to_string(),
            registry = registry.display().to_string(),
        );
        let c = FloeConfig::parse(&text, std::iter::empty()).unwrap();
        assert_eq!(c.registry.password.as_deref(), Some("from-a-file"));
        assert_eq!(
            c.kafka.properties.get("sasl.password").map(String::as_str),
            Some("kafka-from-file")
        );
        // the value stays out of output from then on
        assert_eq!(crate::secrets::redact("kafka-from-file"), "***");
        // both, a missing file, an empty one: refused, naming the key
        for (bad, named) in [
            (
                text.replace("\npassword_file", "\npassword = \"x\"\npassword_file"),
                "both set",
            ),
            (
                text.replace(&registry.display().to_string(), "/nonexistent/secret"),
                "registry.password_file: cannot read /nonexistent/secret",
            ),
        ] {
            let err = FloeConfig::parse(&bad, std::iter::empty()).unwrap_err();
            assert!(format!("{err:#}").contains(named), "{err:#}");
        }
        std::fs::write(&registry, "\n").unwrap();
        let err = FloeConfig::parse(&text, std::iter::empty()).unwrap_err();
        assert!(format!("{err:#}").contains("is empty"), "{err:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tls_and_sasl_keys_become_librdkafka_properties() {
        let dir = std::env::temp_dir().join(format!("floe-kafka-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let base = "[kafka]\nbootstrap_servers = \"b:9093\"\ntopics = [\"t\"]\n\
                    [registry]\nurl = \"http://r\"\n";
        let parse = |extra: &str| FloeConfig::parse(&format!("{base}{extra}"), std::iter::empty());
        let props = |c: &FloeConfig| {
            c.kafka
                .security_properties()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        // neither: librdkafka's plaintext default, nothing set
        assert!(props(&parse("").unwrap()).is_empty());
        let both = parse(&format!(
            "[kafka.tls]\nca_file = {:?}\n[kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\n\
             username = \"floe\"\npassword = \"pw-1234\"\n",
            ca.display().to_string()
        ))
        .unwrap();
        assert_eq!(
            props(&both),
            [
                "security.protocol=SASL_SSL".to_string(),
                format!("ssl.ca.location={}", ca.display()),
                "ssl.endpoint.identification.algorithm=https".into(),
                "sasl.mechanism=SCRAM-SHA-512".into(),
                "sasl.username=floe".into(),
                "sasl.password=pw-1234".into(),
            ]
        );
        // the Debug form never shows the password
        assert!(!format!("{:?}", both.kafka).contains("pw-1234"));
        let tls = parse("[kafka.tls]\nverify_hostname = false\n").unwrap();
        assert_eq!(
            props(&tls),
            [
                "security.protocol=SSL",
                "ssl.endpoint.identification.algorithm=none"
            ]
        );
        let sasl =
            parse("[kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"u\"\npassword = \"p\"\n")
                .unwrap();
        assert_eq!(props(&sasl)[0], "security.protocol=SASL_PLAINTEXT");
        for (bad, named) in [
            (
                "[kafka.sasl]\nmechanism = \"GSSAPI\"\nusername = \"u\"\npassword = \"p\"\n"
                    .to_string(),
                "use one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
            ),
            (
                "[kafka.tls]\nca_file = \"/nonexistent/ca.pem\"\n".to_string(),
                "ca_file = /nonexistent/ca.pem: no such file",
            ),
            (
                format!("[kafka.tls]\ncert_file = {:?}\n", ca.display().to_string()),
                "go together",
            ),
        ] {
            let err = parse(&bad).unwrap_err();
            assert!(format!("{err:#}").contains(named), "{bad}: {err:#}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
