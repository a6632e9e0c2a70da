//! Reads messages back from Kafka by position: raw, for the dead-letter
//! table (a batch that cannot be applied was decoded long ago, and its raw
//! bytes are kept by the broker, not by floe), and decoded, for a truncate
//! that must be followed by changes the table already holds
//! ([`KafkaReader`], the lakehouse's `SourceReader`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use ingest::{ChangeBatch, ChangeDecoder, OffsetRange, RawMessage};
use lakehouse::apply::SourceReader;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::config::FloeConfig;

/// One message's raw key and value.
pub struct RawCopy {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// The messages of `topic` in `ranges` (both ends included), in offset
/// order. Offsets the broker no longer has are missing from the result.
pub fn refetch(config: &FloeConfig, topic: &str, ranges: &[OffsetRange]) -> Result<Vec<RawCopy>> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        // assigned, never subscribed: the group id only satisfies librdkafka
        .set("group.id", format!("{}-refetch", config.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    for (k, v) in config.kafka.security_properties() {
        client.set(k, v);
    }
    for (k, v) in &config.kafka.properties {
        client.set(k, v);
    }
    let consumer: BaseConsumer = client.create().context("cannot create a Kafka consumer")?;
    let mut tpl = TopicPartitionList::new();
    let mut wanted: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for r in ranges {
        tpl.add_partition_offset(topic, r.partition, Offset::Offset(r.first))
            .context("offset list")?;
        wanted.insert(r.partition, (r.first, r.last));
    }
    consumer.assign(&tpl).context("cannot assign partitions")?;
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !wanted.is_empty() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "could not read back {topic} offsets {wanted:?} within 60 s"
        );
        let Some(polled) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = match polled {
            Ok(m) => m,
            Err(rdkafka::error::KafkaError::PartitionEOF(p)) => {
                // the end of the log: what is not there is not coming
                wanted.remove(&p);
                continue;
            }
            Err(e) => {
                tracing::warn!("reading back {topic}: {e}; retrying");
                continue;
            }
        };
        let Some(&(first, last)) = wanted.get(&m.partition()) else {
            continue;
        };
        if m.offset() >= first && m.offset() <= last {
            out.push(RawCopy {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
            });
        }
        if m.offset() >= last {
            wanted.remove(&m.partition());
        }
    }
    Ok(out)
}

/// Reads a topic's changes again from Kafka and decodes them with the
/// schema registry, for the lakehouse's writers.
pub struct KafkaReader {
    pub config: FloeConfig,
}

impl KafkaReader {
    async fn read(&self, topic: &str, ranges: &[OffsetRange]) -> Result<Vec<ChangeBatch>> {
        let (config, owned_topic, owned) =
            (self.config.clone(), topic.to_string(), ranges.to_vec());
        let copies = tokio::task::spawn_blocking(move || refetch(&config, &owned_topic, &owned))
            .await
            .context("the read-back task failed")??;
        let mut decoder = ChangeDecoder::new(crate::service::registry(&self.config)?);
        for copy in &copies {
            let message = RawMessage {
                topic,
                partition: copy.partition,
                offset: copy.offset,
                key: copy.key.as_deref(),
                value: copy.value.as_deref(),
            };
            decoder.push(&message).await?;
        }
        Ok(decoder.flush())
    }
}

impl SourceReader for KafkaReader {
    fn reread<'a>(
        &'a self,
        topic: &'a str,
        ranges: &'a [OffsetRange],
    ) -> BoxFuture<'a, Result<Vec<ChangeBatch>, String>> {
        Box::pin(async move {
            self.read(topic, ranges)
                .await
                .map_err(|e| format!("reading {topic} {ranges:?} again: {e:#}"))
        })
    }
}
