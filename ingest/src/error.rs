//! Errors of decoding: each names the Kafka message it is about.

use std::fmt;

use thiserror::Error;

use crate::column::{UnsupportedType, ValueError};
use crate::envelope::EnvelopeSchemaError;
use crate::registry::RegistryError;
use crate::wire::FrameError;

/// Where a message sits in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessagePosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl fmt::Display for MessagePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "topic {} partition {} offset {}",
            self.topic, self.partition, self.offset
        )
    }
}

/// Which half of a Kafka record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Key => "key",
            Part::Value => "value",
        })
    }
}

/// A message that could not be decoded, and where it is.
#[derive(Debug, Error)]
#[error("{position}: {kind}")]
pub struct DecodeError {
    pub position: MessagePosition,
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    /// True when the message itself is bad (a retry cannot help, so it may
    /// go to a dead-letter table); false when a dependency failed (the
    /// registry is down) and the same message should be retried.
    /// True when the schema registry could not be reached or kept
    /// failing: an outage, which waiting can fix.
    pub fn is_registry_outage(&self) -> bool {
        matches!(
            self.kind,
            DecodeErrorKind::Registry {
                source: RegistryError::Unavailable { .. },
                ..
            }
        )
    }

    pub fn is_message_fault(&self) -> bool {
        !matches!(
            self.kind,
            DecodeErrorKind::Registry {
                source: RegistryError::Unavailable { .. } | RegistryError::Unauthorized { .. },
                ..
            }
        )
    }
}

#[derive(Debug, Error)]
pub enum DecodeErrorKind {
    #[error("{part}: {source}")]
    Frame { part: Part, source: FrameError },
    #[error("{part} schema id {id} is not in the schema registry")]
    UnknownSchemaId { part: Part, id: u32 },
    #[error("{part} schema id {id}: {source}")]
    Registry {
        part: Part,
        id: u32,
        source: RegistryError,
    },
    #[error("{part} schema id {id} is not a valid Avro schema: {reason}")]
    InvalidSchema { part: Part, id: u32, reason: String },
    #[error("value schema id {id}: {source}")]
    NotAnEnvelope {
        id: u32,
        source: EnvelopeSchemaError,
    },
    #[error("{part} schema id {id}: {source}")]
    UnsupportedType {
        part: Part,
        id: u32,
        source: UnsupportedType,
    },
    #[error("{part} does not match schema id {id}: {source}")]
    Payload {
        part: Part,
        id: u32,
        source: ValueError,
    },
    #[error("{part} has {extra} byte(s) left after the record: it does not match schema id {id}")]
    TrailingBytes { part: Part, id: u32, extra: usize },
    #[error("unknown operation {0:?} (expected c, u, d, r or t)")]
    UnknownOp(String),
    #[error("operation {op:?} without the row image it needs ({missing})")]
    MissingImage {
        op: &'static str,
        missing: &'static str,
    },
}

/// The error and its causes on one line ("error sending request: connection
/// refused"): HTTP clients' own words are often only the outermost cause.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
