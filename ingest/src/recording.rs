//! Recordings of Kafka topics with the registry schemas they need: what
//! `scripts/record-fixtures.sh` writes, what the tests and `floe decode`
//! replay. The format is documented in `docs/recording-format.md`.
//!
//! A recording directory holds `recording.jsonl` (one Kafka record per line:
//! `topic`, `partition`, `offset`, `timestamp_ms`, and `key`/`value` as
//! base64 of the exact bytes, or null) and `schemas.json` (`schemas`: id to
//! schema text; `subjects`: subject to the ids registered under it).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use serde::Deserialize;
use thiserror::Error;

use crate::decoder::RawMessage;
use crate::registry::{RegistryError, SchemaSource};

#[derive(Debug, Error)]
pub enum RecordingError {
    #[error("no recording in {}: expected recording.jsonl and schemas.json there", dir.display())]
    Missing { dir: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// One recorded Kafka record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl RecordedMessage {
    pub fn as_raw(&self) -> RawMessage<'_> {
        RawMessage {
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
        }
    }
}

/// The registry contents captured with a recording. Serves schemas by id
/// like a registry would; an id that was never registered is `NotFound`.
#[derive(Debug, Clone, Default)]
pub struct RecordedSchemas {
    by_id: HashMap<u32, Arc<str>>,
    subjects: BTreeMap<String, Vec<u32>>,
}

impl RecordedSchemas {
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.by_id.keys().copied()
    }

    pub fn get(&self, id: u32) -> Option<&Arc<str>> {
        self.by_id.get(&id)
    }

    /// Schema ids registered under `subject`, oldest first.
    pub fn subject_versions(&self, subject: &str) -> &[u32] {
        self.subjects.get(subject).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn insert(&mut self, id: u32, schema: &str) {
        self.by_id.insert(id, Arc::from(schema));
    }
}

impl SchemaSource for RecordedSchemas {
    fn schema(&self, id: u32) -> impl Future<Output = Result<Arc<str>, RegistryError>> + Send {
        let found = self
            .by_id
            .get(&id)
            .cloned()
            .ok_or(RegistryError::NotFound { id });
        std::future::ready(found)
    }
}

/// A recording loaded in memory.
#[derive(Debug, Clone)]
pub struct Recording {
    pub messages: Vec<RecordedMessage>,
    pub schemas: RecordedSchemas,
}

#[derive(Deserialize)]
struct Line {
    topic: String,
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
    key: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize)]
struct SchemasFile {
    schemas: BTreeMap<String, String>,
    #[serde(default)]
    subjects: BTreeMap<String, Vec<u32>>,
}

impl Recording {
    /// Loads `recording.jsonl` (or `recording.jsonl.gz`) and `schemas.json`
    /// from `dir`.
    pub fn load(dir: &Path) -> Result<Self, RecordingError> {
        let plain = dir.join("recording.jsonl");
        let gzipped = dir.join("recording.jsonl.gz");
        let schemas_path = dir.join("schemas.json");
        let messages_path = if plain.is_file() { plain } else { gzipped };
        if !messages_path.is_file() || !schemas_path.is_file() {
            return Err(RecordingError::Missing {
                dir: dir.to_path_buf(),
            });
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RecordingError::Io { path, source }
        };
        let schemas = std::fs::read_to_string(&schemas_path).map_err(io(&schemas_path))?;
        let bytes = std::fs::read(&messages_path).map_err(io(&messages_path))?;
        Self::parse(&messages_path, &bytes, &schemas_path, &schemas)
    }

    /// A recording from its two files' contents (the messages gzipped or
    /// not); the paths only name them in errors.
    pub fn parse(
        messages_path: &Path,
        messages: &[u8],
        schemas_path: &Path,
        schemas: &str,
    ) -> Result<Self, RecordingError> {
        let unzipped;
        let messages = if messages.starts_with(&[0x1f, 0x8b]) {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(messages), &mut text)
                .map_err(|source| RecordingError::Io {
                    path: messages_path.to_path_buf(),
                    source,
                })?;
            unzipped = text;
            &unzipped[..]
        } else {
            messages
        };
        let lines = std::str::from_utf8(messages).map_err(|e| RecordingError::Parse {
            path: messages_path.to_path_buf(),
            line: 0,
            reason: format!("not UTF-8: {e}"),
        })?;
        let parse_err = |path: &Path, line: usize, reason: String| RecordingError::Parse {
            path: path.to_path_buf(),
            line,
            reason,
        };

        let text = schemas;
        let file: SchemasFile = serde_json::from_str(text)
            .map_err(|e| parse_err(schemas_path, e.line(), e.to_string()))?;
        let mut schemas = RecordedSchemas {
            by_id: HashMap::new(),
            subjects: file.subjects,
        };
        for (id, schema) in file.schemas {
            let id: u32 = id.parse().map_err(|_| {
                parse_err(schemas_path, 0, format!("schema id {id:?} is not a number"))
            })?;
            schemas.insert(id, &schema);
        }

        let b64 = base64::engine::general_purpose::STANDARD;
        let mut messages = Vec::new();
        for (i, line) in lines.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let l: Line = serde_json::from_str(line)
                .map_err(|e| parse_err(messages_path, i + 1, e.to_string()))?;
            let decode = |field: &str, v: Option<String>| {
                v.map(|s| b64.decode(s)).transpose().map_err(|e| {
                    parse_err(messages_path, i + 1, format!("{field} is not base64: {e}"))
                })
            };
            messages.push(RecordedMessage {
                key: decode("key", l.key)?,
                value: decode("value", l.value)?,
                topic: l.topic,
                partition: l.partition,
                offset: l.offset,
                timestamp_ms: l.timestamp_ms,
            });
        }
        Ok(Self { messages, schemas })
    }
}
