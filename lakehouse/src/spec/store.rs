//! Listing and reading storage by location. Iceberg's `FileIO` reads,
//! writes and deletes a file it is given the name of, but cannot list a
//! folder; orphan cleanup (every file under a table's location) and batch
//! loads (every file under a prefix) need to. A [`Store`] is an opendal
//! operator rooted at a local folder or an `s3://bucket/prefix`, built from
//! the lake's S3 settings.

use std::time::SystemTime;

use bytes::Bytes;
use opendal::Operator;

use crate::config::ResolvedS3;

/// Storage that cannot be reached or read.
#[derive(Debug, thiserror::Error)]
#[error("storage at {location}: {message}")]
pub struct StoreError {
    pub location: String,
    pub message: String,
    /// An outage (waiting may fix it), not a refusal (see
    /// [`crate::error::opendal_is_retryable`]).
    pub retryable: bool,
}

/// One file a listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Its path below the store's root, `/`-separated.
    pub name: String,
    /// Its full location, in the form the store was opened with
    /// (`file:///...` or `s3://bucket/...`).
    pub location: String,
    pub size: u64,
    /// When it was last written, if the store says.
    pub modified: Option<SystemTime>,
}

/// A folder of a local filesystem or an S3 prefix.
#[derive(Debug, Clone)]
pub struct Store {
    operator: Operator,
    location: String,
}

impl Store {
    /// Opens `location`: `file:///abs/dir`, a plain path, or
    /// `s3://bucket/prefix` (also `s3a://`), with `s3` for the latter.
    pub fn open(location: &str, s3: &ResolvedS3) -> Result<Self, StoreError> {
        let location = location.trim_end_matches('/').to_string();
        let failed = |e: opendal::Error| StoreError {
            location: location.clone(),
            retryable: crate::error::opendal_is_retryable(&e),
            message: e.to_string(),
        };
        let s3_rest = location
            .strip_prefix("s3://")
            .or_else(|| location.strip_prefix("s3a://"));
        let operator = match s3_rest {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                let builder = crate::storage::s3_builder(bucket, s3)
                    .root(&format!("/{prefix}"))
                    .disable_config_load()
                    .disable_ec2_metadata();
                crate::storage::s3_operator(builder, s3).map_err(failed)?
            }
            None => {
                if location.contains("://") && !location.starts_with("file://") {
                    return Err(StoreError {
                        location,
                        message: "only file:// and s3:// locations can be listed".into(),
                        retryable: false,
                    });
                }
                let dir = location.trim_start_matches("file://");
                let builder =
                    opendal::services::Fs::default().root(if dir.is_empty() { "/" } else { dir });
                Operator::new(builder).map_err(failed)?.finish()
            }
        };
        Ok(Self { operator, location })
    }

    /// The location the store was opened at, without a trailing `/`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The files under `folder` (relative to the root; `""` for all of
    /// it), below it too when `recursive`, sorted by name. A folder that
    /// does not exist has no files.
    pub async fn list(&self, folder: &str, recursive: bool) -> Result<Vec<ListedFile>, StoreError> {
        let folder = match folder.trim_matches('/') {
            "" => "/".to_string(),
            f => format!("{f}/"),
        };
        let entries = match self.operator.list_with(&folder).recursive(recursive).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(self.error(&folder, e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            if !entry.metadata().is_file() {
                continue;
            }
            let name = entry.path().trim_start_matches('/').to_string();
            let metadata = match entry.metadata().last_modified() {
                Some(_) => entry.metadata().clone(),
                // some listings carry no times: ask for the file's own
                None => self
                    .operator
                    .stat(&name)
                    .await
                    .map_err(|e| self.error(&name, e))?,
            };
            files.push(ListedFile {
                location: format!("{}/{name}", self.location),
                name,
                size: metadata.content_length(),
                modified: metadata.last_modified().map(SystemTime::from),
            });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// The whole content of `name`.
    pub async fn read(&self, name: &str) -> Result<Bytes, StoreError> {
        self.operator
            .read(name)
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| self.error(name, e))
    }

    /// Deletes `name`; a file already gone is not an error.
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.operator
            .delete(name)
            .await
            .map_err(|e| self.error(name, e))
    }

    /// Writes, reads back and deletes a small object at the root, as
    /// `floe ingest --check` does before anything is committed: listing a
    /// catalog's namespaces never touches storage, and an endpoint that is
    /// down or refuses the keys would show only at the first commit.
    /// Returns how long the three steps took, or the step that failed.
    pub async fn probe(&self) -> Result<std::time::Duration, ProbeFailure> {
        let started = std::time::Instant::now();
        let name = format!(".floe-check-{}", uuid::Uuid::new_v4());
        let body = format!(
            "floe ingest --check wrote this at {:?}\n",
            SystemTime::now()
        );
        let steps = async {
            self.operator
                .write(&name, body.clone().into_bytes())
                .await
                .map_err(|e| ProbeFailure::of(ProbeStep::Write, e))?;
            let back = self
                .operator
                .read(&name)
                .await
                .map_err(|e| ProbeFailure::of(ProbeStep::Read, e))?;
            if back.to_bytes() != body.as_bytes() {
                return Err(ProbeFailure {
                    step: ProbeStep::Read,
                    message: format!("{name} read back differs from what was written"),
                });
            }
            self.operator
                .delete(&name)
                .await
                .map_err(|e| ProbeFailure::of(ProbeStep::Delete, e))
        };
        match tokio::time::timeout(PROBE_TIMEOUT, steps).await {
            Ok(done) => done.map(|()| started.elapsed()),
            Err(_) => Err(ProbeFailure {
                step: ProbeStep::Connection,
                message: format!(
                    "no answer within {} s from {}",
                    PROBE_TIMEOUT.as_secs(),
                    self.location
                ),
            }),
        }
    }

    fn error(&self, name: &str, e: opendal::Error) -> StoreError {
        StoreError {
            location: format!("{}/{}", self.location, name.trim_start_matches('/')),
            retryable: crate::error::opendal_is_retryable(&e),
            message: e.to_string(),
        }
    }
}

/// How long a storage probe waits for all of its steps.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The step of [`Store::probe`] that failed, as a user fixes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStep {
    /// The endpoint did not answer: down, a wrong host or port, TLS.
    Connection,
    /// The bucket does not exist.
    Bucket,
    /// The keys were refused, or lack a permission.
    Credentials,
    /// Writing failed for another reason.
    Write,
    /// Reading back failed, or read something else.
    Read,
    /// Deleting failed.
    Delete,
}

impl std::fmt::Display for ProbeStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Connection => "connection (the endpoint does not answer)",
            Self::Bucket => "bucket (it does not exist)",
            Self::Credentials => "credentials (the keys are refused or lack a permission)",
            Self::Write => "writing a probe object",
            Self::Read => "reading the probe object back",
            Self::Delete => "deleting the probe object",
        })
    }
}

/// Why a storage probe failed: the step, and the store's own words.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct ProbeFailure {
    pub step: ProbeStep,
    pub message: String,
}

impl ProbeFailure {
    /// Names the step by what the store said, over the step it said it at:
    /// S3 answers a missing bucket or refused keys at the first request.
    fn of(at: ProbeStep, e: opendal::Error) -> Self {
        let message = e.to_string();
        let says = |codes: &[&str]| codes.iter().any(|c| message.contains(c));
        let step = if says(&["NoSuchBucket"]) {
            ProbeStep::Bucket
        } else if e.kind() == opendal::ErrorKind::PermissionDenied
            || says(&[
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "AccessDenied",
                "InvalidToken",
                "ExpiredToken",
            ])
        {
            ProbeStep::Credentials
        } else if e.kind() == opendal::ErrorKind::Unexpected
            && says(&["error sending request", "connect", "dns error", "tls"])
        {
            ProbeStep::Connection
        } else if at == ProbeStep::Write && e.kind() == opendal::ErrorKind::NotFound {
            ProbeStep::Bucket
        } else {
            at
        };
        Self { step, message }
    }
}

/// A location without its scheme and with `s3a://` read as `s3://`, so
/// that `file:/x`, `file:///x` and `/x` compare equal, as do
/// `s3a://b/k` and `s3://b/k`.
pub fn normalized(location: &str) -> &str {
    let rest = match location.split_once("://") {
        Some((_, rest)) => rest,
        None => location.strip_prefix("file:").unwrap_or(location),
    };
    rest.trim_start_matches('/')
}

#[cfg(test)]
mod tests {
    use super::{normalized, ProbeStep, Store};
    use crate::config::ResolvedS3;

    #[tokio::test]
    async fn a_probe_of_an_endpoint_that_is_down_names_the_connection() {
        let port = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s3 = ResolvedS3 {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: Some("key".into()),
            secret_access_key: Some("secret".into()),
            session_token: None,
        };
        let store = Store::open("s3://lake/probe", &s3).unwrap();
        let failure = store.probe().await.unwrap_err();
        assert_eq!(failure.step, ProbeStep::Connection, "{failure}");
    }

    #[test]
    fn locations_compare_without_their_scheme() {
        assert_eq!(normalized("file:///tmp/w/a"), "tmp/w/a");
        assert_eq!(normalized("file:/tmp/w/a"), "tmp/w/a");
        assert_eq!(normalized("/tmp/w/a"), "tmp/w/a");
        assert_eq!(normalized("s3a://lake/w/a"), normalized("s3://lake/w/a"));
        assert_eq!(normalized("s3://lake/w/a"), "lake/w/a");
    }
}
