//! `floe ingest`: Kafka → decoded change batches → Iceberg commits.
//!
//! ```text
//!  rdkafka consumer (one member of the group; each partition assigned
//!  │ starts after the offsets the tables hold: assignment.rs)
//!  ▼
//!  ChangeDecoder (schemas from the registry): buffers per table; a table
//!  │ whose oldest change is commit_interval_ms old (or, while its changes
//!  │ keep coming, one interval after its last cut: cadence.rs), or that
//!  │ holds max_rows or max_bytes, is flushed
//!  ▼
//!  Applier, in the background while the next messages decode: per batch,
//!  one TableWriter::apply (one Iceberg commit carrying the Kafka offsets)
//!  ▼
//!  group offsets committed after the Iceberg commits (for lag tools)
//! ```
//!
//! Memory is bounded: at `max_buffer_bytes` buffered, everything is
//! flushed, and while the previous apply still runs the assigned
//! partitions are paused (so librdkafka stops fetching too) until it ends.
//!
//! A message that cannot be decoded stops the service with an error naming
//! its topic, partition and offset (nothing after it is committed, so a
//! restart resumes at it), or with `on_error = "dead_letter"` goes to the
//! dead-letter table with its raw bytes. A batch that cannot be applied
//! for a reason waiting cannot fix stops the service.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use iceberg::{NamespaceIdent, TableIdent};
use ingest::{ChangeDecoder, RawMessage, RegistryConfig, SchemaRegistryClient};
use lakehouse::dead_letter::{DeadLetter, DeadLetterTable};
use lakehouse::{Lake, TableFiles};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::applier::{Applied, Applier, Rejected};
use crate::assignment;
use crate::cadence::Cadence;
use crate::config::{FloeConfig, OnError};
use crate::metrics::{self, Metrics, Stage};
use crate::refetch::refetch;
use crate::repeats::{held_back, Repeats};

#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    /// The configuration file (see README, "floe ingest").
    #[arg(long, env = "FLOE_CONFIG", default_value = "floe.toml")]
    config: PathBuf,

    /// Validate the file and reach every endpoint (Kafka, schema registry,
    /// catalog and storage), say which one fails, and exit.
    #[arg(long)]
    check: bool,

    /// Stop, after committing, once no message has arrived for this many
    /// seconds after the first partition assignment (for one-off catch-up
    /// runs and tests). Joining the consumer group is given this long, and
    /// at least 30 s; if no partition was ever assigned by then (Kafka
    /// unreachable, say), floe stops with an error. Default: run until
    /// SIGINT or SIGTERM.
    #[arg(long, value_name = "SECONDS")]
    stop_when_idle: Option<u64>,
}

pub fn run(args: IngestArgs) -> Result<()> {
    let config = FloeConfig::load(&args.config)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        if args.check {
            crate::check::check(&config).await
        } else {
            ingest(config, args.stop_when_idle.map(Duration::from_secs)).await
        }
    })
}

/// Where each (topic, partition) resumes: the next offset after the last
/// one a table holds.
type ResumeOffsets = Arc<Mutex<HashMap<(String, i32), i64>>>;

/// Seeks newly assigned partitions to the offsets the tables hold, and
/// reports librdkafka's per-partition lag.
pub(crate) struct ResumeContext {
    pub(crate) resume: ResumeOffsets,
    /// Set once the group has assigned partitions.
    pub(crate) assigned: Arc<AtomicBool>,
    pub(crate) metrics: Arc<Metrics>,
    /// librdkafka's and the consumer's repeated failures, said once a window.
    pub(crate) repeats: Arc<Repeats>,
    /// For `--check`: librdkafka's warnings and errors are kept here (the
    /// last one) and logged at debug level only, so the verdict stands
    /// alone and can name the reason.
    pub(crate) heard: Option<Arc<Mutex<Option<String>>>>,
}

impl ResumeContext {
    /// Keeps `message` when checking; whether it was kept.
    fn keep(&self, message: String) -> bool {
        let Some(heard) = &self.heard else {
            return false;
        };
        tracing::debug!(target: "librdkafka", "{message}");
        if let Ok(mut h) = heard.lock() {
            // a TLS or SASL failure is what to fix; the "brokers are down"
            // that follows it says less
            if names_tls_or_sasl(&message) || !h.as_deref().is_some_and(names_tls_or_sasl) {
                *h = Some(message);
            }
        }
        true
    }
}

/// Whether librdkafka's `message` is about TLS or SASL.
fn names_tls_or_sasl(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    ["ssl", "tls", "sasl", "certificate", "authentication"]
        .iter()
        .any(|word| message.contains(word))
}

impl ClientContext for ResumeContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        use RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning
                if self.keep(format!("{facility}: {message}")) => {}
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning => {
                // a broker that is down is reported at every reconnect
                let kind = format!("librdkafka {facility}");
                let Some(held) = self.repeats.note(&kind, Instant::now()) else {
                    return;
                };
                let held = held_back(held);
                if matches!(level, L::Warning) {
                    tracing::warn!(target: "librdkafka", "librdkafka {facility}: {message}{held}");
                } else {
                    tracing::error!(target: "librdkafka", "librdkafka {facility}: {message}{held}");
                }
            }
            L::Notice | L::Info => {
                tracing::info!(target: "librdkafka", "librdkafka {facility}: {message}")
            }
            L::Debug => tracing::debug!(target: "librdkafka", "librdkafka {facility}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if self.keep(reason.to_string()) {
            return;
        }
        let kind = format!("librdkafka error {error}");
        if let Some(held) = self.repeats.note(&kind, Instant::now()) {
            tracing::error!(target: "librdkafka", "librdkafka: {error}: {reason}{}", held_back(held));
        }
    }

    fn stats(&self, statistics: Statistics) {
        // bootstrap entries count too: before metadata they are all there is
        let up = statistics.brokers.values().any(|b| b.state == "UP");
        self.metrics.broker_reachable(up);
        let lag = statistics.topics.into_iter().flat_map(|(topic, t)| {
            t.partitions
                .into_iter()
                // -1 is librdkafka's internal unassigned partition; a lag of
                // -1 means no committed offset yet
                .filter(|(p, s)| *p >= 0 && s.consumer_lag >= 0)
                .map(move |(p, s)| ((topic.clone(), p), s.consumer_lag))
        });
        self.metrics.lag(lag);
    }
}

impl ConsumerContext for ResumeContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let held = self.resume.lock().map(|r| r.clone()).unwrap_or_default();
                assignment::seek_assigned(consumer, &held, tpl);
                self.assigned.store(true, Ordering::SeqCst);
                tracing::info!(partitions = tpl.count(), assigned = %assignment::describe(tpl), "partitions assigned");
                assignment::assign(consumer, tpl)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // what is buffered from them is still applied: the next
                // owner's commits and ours skip what the table holds
                tracing::info!(partitions = tpl.count(), revoked = %assignment::describe(tpl), "partitions revoked");
                assignment::revoke(consumer, tpl)
            }
            other => {
                tracing::error!("the consumer group's rebalance failed ({other:?}); giving up the partitions until the next one");
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!("partition assignment failed: {e}");
        }
    }
}

pub(crate) fn consumer(
    config: &FloeConfig,
    context: ResumeContext,
) -> Result<StreamConsumer<ResumeContext>> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set("group.id", &config.kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // a new source table's topic (matched by topic_regex) is picked up
        // within seconds, not librdkafka's default five minutes
        .set("topic.metadata.refresh.interval.ms", "5000")
        // per-partition lag for /metrics
        .set("statistics.interval.ms", "5000");
    for (k, v) in config.kafka.security_properties() {
        client.set(k, v);
    }
    for (k, v) in &config.kafka.properties {
        client.set(k, v);
    }
    let consumer: StreamConsumer<ResumeContext> =
        client.create_with_context(context).map_err(|e| match e {
            // rdkafka's message repeats the value, which may be a password
            // under a misspelled key: name the key and librdkafka's reason
            rdkafka::error::KafkaError::ClientConfig(_, reason, key, _value) => anyhow::anyhow!(
                "cannot create the Kafka consumer: [kafka] properties {key:?}: {reason}"
            ),
            other => anyhow::Error::new(other).context("cannot create the Kafka consumer"),
        })?;
    let topics = subscription(&config.kafka);
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&refs)
        .with_context(|| format!("cannot subscribe to {topics:?}"))?;
    Ok(consumer)
}

/// The topic names and the `^`-anchored pattern librdkafka subscribes to.
pub(crate) fn subscription(kafka: &crate::config::KafkaConfig) -> Vec<String> {
    let mut topics: Vec<String> = kafka.topics.clone();
    if let Some(regex) = &kafka.topic_regex {
        topics.push(format!("^{}", regex.trim_start_matches('^')));
    }
    topics
}

pub(crate) fn registry(config: &FloeConfig) -> Result<SchemaRegistryClient> {
    let mut registry = RegistryConfig::new(config.registry.url.clone());
    if let (Some(u), Some(p)) = (&config.registry.username, &config.registry.password) {
        registry.basic_auth = Some((u.clone(), p.clone()));
    }
    SchemaRegistryClient::new(registry).context("schema registry client")
}

/// The offsets every table in the lake holds, as next offsets to read.
/// The tables that hold some are made known to `metrics`.
async fn stored_offsets(lake: &Lake, metrics: &Metrics) -> Result<HashMap<(String, i32), i64>> {
    let mut out = HashMap::new();
    for ns in lake.catalog().list_namespaces(None).await? {
        for ident in lake.catalog().list_tables(&ns).await? {
            let table = lake.catalog().load_table(&ident).await?;
            let offsets = lakehouse::transaction::KafkaOffsets::of(&table).into_map();
            if !offsets.is_empty() {
                metrics.known_table(&ident.to_string(), TableFiles::of(table.metadata()));
            }
            for ((topic, partition), last) in offsets {
                let next = out.entry((topic, partition)).or_insert(last + 1);
                *next = (*next).max(last + 1);
            }
        }
    }
    Ok(out)
}

/// Why the loop ended.
/// How long a message whose schema the registry could not give waits
/// between tries (the registry client has already retried with backoff).
const REGISTRY_RETRY: Duration = Duration::from_secs(5);

/// Pushes `message` again until the schema registry answers: an outage is
/// waited out, however long, with the main loop's heartbeat kept alive.
/// None when SIGTERM came meanwhile.
async fn wait_for_registry(
    decoder: &mut ChangeDecoder<impl ingest::SchemaSource>,
    message: &RawMessage<'_>,
    metrics: &Metrics,
    sigterm: &mut tokio::signal::unix::Signal,
) -> Option<Result<ingest::Pushed, ingest::DecodeError>> {
    let since = Instant::now();
    loop {
        metrics.error("registry");
        metrics.heartbeat();
        tracing::warn!(
            topic = message.topic,
            partition = message.partition,
            offset = message.offset,
            waited_s = since.elapsed().as_secs(),
            "the schema registry is unreachable; this message waits for it and nothing after \
             it is applied"
        );
        tokio::select! {
            _ = tokio::time::sleep(REGISTRY_RETRY) => {}
            _ = sigterm.recv() => return None,
        }
        let result = decoder.push(message).await;
        if !result.as_ref().is_err_and(|e| e.is_registry_outage()) {
            if result.is_ok() {
                tracing::info!(
                    topic = message.topic,
                    partition = message.partition,
                    offset = message.offset,
                    waited_s = since.elapsed().as_secs(),
                    "the schema registry answers again; resuming"
                );
            }
            return Some(result);
        }
    }
}

enum Stop {
    Idle,
    /// `--stop-when-idle` ran out before the group assigned anything.
    NeverAssigned,
    Signal(&'static str),
}

/// The least `--stop-when-idle` waits for a first partition assignment: a
/// restarted consumer can wait out a dead one's session (10 to 45 s by
/// default) before the group assigns it anything.
const JOIN_GRACE: Duration = Duration::from_secs(30);

async fn ingest(config: FloeConfig, stop_when_idle: Option<Duration>) -> Result<()> {
    let metrics = Arc::new(Metrics::new(config.ingest.health));
    // served from the start, so /readyz and /healthz can say where
    // start-up is while the catalog or the group is slow
    if let Some(listen) = &config.ingest.metrics_listen {
        metrics::serve(listen, metrics.clone()).await?;
    }
    let lake = Arc::new(Lake::open(&config.lake).await?);
    metrics.stage(Stage::ReadingOffsets);
    let resume: ResumeOffsets = Arc::new(Mutex::new(stored_offsets(&lake, &metrics).await?));
    metrics.stage(Stage::JoiningGroup);
    let assigned = Arc::new(AtomicBool::new(false));
    let repeats: Arc<Repeats> = Arc::default();
    let consumer = consumer(
        &config,
        ResumeContext {
            resume: resume.clone(),
            assigned: assigned.clone(),
            metrics: metrics.clone(),
            repeats: repeats.clone(),
            heard: None,
        },
    )?;
    let mut decoder = ChangeDecoder::new(registry(&config)?);
    let reject = config.ingest.on_error == OnError::DeadLetter;
    let reader = crate::refetch::KafkaReader {
        config: config.clone(),
    };
    let mut applier = Applier::new(lake.clone(), metrics.clone(), reject)
        .with_source_reader(Arc::new(reader))
        .with_signal_table(&config.ingest.signal_table);
    let dead_letters = match config.ingest.on_error {
        OnError::Fail => None,
        OnError::DeadLetter => {
            let (ns, name) = config
                .ingest
                .dead_letter_table
                .split_once('.')
                .context("dead_letter_table is namespace.name")?;
            let ident = TableIdent::new(NamespaceIdent::new(ns.to_string()), name.to_string());
            Some(DeadLetterTable::open(&lake, ident).await?)
        }
    };
    let settings = &config.ingest;
    let mut ledger = Ledger {
        config: &config,
        consumer: &consumer,
        resume: resume.clone(),
        dead_letters,
        metrics: metrics.clone(),
        totals: Totals::default(),
    };
    let mut cadence = Cadence::default();
    let mut paused = false;
    let mut was_assigned = false;
    let started = Instant::now();
    let mut last_message = started;
    tracing::info!(
        kafka = %config.kafka.bootstrap_servers,
        warehouse = %config.lake.warehouse,
        "floe ingest started"
    );
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    let stop = loop {
        let full = decoder.buffered_bytes() >= settings.max_buffer_bytes;
        let now = Instant::now();
        if !applier.busy() {
            let batches =
                decoder.flush_where(|topic, b| full || cadence.due(settings, topic, b, now));
            cadence.cut(batches.iter().map(|b| b.topic.as_str()), now);
            if !batches.is_empty() || applier.in_flight() {
                // an apply of nothing lands what the last one left in
                // flight, and merges
                applier.start(batches);
            }
        } else if decoder.any_where(|topic, b| full || cadence.due(settings, topic, b, now)) {
            // the running apply leaves its commits in flight: the next
            // one writes its files beside them
            applier.want_next();
        }
        let full = decoder.buffered_bytes() >= settings.max_buffer_bytes;
        if full != paused {
            set_paused(&consumer, full);
            paused = full;
            if full {
                tracing::warn!(
                    buffered_bytes = decoder.buffered_bytes(),
                    "buffers full while a commit runs: partitions paused"
                );
            } else {
                tracing::info!("partitions resumed");
            }
        }
        metrics.buffer(decoder.buffered_bytes(), paused);
        // the commit triggers are checked at least this often
        let tick = tokio::time::sleep(Duration::from_millis(50));
        tokio::select! {
            message = consumer.recv() => {
                // librdkafka reconnects and re-resolves by itself: a topic
                // that does not exist yet or a broker that is down is
                // reported, waited out and retried, never fatal
                // (librdkafka paces these by its reconnect backoff; a sleep
                // here would only leave a backlog of stale errors)
                let message = match message {
                    Ok(m) => m,
                    Err(e) => {
                        metrics.error("kafka");
                        let text = e.to_string();
                        if let Some(held) = repeats.note(&text, Instant::now()) {
                            tracing::warn!("Kafka: {text}; retrying{}", held_back(held));
                        }
                        continue;
                    }
                };
                if paused {
                    // from a partition assigned since the pause
                    set_paused(&consumer, true);
                }
                metrics.consumed();
                last_message = Instant::now();
                let raw = RawMessage::from(&message);
                let mut pushed = decoder.push(&raw).await;
                if pushed.as_ref().is_err_and(|e| e.is_registry_outage()) {
                    // an outage: the message waits for the registry, and
                    // nothing after it is read meanwhile
                    match wait_for_registry(&mut decoder, &raw, &metrics, &mut sigterm).await {
                        Some(result) => pushed = result,
                        None => break Stop::Signal("SIGTERM"),
                    }
                }
                let Err(e) = pushed else {
                    continue;
                };
                metrics.error("decode");
                if !e.is_message_fault() {
                    // the registry refuses floe's credentials: the message
                    // is fine, so it must not become a dead letter; a
                    // restart resumes at it (nothing after it is committed)
                    return Err(anyhow::Error::new(e).context(
                        "the schema registry could not be used (nothing after this message is \
                         committed; fix the registry settings and restart floe)",
                    ));
                }
                if ledger.dead_letters.is_none() {
                    return Err(anyhow::Error::new(e).context(
                        "cannot decode a message (nothing after it is committed; fix the cause \
                         and restart, or set [ingest] on_error = \"dead_letter\")",
                    ));
                }
                // what came before it is committed first, so the letter's
                // offset never runs ahead of unapplied events
                let applied = applier.apply_now(decoder.flush()).await?;
                ledger.settle(applied).await?;
                let letter = DeadLetter {
                    topic: message.topic().to_string(),
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                    error: e.to_string(),
                    recorded_at_us: now_us(),
                };
                tracing::error!(topic = %letter.topic, partition = letter.partition, offset = letter.offset, "undecodable message sent to the dead-letter table: {e}");
                ledger.dead_letter(vec![letter]).await?;
            }
            applied = applier.finished(), if applier.busy() => {
                ledger.settle(applied?).await?;
            }
            _ = tick => {
                metrics.heartbeat();
                if !was_assigned && assigned.load(Ordering::SeqCst) {
                    was_assigned = true;
                    metrics.stage(Stage::Consuming);
                    // idleness counts from the first assignment: joining
                    // the group can take longer than the idle window, and
                    // the first fetch after it is not instant either
                    last_message = Instant::now();
                }
                if let Some(idle) = stop_when_idle {
                    if was_assigned && last_message.elapsed() >= idle {
                        break Stop::Idle;
                    }
                    if !was_assigned && started.elapsed() >= idle.max(JOIN_GRACE) {
                        break Stop::NeverAssigned;
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => break Stop::Signal("SIGINT"),
            _ = sigterm.recv() => break Stop::Signal("SIGTERM"),
        }
    };
    // commit what is buffered; after a signal only for so long, since an
    // outage could make it wait for ever (what is given up is read again)
    let drain = async {
        let applied = applier.finished().await?;
        ledger.settle(applied).await?;
        let applied = applier.apply_now(decoder.flush()).await?;
        ledger.settle(applied).await?;
        anyhow::Ok(())
    };
    match stop {
        Stop::NeverAssigned => {
            anyhow::bail!(
                "no partition was assigned in {} s (--stop-when-idle): is Kafka reachable at {} \
                 and does a topic match {}?",
                started.elapsed().as_secs(),
                config.kafka.bootstrap_servers,
                subscription(&config.kafka).join(", ")
            );
        }
        Stop::Idle => {
            tracing::info!("idle: stopping");
            drain.await?;
        }
        Stop::Signal(signal) => {
            let grace = Duration::from_secs(settings.stop_grace_seconds);
            tracing::info!("{signal}: stopping (a second signal stops at once)");
            // a second SIGINT or SIGTERM gives up the wait, as the grace
            // running out does
            let finished = tokio::select! {
                done = tokio::time::timeout(grace, drain) => done.is_ok(),
                _ = tokio::signal::ctrl_c() => false,
                _ = sigterm.recv() => false,
            };
            if !finished {
                applier.abandon();
                tracing::warn!(
                    grace_seconds = grace.as_secs(),
                    "the last commit was given up before it finished; \
                     its changes are read again on restart"
                );
            }
        }
    }
    // leave the group now, so a restarted floe is assigned at once
    consumer.unsubscribe();
    let totals = &ledger.totals;
    eprintln!(
        "floe ingest: {} events applied in {} commits to {} tables; {} dead letters",
        totals.events,
        totals.commits,
        applier.tables(),
        totals.dead_letters
    );
    Ok(())
}

/// Pauses (or resumes) every assigned partition. librdkafka then stops
/// fetching them and, on resume, goes on from the next unread offset.
fn set_paused(consumer: &StreamConsumer<ResumeContext>, pause: bool) {
    let result = consumer.assignment().and_then(|tpl| {
        if pause {
            consumer.pause(&tpl)
        } else {
            consumer.resume(&tpl)
        }
    });
    if let Err(e) = result {
        tracing::warn!("cannot pause or resume partitions: {e}");
    }
}

#[derive(Default)]
struct Totals {
    events: usize,
    commits: usize,
    dead_letters: usize,
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Where finished work is accounted for: rejected batches and undecodable
/// messages go to the dead-letter table; then a partition reassigned later
/// resumes after what was settled, and the consumer group's offsets follow
/// (for lag tools).
struct Ledger<'a> {
    config: &'a FloeConfig,
    consumer: &'a StreamConsumer<ResumeContext>,
    resume: ResumeOffsets,
    dead_letters: Option<DeadLetterTable>,
    metrics: Arc<Metrics>,
    totals: Totals,
}

impl Ledger<'_> {
    async fn settle(&mut self, mut applied: Applied) -> Result<()> {
        // one letter per offset of each rejected batch, so moving past the
        // letters moves past the batch
        for rejected in std::mem::take(&mut applied.rejected) {
            let letters = self.letters_for(&rejected).await?;
            self.dead_letter(letters).await?;
        }
        self.committed(applied);
        Ok(())
    }

    /// Records `letters` and moves past them.
    async fn dead_letter(&mut self, letters: Vec<DeadLetter>) -> Result<()> {
        self.record(&letters).await?;
        let mut passed = Applied::default();
        for l in &letters {
            let next = passed
                .next_offsets
                .entry((l.topic.clone(), l.partition))
                .or_insert(l.offset + 1);
            *next = (*next).max(l.offset + 1);
        }
        self.committed(passed);
        Ok(())
    }

    async fn record(&mut self, letters: &[DeadLetter]) -> Result<()> {
        let table = self
            .dead_letters
            .as_mut()
            .context("a dead letter without a dead-letter table")?;
        table
            .record(letters)
            .await
            .context("cannot write the dead-letter table")?;
        self.totals.dead_letters += letters.len();
        for _ in letters {
            self.metrics.error("dead_letter");
        }
        Ok(())
    }

    /// The raw messages of a rejected batch, read back from Kafka; an
    /// offset the broker no longer has still gets its letter, without bytes.
    async fn letters_for(&self, rejected: &Rejected) -> Result<Vec<DeadLetter>> {
        let config = self.config.clone();
        let (topic, ranges) = (rejected.topic.clone(), rejected.offsets.clone());
        let copies = tokio::task::spawn_blocking(move || refetch(&config, &topic, &ranges))
            .await
            .context("the read-back task failed")??;
        let mut letters = Vec::new();
        for r in &rejected.offsets {
            for offset in r.first..=r.last {
                let copy = copies
                    .iter()
                    .find(|c| c.partition == r.partition && c.offset == offset);
                let error = match copy {
                    Some(_) => rejected.error.clone(),
                    None => format!("{} (raw bytes no longer in Kafka)", rejected.error),
                };
                letters.push(DeadLetter {
                    topic: rejected.topic.clone(),
                    partition: r.partition,
                    offset,
                    key: copy.and_then(|c| c.key.clone()),
                    value: copy.and_then(|c| c.value.clone()),
                    error,
                    recorded_at_us: now_us(),
                });
            }
        }
        Ok(letters)
    }

    fn committed(&mut self, applied: Applied) {
        self.totals.events += applied.events;
        self.totals.commits += applied.commits;
        if applied.next_offsets.is_empty() {
            return;
        }
        lakehouse::fault::point("ingest.committed");
        if let Ok(mut resume) = self.resume.lock() {
            resume.extend(applied.next_offsets.clone());
        }
        // only for partitions still ours: one the group has moved to
        // another instance may be further on there already
        let ours = self.consumer.assignment().unwrap_or_default();
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &applied.next_offsets {
            if ours.find_partition(topic, *partition).is_none() {
                continue;
            }
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
                tracing::warn!("offset list: {e}");
            }
        }
        // group offsets are for lag tools only (tables are the source of
        // truth), so a failure to commit them is logged, not fatal
        if tpl.count() == 0 {
            return;
        }
        let result: KafkaResult<()> = self
            .consumer
            .commit(&tpl, rdkafka::consumer::CommitMode::Async);
        if let Err(e) = result {
            tracing::warn!("cannot commit the consumer group's offsets: {e}");
        }
    }
}
