//! `floe ingest --check`: reach every endpoint and check the table
//! settings against what the topics carry, one verdict line each.
//!
//! Details (librdkafka's own messages among them) go to the log at debug
//! level, so the verdict stands alone at the default level; `--log debug`
//! shows them.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use ingest::avro::AvroSchema;
use ingest::envelope::EnvelopePlan;
use ingest::SchemaRegistryClient;
use lakehouse::Lake;
use rdkafka::consumer::Consumer;

use crate::config::FloeConfig;
use crate::service::{consumer, registry, subscription, ResumeContext};

/// How long the broker has to answer a metadata request.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// Verdict lines, counted.
#[derive(Default)]
struct Verdicts {
    failed: usize,
}

impl Verdicts {
    fn ok(&self, what: &str, detail: &str) {
        println!("ok      {what}: {}", crate::secrets::redact(detail));
    }

    fn failed(&mut self, what: &str, why: &str) {
        self.failed += 1;
        println!("FAILED  {what}: {}", crate::secrets::redact(why));
    }

    fn warn(&self, what: &str, why: &str) {
        println!("warn    {what}: {}", crate::secrets::redact(why));
    }

    fn report(&mut self, what: &str, result: Result<String>) {
        match result {
            Ok(detail) => self.ok(what, &detail),
            Err(e) => self.failed(what, &format!("{e:#}")),
        }
    }
}

pub async fn check(config: &FloeConfig) -> Result<()> {
    let mut verdicts = Verdicts::default();
    let topics = kafka_topics(config).await;
    let kafka = topics.as_ref().map(|t| {
        let shown: Vec<&str> = t.iter().take(5).map(String::as_str).collect();
        let more = t.len().saturating_sub(shown.len());
        format!(
            "{} ({} subscribed topics{}{}{})",
            config.kafka.bootstrap_servers,
            t.len(),
            if t.is_empty() { "" } else { ": " },
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    });
    verdicts.report("kafka", kafka.map_err(|e| anyhow::anyhow!("{e:#}")));
    let registry = registry(config)?;
    let reachable = registry
        .check()
        .await
        .map(|()| config.registry.url.clone())
        .map_err(anyhow::Error::new);
    let registry_up = reachable.is_ok();
    verdicts.report("schema registry", reachable);
    let lake = async {
        let lake = Lake::open(&config.lake).await?;
        let namespaces = lake.catalog().list_namespaces(None).await?;
        Ok(format!("{} namespaces", namespaces.len()))
    }
    .await;
    verdicts.report("catalog", lake);
    verdicts.report("storage", probe_storage(config).await);
    match (&topics, registry_up) {
        (Ok(topics), true) => check_tables(config, topics, &registry, &mut verdicts).await,
        _ => println!("skipped tables: needs Kafka and the schema registry"),
    }
    if verdicts.failed > 0 {
        anyhow::bail!("{} check(s) failed", verdicts.failed);
    }
    Ok(())
}

/// Writes, reads back and deletes a probe object in the warehouse,
/// naming the step that fails (connection, bucket, credentials).
async fn probe_storage(config: &FloeConfig) -> Result<String> {
    let location = config
        .lake
        .warehouse
        .location()
        .context("the warehouse location")?;
    let s3 = config.lake.s3.resolve(|k| std::env::var(k).ok());
    let store = lakehouse::spec::store::Store::open(&location, &s3)?;
    let took = store.probe().await?;
    Ok(format!(
        "{location}: wrote, read back and deleted a probe object in {} ms",
        took.as_millis()
    ))
}

/// The topics the subscription matches, or why the brokers did not say.
async fn kafka_topics(config: &FloeConfig) -> Result<Vec<String>> {
    let heard = Arc::new(Mutex::new(None));
    let context = ResumeContext {
        resume: Arc::default(),
        assigned: Arc::default(),
        metrics: Arc::default(),
        repeats: Arc::default(),
        heard: Some(heard.clone()),
    };
    let consumer = consumer(config, context)?;
    let metadata =
        tokio::task::spawn_blocking(move || consumer.fetch_metadata(None, KAFKA_TIMEOUT)).await?;
    let metadata = metadata.map_err(|e| {
        // librdkafka's own account says why (refused, TLS, auth, ...)
        let why = heard
            .lock()
            .ok()
            .and_then(|h| h.clone())
            .unwrap_or_else(|| e.to_string());
        anyhow::anyhow!(
            "{}: no answer from {} within {} s: {why}",
            kafka_step(&why),
            config.kafka.bootstrap_servers,
            KAFKA_TIMEOUT.as_secs()
        )
    })?;
    let patterns = subscription(&config.kafka);
    let matchers: Vec<Matcher> = patterns
        .iter()
        .map(|p| Matcher::new(p))
        .collect::<Result<_>>()?;
    let mut out: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|name| matchers.iter().any(|m| m.matches(name)))
        .collect();
    out.sort();
    Ok(out)
}

/// The step of reaching the brokers that failed, from librdkafka's
/// account of it: what the user has to fix.
fn kafka_step(why: &str) -> &'static str {
    let why = why.to_ascii_lowercase();
    if why.contains("sasl") || why.contains("authentication") {
        "authentication (mechanism, user name, password)"
    } else if why.contains("ssl") || why.contains("tls") || why.contains("certificate") {
        "TLS handshake (certificate, host name)"
    } else {
        "TCP connection (host, port, a broker that is down)"
    }
}

/// A subscription entry: a topic name, or a `^`-anchored pattern.
enum Matcher {
    Name(String),
    Pattern(regex::Regex),
}

impl Matcher {
    fn new(entry: &str) -> Result<Self> {
        Ok(if entry.starts_with('^') {
            Self::Pattern(
                regex::Regex::new(entry)
                    .with_context(|| format!("[kafka] topic_regex {entry:?}"))?,
            )
        } else {
            Self::Name(entry.to_string())
        })
    }

    fn matches(&self, topic: &str) -> bool {
        match self {
            Self::Name(n) => n == topic,
            Self::Pattern(p) => p.is_match(topic),
        }
    }
}

/// The source table (`schema.table`) a Debezium topic
/// (`prefix.schema.table`) carries.
fn source_of(topic: &str) -> Option<String> {
    let mut parts = topic.rsplitn(3, '.');
    let table = parts.next()?;
    let schema = parts.next()?;
    Some(format!("{schema}.{table}"))
}

/// `[lake.tables]` against the subscribed topics: a key no topic carries
/// is warned about (it would be silently unused), and each partition spec
/// is built on the columns of its topic's latest registered schema.
async fn check_tables(
    config: &FloeConfig,
    topics: &[String],
    registry: &SchemaRegistryClient,
    verdicts: &mut Verdicts,
) {
    let tables = &config.lake.tables.by_source;
    let carried: BTreeSet<String> = topics.iter().filter_map(|t| source_of(t)).collect();
    for source in tables.keys().filter(|s| !carried.contains(*s)) {
        let known: Vec<&str> = carried.iter().map(String::as_str).collect();
        verdicts.warn(
            &format!("[lake.tables.\"{source}\"]"),
            &format!(
                "no subscribed topic carries this source table, so it is not used (they carry: {})",
                if known.is_empty() {
                    "nothing yet".to_string()
                } else {
                    known.join(", ")
                }
            ),
        );
    }
    let mut checked = 0;
    for topic in topics {
        let Some(source) = source_of(topic) else {
            continue;
        };
        let Some(table) = tables.get(&source).filter(|t| !t.partition.is_empty()) else {
            continue;
        };
        let what = format!("[lake.tables.\"{source}\"] partition");
        match partition_on_topic(registry, topic, &table.partition).await {
            Ok(true) => checked += 1,
            Ok(false) => verdicts.warn(
                &what,
                &format!("no schema registered for {topic}-value yet: checked when changes arrive"),
            ),
            Err(e) => verdicts.failed(&what, &format!("{e:#}")),
        }
    }
    verdicts.ok(
        "tables",
        &format!(
            "{} source tables on the subscribed topics; {checked} partition specs match their columns",
            carried.len()
        ),
    );
}

/// Builds `partition` on the columns of `topic`'s latest value schema;
/// `false` when nothing is registered yet.
async fn partition_on_topic(
    registry: &SchemaRegistryClient,
    topic: &str,
    partition: &[String],
) -> Result<bool> {
    let Some(text) = registry.latest_schema(&format!("{topic}-value")).await? else {
        return Ok(false);
    };
    let schema = AvroSchema::parse(&text).context("the registered schema")?;
    let plan = EnvelopePlan::compile(&schema).context("the registered schema")?;
    let fields = plan.row_fields().context("the registered schema")?;
    let iceberg = lakehouse::table_schema(&fields, &[])?;
    lakehouse::spec::partition::partition_spec(&iceberg, partition)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_their_source_table_and_subscriptions_match() {
        assert_eq!(
            source_of("taxi.public.trips").as_deref(),
            Some("public.trips")
        );
        assert_eq!(source_of("trips"), None);
        let regex = Matcher::new(r"^taxi\.public\..*").unwrap();
        assert!(regex.matches("taxi.public.trips"));
        assert!(!regex.matches("other.public.trips"));
        let name = Matcher::new("taxi.public.trips").unwrap();
        assert!(name.matches("taxi.public.trips") && !name.matches("taxi.public.trip"));
    }
}
