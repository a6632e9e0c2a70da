//! `floe ingest`: Kafka → decoded change batches → Iceberg commits.
//!
//! ```text
//!  rdkafka consumer (group; partitions seeked to the offsets the tables
//!  │ hold, so group offsets are never the source of truth)
//!  ▼
//!  ChangeDecoder (schemas from the registry) ── buffer ──▶ every
//!  commit_interval_ms or max_rows: flush; per source table, one
//!  TableWriter::apply (one Iceberg commit carrying the Kafka offsets)
//!  ▼
//!  group offsets committed after the Iceberg commits (for lag tools)
//! ```
//!
//! A message that cannot be decoded stops the service with an error naming
//! its topic, partition and offset (nothing after it is committed, so a
//! restart resumes at it), or with `on_error = "dead_letter"` goes to the
//! dead-letter table with its raw bytes. A batch that cannot be applied
//! for a reason waiting cannot fix stops the service.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use iceberg::{NamespaceIdent, TableIdent};
use ingest::{ChangeBatch, ChangeDecoder, RawMessage, RegistryConfig, SchemaRegistryClient};
use lakehouse::apply::{ApplyStats, TableWriter};
use lakehouse::dead_letter::{DeadLetter, DeadLetterTable};
use lakehouse::{Lake, LakehouseError};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::config::{FloeConfig, OnError};
use crate::metrics::{self, Metrics};

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
    /// seconds since partitions were assigned (for one-off catch-up runs
    /// and tests). Default: run until SIGINT or SIGTERM.
    #[arg(long, value_name = "SECONDS")]
    stop_when_idle: Option<u64>,
}

pub fn run(args: IngestArgs) -> Result<()> {
    let config = FloeConfig::load(&args.config)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        if args.check {
            check(&config).await
        } else {
            ingest(config, args.stop_when_idle.map(Duration::from_secs)).await
        }
    })
}

/// Where each (topic, partition) resumes: the next offset after the last
/// one a table holds.
type ResumeOffsets = Arc<Mutex<HashMap<(String, i32), i64>>>;

/// Seeks newly assigned partitions to the offsets the tables hold.
struct ResumeContext {
    resume: ResumeOffsets,
    /// Set once the group has assigned partitions (idleness counts from then).
    assigned: Arc<std::sync::atomic::AtomicBool>,
}

impl ClientContext for ResumeContext {}

impl ConsumerContext for ResumeContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Ok(resume) = self.resume.lock() {
                    for e in tpl.elements() {
                        let key = (e.topic().to_string(), e.partition());
                        if let Some(&next) = resume.get(&key) {
                            tracing::info!(topic = %key.0, partition = key.1, offset = next, "resuming from the offset the table holds");
                        }
                    }
                    for ((topic, partition), next) in resume.iter() {
                        if tpl.find_partition(topic, *partition).is_some() {
                            let _ =
                                tpl.set_partition_offset(topic, *partition, Offset::Offset(*next));
                        }
                    }
                }
                self.assigned
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::info!(partitions = tpl.count(), "partitions assigned");
                consumer.assign(tpl)
            }
            _ => consumer.unassign(),
        };
        if let Err(e) = result {
            tracing::error!("partition assignment failed: {e}");
        }
    }
}

fn consumer(
    config: &FloeConfig,
    resume: ResumeOffsets,
    assigned: Arc<std::sync::atomic::AtomicBool>,
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
        .set("topic.metadata.refresh.interval.ms", "5000");
    for (k, v) in &config.kafka.properties {
        client.set(k, v);
    }
    let consumer: StreamConsumer<ResumeContext> = client
        .create_with_context(ResumeContext { resume, assigned })
        .context("cannot create the Kafka consumer")?;
    let mut topics: Vec<String> = config.kafka.topics.clone();
    if let Some(regex) = &config.kafka.topic_regex {
        topics.push(format!("^{}", regex.trim_start_matches('^')));
    }
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&refs)
        .with_context(|| format!("cannot subscribe to {topics:?}"))?;
    Ok(consumer)
}

fn registry(config: &FloeConfig) -> Result<SchemaRegistryClient> {
    let mut registry = RegistryConfig::new(config.registry.url.clone());
    if let (Some(u), Some(p)) = (&config.registry.username, &config.registry.password) {
        registry.basic_auth = Some((u.clone(), p.clone()));
    }
    SchemaRegistryClient::new(registry).context("schema registry client")
}

/// `--check`: every endpoint, one line each.
async fn check(config: &FloeConfig) -> Result<()> {
    let mut failed = 0;
    let mut report = |what: &str, result: Result<String>| match result {
        Ok(detail) => println!("ok      {what}: {detail}"),
        Err(e) => {
            failed += 1;
            println!("FAILED  {what}: {e:#}");
        }
    };
    let kafka = async {
        let c = consumer(config, Arc::default(), Arc::default())?;
        let md = tokio::task::spawn_blocking(move || {
            c.fetch_metadata(None, Duration::from_secs(10))
                .map(|m| m.topics().len())
        })
        .await??;
        Ok(format!("{} ({md} topics)", config.kafka.bootstrap_servers))
    }
    .await;
    report("kafka", kafka);
    let reg = async {
        registry(config)?.check().await?;
        Ok(config.registry.url.clone())
    }
    .await;
    report("schema registry", reg);
    let lake = async {
        let lake = Lake::open(&config.lake).await?;
        let namespaces = lake.catalog.list_namespaces(None).await?;
        Ok(format!(
            "warehouse {} ({} namespaces)",
            config.lake.warehouse,
            namespaces.len()
        ))
    }
    .await;
    report("catalog and storage", lake);
    if failed > 0 {
        anyhow::bail!("{failed} endpoint(s) failed");
    }
    Ok(())
}

/// The offsets every table in the lake holds, as next offsets to read.
async fn stored_offsets(lake: &Lake) -> Result<HashMap<(String, i32), i64>> {
    let mut out = HashMap::new();
    for ns in lake.catalog.list_namespaces(None).await? {
        for ident in lake.catalog.list_tables(&ns).await? {
            let table = lake.catalog.load_table(&ident).await?;
            for ((topic, partition), last) in lakehouse::apply::applied_offsets(&table) {
                let next = out.entry((topic, partition)).or_insert(last + 1);
                *next = (*next).max(last + 1);
            }
        }
    }
    Ok(out)
}

async fn ingest(config: FloeConfig, stop_when_idle: Option<Duration>) -> Result<()> {
    let lake = Lake::open(&config.lake).await?;
    let resume: ResumeOffsets = Arc::new(Mutex::new(stored_offsets(&lake).await?));
    let assigned = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = consumer(&config, resume.clone(), assigned.clone())?;
    let mut was_assigned = false;
    let mut decoder = ChangeDecoder::new(registry(&config)?);
    let mut writers: HashMap<String, TableWriter> = HashMap::new();
    let interval = Duration::from_millis(config.ingest.commit_interval_ms);
    let mut buffered = 0usize;
    let mut last_flush = Instant::now();
    let mut last_message = Instant::now();
    let mut totals = Totals::default();
    let metrics = Arc::new(Metrics::default());
    metrics.heartbeat();
    if let Some(listen) = &config.ingest.metrics_listen {
        metrics::serve(listen, metrics.clone()).await?;
    }
    let mut dead_letters = match config.ingest.on_error {
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
    tracing::info!(
        kafka = %config.kafka.bootstrap_servers,
        warehouse = %config.lake.warehouse,
        "floe ingest started"
    );
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    loop {
        let tick = tokio::time::sleep(Duration::from_millis(200));
        tokio::select! {
            message = consumer.recv() => {
                // librdkafka reconnects and re-resolves by itself: a topic
                // that does not exist yet or a broker that is down is
                // reported, waited out and retried, never fatal
                let message = match message {
                    Ok(m) => m,
                    Err(e) => {
                        metrics.error("kafka");
                        tracing::warn!("Kafka: {e}; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                metrics.consumed();
                if let Err(e) = decoder.push(&RawMessage::from(&message)).await {
                    metrics.error("decode");
                    let Some(dead_letters) = dead_letters.as_mut() else {
                        return Err(anyhow::Error::new(e).context(
                            "cannot decode a message (nothing after it is committed; fix the cause \
                             and restart, or set [ingest] on_error = \"dead_letter\")",
                        ));
                    };
                    // what came before it is committed first, so the letter's
                    // offset never runs ahead of unapplied events
                    apply(&lake, &consumer, &mut decoder, &mut writers, &resume, &mut totals, &metrics).await?;
                    buffered = 0;
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
                    dead_letters.record(&[letter]).await.context("cannot write the dead-letter table")?;
                    totals.dead_letters += 1;
                    metrics.error("dead_letter");
                    if let Ok(mut resume) = resume.lock() {
                        resume.insert((message.topic().to_string(), message.partition()), message.offset() + 1);
                    }
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(message.topic(), message.partition(), Offset::Offset(message.offset() + 1))
                        .context("offset list")?;
                    commit_group_offsets(&consumer, &tpl);
                    continue;
                }
                buffered += 1;
                last_message = Instant::now();
                if buffered >= config.ingest.max_rows {
                    apply(&lake, &consumer, &mut decoder, &mut writers, &resume, &mut totals, &metrics).await?;
                    buffered = 0;
                    last_flush = Instant::now();
                }
            }
            _ = tick => {
                metrics.heartbeat();
                if buffered > 0 && last_flush.elapsed() >= interval {
                    apply(&lake, &consumer, &mut decoder, &mut writers, &resume, &mut totals, &metrics).await?;
                    buffered = 0;
                    last_flush = Instant::now();
                }
                // idleness counts from the first partition assignment
                if !was_assigned && assigned.load(std::sync::atomic::Ordering::SeqCst) {
                    was_assigned = true;
                    last_message = Instant::now();
                }
                if was_assigned && stop_when_idle.is_some_and(|idle| last_message.elapsed() >= idle) {
                    tracing::info!("idle: stopping");
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: stopping"); break; }
            _ = sigterm.recv() => { tracing::info!("SIGTERM: stopping"); break; }
        }
    }
    apply(
        &lake,
        &consumer,
        &mut decoder,
        &mut writers,
        &resume,
        &mut totals,
        &metrics,
    )
    .await?;
    // leave the group now, so a restarted floe is assigned at once
    consumer.unsubscribe();
    eprintln!(
        "floe ingest: {} events applied in {} commits to {} tables; {} dead letters",
        totals.events,
        totals.commits,
        writers.len(),
        totals.dead_letters
    );
    Ok(())
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

/// Flushes the decoder and applies every batch (one commit per batch),
/// then commits the consumer group's offsets.
async fn apply(
    lake: &Lake,
    consumer: &StreamConsumer<ResumeContext>,
    decoder: &mut ChangeDecoder<SchemaRegistryClient>,
    writers: &mut HashMap<String, TableWriter>,
    resume: &ResumeOffsets,
    totals: &mut Totals,
    metrics: &Metrics,
) -> Result<()> {
    let batches = decoder.flush();
    if batches.is_empty() {
        return Ok(());
    }
    let mut committed: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for batch in &batches {
        let started = Instant::now();
        let (stats, table) = apply_with_retry(lake, writers, batch, metrics).await?;
        record_batch(metrics, &table, batch, started.elapsed());
        tracing::info!(
            topic = %batch.topic,
            %table,
            events = batch.num_rows(),
            written = stats.rows_written,
            deleted = stats.rows_deleted,
            truncated = stats.truncated,
            skipped = stats.already_applied,
            ms = started.elapsed().as_millis() as u64,
            "committed"
        );
        totals.events += batch.num_rows() - stats.already_applied;
        totals.commits += 1;
        for r in &batch.offsets {
            committed.insert((batch.topic.clone(), r.partition), r.last + 1);
        }
    }
    if let Ok(mut resume) = resume.lock() {
        resume.extend(committed.clone());
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in &committed {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))
            .context("offset list")?;
    }
    commit_group_offsets(consumer, &tpl);
    Ok(())
}

/// Group offsets are for lag tools only (tables are the source of truth),
/// so a failure to commit them is logged, not fatal.
fn commit_group_offsets(consumer: &StreamConsumer<ResumeContext>, tpl: &TopicPartitionList) {
    let result: KafkaResult<()> = consumer.commit(tpl, rdkafka::consumer::CommitMode::Async);
    if let Err(e) = result {
        tracing::warn!("cannot commit the consumer group's offsets: {e}");
    }
}

/// Applies one batch, waiting out outages of the catalog or the object
/// store: the writer is dropped (its index may be ahead of the table) and
/// the batch applied again by a fresh one after a backoff, which is safe
/// because the table's stored offsets skip whatever did commit. Errors
/// that no retry can fix (a schema floe cannot apply, a table without a
/// key) stop floe with the batch's position.
async fn apply_with_retry(
    lake: &Lake,
    writers: &mut HashMap<String, TableWriter>,
    batch: &ChangeBatch,
    metrics: &Metrics,
) -> Result<(ApplyStats, String)> {
    let mut backoff = Duration::from_millis(500);
    loop {
        let result = match writers.entry(batch.topic.clone()) {
            Entry::Occupied(mut w) => w.get_mut().apply(batch).await,
            Entry::Vacant(slot) => match lake.writer(batch).await {
                Ok(w) => {
                    tracing::info!(topic = %batch.topic, table = %w.table().identifier(), live_rows = w.live_rows(), "table opened");
                    slot.insert(w).apply(batch).await
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(stats) => {
                let table = writers
                    .get(&batch.topic)
                    .map(|w| w.table().identifier().to_string())
                    .unwrap_or_default();
                return Ok((stats, table));
            }
            Err(e) if is_permanent(&e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot apply {} ({} events at offsets {:?})",
                        batch.topic,
                        batch.num_rows(),
                        batch.offsets
                    )
                });
            }
            Err(e) => {
                metrics.error("apply_retry");
                tracing::warn!(topic = %batch.topic, retry_in_ms = backoff.as_millis() as u64, "cannot apply yet: {e}");
                writers.remove(&batch.topic);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Counts a committed batch's events by operation, its commit time and the
/// source time of its newest event.
fn record_batch(metrics: &Metrics, table: &str, batch: &ChangeBatch, took: Duration) {
    let mut by_op: BTreeMap<&'static str, u64> = BTreeMap::new();
    for i in 0..batch.num_rows() {
        let op = match batch.op(i) {
            Some(ingest::Op::Create) => "c",
            Some(ingest::Op::Update) => "u",
            Some(ingest::Op::Delete) => "d",
            Some(ingest::Op::Read) => "r",
            Some(ingest::Op::Truncate) => "t",
            _ => "other",
        };
        *by_op.entry(op).or_default() += 1;
    }
    for (op, n) in by_op {
        metrics.applied(table, op, n);
    }
    let newest = batch
        .records
        .column_by_name(ingest::columns::SOURCE_TS)
        .and_then(|c| {
            c.as_any()
                .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
                .and_then(arrow::compute::max)
        });
    metrics.committed(took, newest);
}

/// Errors in the data or the configuration, which waiting cannot fix.
fn is_permanent(e: &LakehouseError) -> bool {
    matches!(
        e,
        LakehouseError::SchemaMismatch { .. }
            | LakehouseError::Schema { .. }
            | LakehouseError::NoPrimaryKey { .. }
            | LakehouseError::PartitionSpec { .. }
            | LakehouseError::CatalogPathNeeded
            | LakehouseError::Arrow { .. }
    )
}
