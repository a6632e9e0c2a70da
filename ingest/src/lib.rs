//! # floe ingest
//!
//! Everything between a Kafka record and a decoded [`ChangeBatch`]:
//!
//! * [`wire`]: the Confluent wire format (magic byte, schema id, body);
//! * [`registry`]: writer schemas by id, from a schema registry
//!   ([`SchemaRegistryClient`]: cache, basic auth, TLS, retries) or from a
//!   recording ([`recording::RecordedSchemas`]);
//! * [`avro`] and [`column`]: a decoder compiled from each Avro writer
//!   schema that writes straight into Arrow buffers, with the Debezium type
//!   mapping of `docs/types.md`;
//! * [`envelope`]: the Debezium change-event envelope (`before`, `after`,
//!   `op`, `source`, `transaction`), Debezium 1.x to 3.x;
//! * [`decoder`]: [`ChangeDecoder`], which turns messages into per-topic
//!   [`ChangeBatch`]es and opens a new batch when a table's schema changes;
//! * [`order`]: a batch from several partitions of a topic put back in
//!   source order;
//! * [`signal`]: Debezium's signal table (ad-hoc snapshots asked for, an
//!   incremental snapshot's chunk windows) read from its events.
//!
//! Start reading at [`ChangeDecoder::push`].
//!
//! This crate does not write anywhere: applying batches to Iceberg is the
//! `lakehouse` crate's job, and it must not depend on Kafka. The Kafka
//! consumer service that drives this crate lives in the `floe` binary.
//!
//! Every malformed input is a typed [`DecodeError`] naming topic, partition
//! and offset; decoding never panics on input and never keeps half a message.

pub mod avro;
pub mod batch;
pub mod column;
pub mod decoder;
pub mod envelope;
pub mod error;
#[cfg(feature = "kafka")]
mod kafka;
pub mod order;
pub mod recording;
pub mod registry;
pub mod semantic;
pub mod signal;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;

pub use batch::{columns, ChangeBatch, ColumnDefaults, OffsetRange, SchemaVersion, SourceTable};
pub use decoder::{
    Buffered, ChangeDecoder, DecoderOptions, Pushed, RawMessage, DEFAULT_UNAVAILABLE_PLACEHOLDER,
};
pub use envelope::Op;
pub use error::{DecodeError, DecodeErrorKind, MessagePosition, Part};
pub use recording::{RecordedMessage, RecordedSchemas, Recording};
pub use registry::{RegistryConfig, RegistryError, SchemaRegistryClient, SchemaSource};
