//! [`ChangeDecoder`]: Kafka messages in, [`ChangeBatch`]es out.
//!
//! ```text
//!   RawMessage ──split_frame──▶ schema ids ──SchemaSource──▶ EnvelopePlan (cached per id)
//!        │                                                        │
//!        └──────────── Avro body ──────────▶ BatchBuilder (per topic) ──flush──▶ ChangeBatch
//! ```
//!
//! Each topic has one open batch. A message whose value schema differs from
//! the open batch's (a column added in Postgres) closes it and opens a new
//! one that records the previous version, so every batch has one schema.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Instant;

use crate::avro::AvroSchema;
use crate::batch::{BatchBuilder, ChangeBatch, EventInput, SchemaVersion};
use crate::envelope::{EnvelopePlan, EnvelopeSchemaError};
use crate::error::{DecodeError, DecodeErrorKind, MessagePosition, Part};
use crate::registry::{RegistryError, SchemaSource};
use crate::wire::split_frame;

/// The value Debezium writes in place of an unchanged TOASTed column
/// (its `unavailable.value.placeholder` default).
pub const DEFAULT_UNAVAILABLE_PLACEHOLDER: &str = "__debezium_unavailable_value";

/// One Kafka record as floe sees it, borrowed from wherever it was read.
#[derive(Debug, Clone, Copy)]
pub struct RawMessage<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

impl RawMessage<'_> {
    pub fn position(&self) -> MessagePosition {
        MessagePosition {
            topic: self.topic.to_string(),
            partition: self.partition,
            offset: self.offset,
        }
    }
}

/// What became of a pushed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// A change event, now a row of its topic's open batch.
    Row,
    /// A tombstone, counted in its topic's batch offsets.
    Tombstone,
    /// A tombstone for a topic whose schema floe has not seen yet: there is
    /// no table to attach it to, and nothing to apply.
    UnattachedTombstone,
}

#[derive(Debug, Clone)]
pub struct DecoderOptions {
    /// Debezium's `unavailable.value.placeholder` (as text or bytes).
    pub unavailable_placeholder: Vec<u8>,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        Self {
            unavailable_placeholder: DEFAULT_UNAVAILABLE_PLACEHOLDER.as_bytes().to_vec(),
        }
    }
}

/// Decodes Debezium change events into per-topic [`ChangeBatch`]es.
pub struct ChangeDecoder<S> {
    schemas: S,
    options: DecoderOptions,
    plans: FastMap<u32, Result<Arc<EnvelopePlan>, EnvelopeSchemaError>>,
    key_schemas: FastMap<u32, Arc<AvroSchema>>,
    topics: FastMap<String, TopicState>,
    closed: Vec<ChangeBatch>,
}

/// What one topic holds that has not been flushed yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffered {
    /// Messages taken into batches (change events and tombstones).
    pub messages: usize,
    /// Their size in Kafka (key plus value bytes).
    pub bytes: usize,
    /// When the oldest of them was taken.
    pub since: Instant,
}

/// What the decoder keeps per topic across batches.
#[derive(Default)]
struct TopicState {
    open: Option<BatchBuilder>,
    /// The version of the topic's latest batch, across flushes: a batch
    /// with another value schema says it changed.
    last_version: Option<SchemaVersion>,
    /// Rows of the topic's previous batch: the next one reserves that much.
    rows_hint: usize,
    /// Messages taken since the topic's last flush.
    pending: Option<Buffered>,
}

impl TopicState {
    fn took(&mut self, bytes: usize) {
        match &mut self.pending {
            Some(p) => {
                p.messages += 1;
                p.bytes += bytes;
            }
            None => {
                self.pending = Some(Buffered {
                    messages: 1,
                    bytes,
                    since: Instant::now(),
                })
            }
        }
    }
}

impl<S: SchemaSource> ChangeDecoder<S> {
    pub fn new(schemas: S) -> Self {
        Self::with_options(schemas, DecoderOptions::default())
    }

    pub fn with_options(schemas: S, options: DecoderOptions) -> Self {
        Self {
            schemas,
            options,
            plans: FastMap::default(),
            key_schemas: FastMap::default(),
            topics: FastMap::default(),
            closed: Vec::new(),
        }
    }

    /// Messages taken into batches not yet flushed, over all topics.
    pub fn buffered_messages(&self) -> usize {
        self.buffered().map(|(_, b)| b.messages).sum()
    }

    /// Kafka bytes (key plus value) of the messages not yet flushed.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered().map(|(_, b)| b.bytes).sum()
    }

    /// Per topic, what it holds that has not been flushed yet.
    pub fn buffered(&self) -> impl Iterator<Item = (&str, Buffered)> {
        self.topics
            .iter()
            .filter_map(|(topic, state)| state.pending.map(|p| (topic.as_str(), p)))
    }

    /// Decodes one message into its topic's batch. On error the batch is
    /// left exactly as it was before the call.
    pub async fn push(&mut self, msg: &RawMessage<'_>) -> Result<Pushed, DecodeError> {
        let fail = |kind| DecodeError {
            position: msg.position(),
            kind,
        };
        let Some(value) = msg.value else {
            return self.push_tombstone(msg);
        };
        let (value_id, value_body) = split_frame(value).map_err(|source| {
            fail(DecodeErrorKind::Frame {
                part: Part::Value,
                source,
            })
        })?;
        let key = match msg.key {
            Some(k) => Some(split_frame(k).map_err(|source| {
                fail(DecodeErrorKind::Frame {
                    part: Part::Key,
                    source,
                })
            })?),
            None => None,
        };
        let plan = self.plan(value_id).await.map_err(fail)?;
        let key_schema = match key {
            Some((key_id, _)) => Some(self.key_schema(key_id).await.map_err(fail)?),
            None => None,
        };
        let key_id = key.map(|(id, _)| id);
        let key_arg = match (key, key_schema.as_deref()) {
            (Some((id, body)), Some(schema)) => Some((id, schema, body)),
            _ => None,
        };
        let message_len = value.len() + msg.key.map_or(0, <[u8]>::len);
        let placeholder = &self.options.unavailable_placeholder;
        let event = EventInput {
            partition: msg.partition,
            offset: msg.offset,
            key: key_arg,
            value_body,
        };

        let state = match self.topics.get_mut(msg.topic) {
            Some(state) => state,
            None => self.topics.entry(msg.topic.to_string()).or_default(),
        };
        if let Some(open) = state
            .open
            .as_mut()
            .filter(|open| open.accepts(value_id, key_id))
        {
            open.push_event(&event, placeholder).map_err(fail)?;
            state.last_version = Some(open.version());
            state.took(message_len);
            return Ok(Pushed::Row);
        }
        // A new schema version (or the topic's first event): decode into a
        // new batch first and only then close the old one, so a message that
        // fails leaves no trace (not even an empty batch announcing its schema).
        let version = SchemaVersion {
            value_schema_id: value_id,
            key_schema_id: key_id,
        };
        let mut fresh = new_builder(msg.topic, state, plan, version).map_err(fail)?;
        fresh.push_event(&event, placeholder).map_err(fail)?;
        state.last_version = Some(fresh.version());
        state.took(message_len);
        if let Some(old) = state.open.replace(fresh) {
            state.rows_hint = old.rows();
            self.closed.push(old.finish());
        }
        Ok(Pushed::Row)
    }

    fn push_tombstone(&mut self, msg: &RawMessage<'_>) -> Result<Pushed, DecodeError> {
        if let Some(k) = msg.key {
            // a tombstone's key is not needed, but a broken frame is still reported
            split_frame(k).map_err(|source| DecodeError {
                position: msg.position(),
                kind: DecodeErrorKind::Frame {
                    part: Part::Key,
                    source,
                },
            })?;
        }
        let Some(state) = self.topics.get_mut(msg.topic) else {
            return Ok(Pushed::UnattachedTombstone);
        };
        if state.open.is_none() {
            let Some(version) = state.last_version else {
                return Ok(Pushed::UnattachedTombstone);
            };
            let Some(Ok(plan)) = self.plans.get(&version.value_schema_id).cloned() else {
                return Ok(Pushed::UnattachedTombstone);
            };
            let builder =
                new_builder(msg.topic, state, plan, version).map_err(|kind| DecodeError {
                    position: msg.position(),
                    kind,
                })?;
            state.open = Some(builder);
        }
        if let Some(builder) = state.open.as_mut() {
            builder.push_tombstone(msg.partition, msg.offset);
            state.took(msg.key.map_or(0, <[u8]>::len));
        }
        Ok(Pushed::Tombstone)
    }

    /// Closes every open batch and returns all batches, in Kafka order per
    /// topic (topics in name order).
    pub fn flush(&mut self) -> Vec<ChangeBatch> {
        self.flush_where(|_, _| true)
    }

    /// Whether `select` would pick any topic's buffer (see
    /// [`flush_where`](Self::flush_where)), without closing it.
    pub fn any_where(&self, mut select: impl FnMut(&str, &Buffered) -> bool) -> bool {
        self.topics
            .iter()
            .any(|(topic, state)| state.pending.is_some_and(|p| select(topic, &p)))
    }

    /// Closes and returns the batches of the topics `select` picks (given
    /// what each has buffered), in Kafka order per topic, topics in name
    /// order; the other topics keep buffering.
    pub fn flush_where(
        &mut self,
        mut select: impl FnMut(&str, &Buffered) -> bool,
    ) -> Vec<ChangeBatch> {
        let mut picked: Vec<&str> = Vec::new();
        let mut out = Vec::new();
        for (topic, state) in self.topics.iter_mut() {
            let Some(pending) = state.pending else {
                continue;
            };
            if !select(topic, &pending) {
                continue;
            }
            state.pending = None;
            picked.push(topic);
            if let Some(builder) = state.open.take() {
                state.rows_hint = builder.rows();
                out.push(builder.finish());
            }
        }
        // a topic's closed batches come before its open one
        let (mut taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.closed)
            .into_iter()
            .partition(|b| picked.contains(&b.topic.as_str()));
        self.closed = kept;
        taken.extend(out);
        // the sort is stable, so each topic's batches stay in Kafka order
        taken.sort_by(|a, b| a.topic.cmp(&b.topic));
        taken
    }

    async fn fetch(&self, part: Part, id: u32) -> Result<Arc<str>, DecodeErrorKind> {
        self.schemas.schema(id).await.map_err(|e| match e {
            RegistryError::NotFound { .. } => DecodeErrorKind::UnknownSchemaId { part, id },
            source => DecodeErrorKind::Registry { part, id, source },
        })
    }

    async fn plan(&mut self, id: u32) -> Result<Arc<EnvelopePlan>, DecodeErrorKind> {
        if let Some(cached) = self.plans.get(&id) {
            return cached
                .clone()
                .map_err(|source| DecodeErrorKind::NotAnEnvelope { id, source });
        }
        let text = self.fetch(Part::Value, id).await?;
        let schema = AvroSchema::parse(&text).map_err(|e| DecodeErrorKind::InvalidSchema {
            part: Part::Value,
            id,
            reason: e.to_string(),
        })?;
        let plan = EnvelopePlan::compile(&schema).map(Arc::new);
        self.plans.insert(id, plan.clone());
        plan.map_err(|source| DecodeErrorKind::NotAnEnvelope { id, source })
    }

    async fn key_schema(&mut self, id: u32) -> Result<Arc<AvroSchema>, DecodeErrorKind> {
        if let Some(cached) = self.key_schemas.get(&id) {
            return Ok(cached.clone());
        }
        let text = self.fetch(Part::Key, id).await?;
        let schema =
            Arc::new(
                AvroSchema::parse(&text).map_err(|e| DecodeErrorKind::InvalidSchema {
                    part: Part::Key,
                    id,
                    reason: e.to_string(),
                })?,
            );
        self.key_schemas.insert(id, schema.clone());
        Ok(schema)
    }
}

/// A builder for a topic's next batch, sized like its previous one.
fn new_builder(
    topic: &str,
    state: &TopicState,
    plan: Arc<EnvelopePlan>,
    version: SchemaVersion,
) -> Result<BatchBuilder, DecodeErrorKind> {
    let previous = state
        .last_version
        .filter(|prev| prev.value_schema_id != version.value_schema_id);
    BatchBuilder::new(topic, plan, version, previous, state.rows_hint).map_err(|source| {
        DecodeErrorKind::UnsupportedType {
            part: Part::Value,
            id: version.value_schema_id,
            source,
        }
    })
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The Fx hash (as in rustc): much cheaper than SipHash for the short keys
/// looked up per message (topic names, schema ids), none of which an
/// attacker chooses.
#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}
