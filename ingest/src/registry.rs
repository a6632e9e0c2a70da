//! Where writer schemas come from: a Confluent-compatible schema registry
//! over HTTP ([`SchemaRegistryClient`]), or the schemas bundled with a
//! recording ([`crate::recording::RecordedSchemas`]). Both implement
//! [`SchemaSource`].

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::error_chain;
use serde::Deserialize;
use thiserror::Error;

/// Looks up a writer schema by its global registry id.
pub trait SchemaSource: Send + Sync {
    fn schema(&self, id: u32) -> impl Future<Output = Result<Arc<str>, RegistryError>> + Send;
}

#[derive(Debug, Clone, Error)]
pub enum RegistryError {
    /// The registry answered that no schema has this id.
    #[error("schema id {id} not found")]
    NotFound { id: u32 },
    /// No registry could be reached (or each answered with a server error)
    /// in `attempts` tries; the last failure is given.
    #[error("schema registry unavailable after {attempts} attempt(s): {last_error}")]
    Unavailable { attempts: u32, last_error: String },
    /// The registry refused the credentials.
    #[error("schema registry refused access (HTTP {status}); check the basic-auth credentials")]
    Unauthorized { status: u16 },
    /// The registry answered something floe does not understand.
    #[error("unexpected answer from the schema registry at {url}: {reason}")]
    BadResponse { url: String, reason: String },
    /// The schema is not Avro (e.g. PROTOBUF or JSON).
    #[error("schema id {id} is of type {schema_type}; floe decodes Avro only")]
    NotAvro { id: u32, schema_type: String },
    #[error("schema registry client configuration: {0}")]
    Config(String),
}

/// How to reach the registry. Defaults: 10 s timeout per request, 8
/// attempts with backoff from 200 ms doubling to 10 s (about 30 s in all)
/// before a lookup fails as unavailable.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// One or more registry base URLs, tried in turn.
    pub urls: Vec<String>,
    pub basic_auth: Option<(String, String)>,
    /// PEM file with extra CA certificates to trust (for a private CA).
    pub ca_certificate: Option<PathBuf>,
    /// Accept any server certificate. For testing only.
    pub danger_accept_invalid_certs: bool,
    pub request_timeout: Duration,
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl RegistryConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            basic_auth: None,
            ca_certificate: None,
            danger_accept_invalid_certs: false,
            request_timeout: Duration::from_secs(10),
            max_attempts: 8,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// A caching client of the Confluent Schema Registry REST API
/// (`GET /schemas/ids/{id}`). Schemas never change once registered, so a
/// schema fetched once is kept for the life of the client.
#[derive(Debug)]
pub struct SchemaRegistryClient {
    http: reqwest::Client,
    config: RegistryConfig,
    cache: Mutex<HashMap<u32, Arc<str>>>,
}

#[derive(Deserialize)]
struct SchemaResponse {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error_code: Option<i64>,
}

/// Confluent's error code for "schema not found".
const SCHEMA_NOT_FOUND: i64 = 40403;

enum Attempt {
    Done(Result<Arc<str>, RegistryError>),
    Retry(String),
}

impl SchemaRegistryClient {
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        if config.urls.is_empty() {
            return Err(RegistryError::Config("no registry URL given".into()));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .danger_accept_invalid_certs(config.danger_accept_invalid_certs);
        if let Some(path) = &config.ca_certificate {
            let pem = std::fs::read(path).map_err(|e| {
                RegistryError::Config(format!(
                    "cannot read CA certificate {}: {e}",
                    path.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                RegistryError::Config(format!("invalid CA certificate {}: {e}", path.display()))
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        Ok(Self {
            http,
            config,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Checks that the first registry URL answers as a schema registry
    /// (`GET /subjects`), without retries: for start-up checks.
    pub async fn check(&self) -> Result<(), RegistryError> {
        let (url, response) = self.get_once("subjects").await?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            status @ (401 | 403) => Err(RegistryError::Unauthorized { status }),
            status => Err(RegistryError::BadResponse {
                url,
                reason: format!("HTTP {status}"),
            }),
        }
    }

    /// One GET of `path` from the first registry URL, without retries:
    /// the URL asked and the response.
    async fn get_once(&self, path: &str) -> Result<(String, reqwest::Response), RegistryError> {
        let base = &self.config.urls[0];
        let url = format!("{}/{path}", base.trim_end_matches('/'));
        let mut request = self.http.get(&url);
        if let Some((user, password)) = &self.config.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .map_err(|e| RegistryError::Unavailable {
                attempts: 1,
                last_error: format!("{base}: {}", error_chain(&e)),
            })?;
        Ok((url, response))
    }

    /// The latest schema registered under `subject` (`None` when the
    /// subject does not exist), without retries: for start-up checks.
    pub async fn latest_schema(&self, subject: &str) -> Result<Option<Arc<str>>, RegistryError> {
        let (url, response) = self
            .get_once(&format!("subjects/{subject}/versions/latest"))
            .await?;
        let status = response.status().as_u16();
        let bad = |reason: String| RegistryError::BadResponse {
            url: url.clone(),
            reason,
        };
        match status {
            404 => Ok(None),
            401 | 403 => Err(RegistryError::Unauthorized { status }),
            200..=299 => {
                let body = response.bytes().await.map_err(|e| bad(error_chain(&e)))?;
                let r: SchemaResponse =
                    serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
                Ok(Some(Arc::from(r.schema)))
            }
            other => Err(bad(format!("HTTP {other}"))),
        }
    }

    fn cached(&self, id: u32) -> Option<Arc<str>> {
        self.cache.lock().ok()?.get(&id).cloned()
    }

    /// Fetches the schema with this id, retrying with backoff while the
    /// registry is unreachable or failing.
    pub async fn schema_by_id(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        if let Some(hit) = self.cached(id) {
            return Ok(hit);
        }
        let mut backoff = self.config.initial_backoff;
        let mut last_error = String::new();
        let attempts = self.config.max_attempts.max(1);
        for attempt in 0..attempts {
            let base = &self.config.urls[attempt as usize % self.config.urls.len()];
            match self.attempt(base, id).await {
                Attempt::Done(result) => {
                    if let Ok(schema) = &result {
                        if let Ok(mut cache) = self.cache.lock() {
                            cache.insert(id, schema.clone());
                        }
                    }
                    return result;
                }
                Attempt::Retry(reason) => {
                    last_error = format!("{base}: {reason}");
                    if attempt + 1 < attempts {
                        tracing::warn!(
                            schema_id = id,
                            attempt = attempt + 1,
                            retry_in_ms = backoff.as_millis() as u64,
                            "schema registry request failed: {last_error}"
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.config.max_backoff);
                    }
                }
            }
        }
        Err(RegistryError::Unavailable {
            attempts,
            last_error,
        })
    }

    async fn attempt(&self, base: &str, id: u32) -> Attempt {
        let url = format!("{}/schemas/ids/{id}", base.trim_end_matches('/'));
        let mut request = self.http.get(&url).header(
            "Accept",
            "application/vnd.schemaregistry.v1+json, application/json",
        );
        if let Some((user, password)) = &self.config.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(error_chain(&e)),
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return Attempt::Retry(error_chain(&e)),
        };
        let bad = |reason: String| {
            Attempt::Done(Err(RegistryError::BadResponse {
                url: url.clone(),
                reason,
            }))
        };
        if status.is_success() {
            return match serde_json::from_slice::<SchemaResponse>(&body) {
                Ok(r) => match r.schema_type.as_deref() {
                    None | Some("AVRO") => Attempt::Done(Ok(Arc::from(r.schema))),
                    Some(other) => Attempt::Done(Err(RegistryError::NotAvro {
                        id,
                        schema_type: other.to_string(),
                    })),
                },
                Err(e) => bad(format!("invalid JSON body: {e}")),
            };
        }
        match status.as_u16() {
            404 => match serde_json::from_slice::<ErrorResponse>(&body)
                .ok()
                .and_then(|e| e.error_code)
            {
                Some(SCHEMA_NOT_FOUND) => Attempt::Done(Err(RegistryError::NotFound { id })),
                _ => bad(format!(
                    "HTTP 404 without Confluent error code; is {base} a schema registry?"
                )),
            },
            401 | 403 => Attempt::Done(Err(RegistryError::Unauthorized {
                status: status.as_u16(),
            })),
            408 | 429 | 500..=599 => Attempt::Retry(format!("HTTP {status}")),
            _ => bad(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )),
        }
    }
}

impl SchemaSource for SchemaRegistryClient {
    fn schema(&self, id: u32) -> impl Future<Output = Result<Arc<str>, RegistryError>> + Send {
        self.schema_by_id(id)
    }
}

impl<S: SchemaSource> SchemaSource for Arc<S> {
    fn schema(&self, id: u32) -> impl Future<Output = Result<Arc<str>, RegistryError>> + Send {
        (**self).schema(id)
    }
}
