//! Iceberg `FileIO` storage on S3 through OpenDAL, with floe's HTTP
//! client for plain-HTTP endpoints.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig,
    StorageFactory, CLIENT_REGION, S3_ACCESS_KEY_ID, S3_ENDPOINT, S3_PATH_STYLE_ACCESS, S3_REGION,
    S3_SECRET_ACCESS_KEY, S3_SESSION_TOKEN,
};
use opendal::layers::{HttpClientLayer, RetryLayer, TimeoutLayer};
use opendal::Operator;
use serde::{Deserialize, Serialize};

use super::quick_ack::QUICK_ACK_CLIENT;
use crate::config::ResolvedS3;

/// An OpenDAL S3 service for `bucket` with the lake's S3 settings; the
/// caller adds a root and its own options.
pub(crate) fn s3_builder(bucket: &str, s3: &ResolvedS3) -> opendal::services::S3 {
    let mut builder = opendal::services::S3::default()
        .bucket(bucket)
        .region(&s3.region);
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.endpoint(endpoint);
    }
    if !s3.path_style {
        builder = builder.enable_virtual_host_style();
    }
    if let Some(key) = &s3.access_key_id {
        builder = builder.access_key_id(key);
    }
    if let Some(secret) = &s3.secret_access_key {
        builder = builder.secret_access_key(secret);
    }
    if let Some(token) = &s3.session_token {
        builder = builder.session_token(token);
    }
    builder
}

/// The operator of `builder`, sending with floe's quick-ACK client when
/// the endpoint is plain HTTP and no HTTP proxy is configured (TLS
/// endpoints and proxied ones keep OpenDAL's client, which speaks TLS and
/// honours the proxy variables).
pub(crate) fn s3_operator(
    builder: opendal::services::S3,
    s3: &ResolvedS3,
) -> opendal::Result<Operator> {
    let operator = Operator::new(builder)?;
    if quick_ack_applies(s3.endpoint.as_deref(), *PROXIED) {
        Ok(operator
            .layer(HttpClientLayer::new(QUICK_ACK_CLIENT.clone()))
            .finish())
    } else {
        Ok(operator.finish())
    }
}

/// Proxy variables reqwest (OpenDAL's client) reads for `http://` URLs.
const HTTP_PROXY_VARS: [&str; 4] = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"];

/// Whether one of [`HTTP_PROXY_VARS`] is set, read once: an operator is
/// built for every file read.
static PROXIED: LazyLock<bool> = LazyLock::new(|| proxied(|k| std::env::var(k).ok()));

fn proxied(env: impl Fn(&str) -> Option<String>) -> bool {
    HTTP_PROXY_VARS
        .iter()
        .any(|k| env(k).is_some_and(|v| !v.is_empty()))
}

/// Whether requests to `endpoint` go through floe's quick-ACK client.
fn quick_ack_applies(endpoint: Option<&str>, proxied: bool) -> bool {
    endpoint.is_some_and(|e| e.starts_with("http://")) && !proxied
}

/// Builds [`S3Storage`] from the lake's S3 settings, with what the
/// catalog says of the same settings on top (a REST catalog can vend an
/// endpoint or credentials). Settings floe does not handle itself
/// (server-side encryption, assumed roles, anonymous access) leave the
/// storage to iceberg-storage-opendal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct S3StorageFactory {
    pub(crate) s3: ResolvedS3,
}

/// The FileIO properties [`S3StorageFactory`] reads itself.
const HANDLED: [&str; 7] = [
    S3_ENDPOINT,
    S3_REGION,
    CLIENT_REGION,
    S3_PATH_STYLE_ACCESS,
    S3_ACCESS_KEY_ID,
    S3_SECRET_ACCESS_KEY,
    S3_SESSION_TOKEN,
];

impl S3StorageFactory {
    /// The settings for `props`, or none when they need more than
    /// [`S3Storage`] does.
    fn settings(&self, props: &HashMap<String, String>) -> Option<ResolvedS3> {
        let unhandled = props
            .keys()
            .any(|k| k.starts_with("s3.") && !HANDLED.contains(&k.as_str()));
        if unhandled {
            return None;
        }
        let mut s3 = self.s3.clone();
        let set = |field: &mut Option<String>, key: &str| {
            if let Some(v) = props.get(key) {
                *field = Some(v.clone());
            }
        };
        set(&mut s3.endpoint, S3_ENDPOINT);
        set(&mut s3.access_key_id, S3_ACCESS_KEY_ID);
        set(&mut s3.secret_access_key, S3_SECRET_ACCESS_KEY);
        set(&mut s3.session_token, S3_SESSION_TOKEN);
        // iceberg's order: the client's region before the bucket's
        if let Some(region) = props.get(CLIENT_REGION).or_else(|| props.get(S3_REGION)) {
            s3.region = region.clone();
        }
        if let Some(path_style) = props.get(S3_PATH_STYLE_ACCESS) {
            s3.path_style = matches!(
                path_style.to_lowercase().as_str(),
                "true" | "t" | "1" | "on"
            );
        }
        Some(s3)
    }
}

#[typetag::serde(name = "FloeS3StorageFactory")]
impl StorageFactory for S3StorageFactory {
    fn build(&self, config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        match self.settings(config.props()) {
            Some(s3) => Ok(Arc::new(S3Storage::new(s3))),
            None => iceberg_storage_opendal::OpenDalStorageFactory::S3 {
                customized_credential_load: None,
            }
            .build(config),
        }
    }
}

/// `s3://` (also `s3a://`, `s3n://`) files, as iceberg-storage-opendal
/// reads and writes them: the same OpenDAL calls, per-attempt timeouts
/// inside retries of temporary failures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct S3Storage {
    s3: ResolvedS3,
    /// Operators by bucket, built once: building one for every file (its
    /// signer and credential chain) was about 3% of a scan's CPU over a
    /// table of small files.
    #[serde(skip)]
    operators: Arc<Mutex<HashMap<String, Operator>>>,
}

fn io_error(e: opendal::Error) -> iceberg::Error {
    // the opendal error stays the source: floe tells an outage from a
    // refusal by it (`crate::error::iceberg_is_retryable`)
    iceberg::Error::new(
        iceberg::ErrorKind::Unexpected,
        "Failure in doing io operation",
    )
    .with_source(e)
}

/// The bucket of an `s3://bucket/key` location, and its key.
fn split(path: &str) -> iceberg::Result<(&str, &str)> {
    let invalid = || {
        iceberg::Error::new(
            iceberg::ErrorKind::DataInvalid,
            format!("Invalid s3 url: {path}, expected s3://bucket/key"),
        )
    };
    let rest = ["s3://", "s3a://", "s3n://"]
        .iter()
        .find_map(|scheme| path.strip_prefix(scheme))
        .ok_or_else(invalid)?;
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() => Ok((bucket, key)),
        _ => Err(invalid()),
    }
}

impl S3Storage {
    fn new(s3: ResolvedS3) -> Self {
        Self {
            s3,
            operators: Arc::default(),
        }
    }

    fn operator<'a>(&self, path: &'a str) -> iceberg::Result<(Operator, &'a str)> {
        let (bucket, key) = split(path)?;
        // a poisoned lock only means another read panicked while inserting
        let mut operators = self.operators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(operator) = operators.get(bucket) {
            return Ok((operator.clone(), key));
        }
        let operator = s3_operator(s3_builder(bucket, &self.s3), &self.s3)
            .map_err(io_error)?
            .layer(TimeoutLayer::new())
            .layer(RetryLayer::new());
        operators.insert(bucket.to_string(), operator.clone());
        Ok((operator, key))
    }
}

#[async_trait]
#[typetag::serde(name = "FloeS3Storage")]
impl Storage for S3Storage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        let (op, key) = self.operator(path)?;
        op.exists(key).await.map_err(io_error)
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let (op, key) = self.operator(path)?;
        let meta = op.stat(key).await.map_err(io_error)?;
        Ok(FileMetadata {
            size: meta.content_length(),
        })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let (op, key) = self.operator(path)?;
        Ok(op.read(key).await.map_err(io_error)?.to_bytes())
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let (op, key) = self.operator(path)?;
        Ok(Box::new(S3Reader::new(
            op.reader(key).await.map_err(io_error)?,
        )))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        let (op, key) = self.operator(path)?;
        op.write(key, bs).await.map_err(io_error)?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let (op, key) = self.operator(path)?;
        Ok(Box::new(S3Writer(op.writer(key).await.map_err(io_error)?)))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        let (op, key) = self.operator(path)?;
        op.delete(key).await.map_err(io_error)
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let (op, key) = self.operator(path)?;
        let folder = if key.ends_with('/') {
            key.to_string()
        } else {
            format!("{key}/")
        };
        op.delete_with(&folder)
            .recursive(true)
            .await
            .map_err(io_error)
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        // one batch deleter per bucket
        let mut deleters: HashMap<String, opendal::Deleter> = HashMap::new();
        while let Some(path) = paths.next().await {
            let (bucket, key) = split(&path)?;
            let deleter = match deleters.entry(bucket.to_string()) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    let (op, _) = self.operator(&path)?;
                    entry.insert(op.deleter().await.map_err(io_error)?)
                }
            };
            deleter.delete(key.to_string()).await.map_err(io_error)?;
        }
        for (_, mut deleter) in deleters {
            deleter.close().await.map_err(io_error)?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Reads of one file, the last read kept: a Parquet reader's first read
/// of a small file (its footer, with a prefetch hint larger than the file)
/// is the whole file, and its column reads then come from memory instead
/// of a second request each. Files of a table never change.
struct S3Reader {
    reader: opendal::Reader,
    last: Mutex<Option<(u64, Bytes)>>,
}

/// The largest read an [`S3Reader`] keeps: a small file whole, not the
/// column chunks of a large one.
const KEPT_READ_BYTES: usize = 4 << 20;

impl S3Reader {
    fn new(reader: opendal::Reader) -> Self {
        Self {
            reader,
            last: Mutex::new(None),
        }
    }

    /// `range` out of the kept read, if it holds all of it.
    fn kept(&self, range: &std::ops::Range<u64>) -> Option<Bytes> {
        let last = self.last.lock().ok()?;
        let (start, bytes) = last.as_ref()?;
        let from = range.start.checked_sub(*start)? as usize;
        let to = range.end.checked_sub(*start)? as usize;
        (from <= to && to <= bytes.len()).then(|| bytes.slice(from..to))
    }
}

#[async_trait]
impl FileRead for S3Reader {
    async fn read(&self, range: std::ops::Range<u64>) -> iceberg::Result<Bytes> {
        if let Some(bytes) = self.kept(&range) {
            return Ok(bytes);
        }
        let start = range.start;
        let bytes = self.reader.read(range).await.map_err(io_error)?.to_bytes();
        if bytes.len() <= KEPT_READ_BYTES {
            if let Ok(mut last) = self.last.lock() {
                *last = Some((start, bytes.clone()));
            }
        }
        Ok(bytes)
    }
}

struct S3Writer(opendal::Writer);

#[async_trait]
impl FileWrite for S3Writer {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        self.0.write(bs).await.map_err(io_error)
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        self.0.close().await.map_err(io_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_split_into_bucket_and_key() {
        assert_eq!(
            split("s3://lake/wh/t/data/a.parquet").ok(),
            Some(("lake", "wh/t/data/a.parquet"))
        );
        assert_eq!(split("s3a://lake/k").ok(), Some(("lake", "k")));
        assert!(split("s3://lake").is_err());
        assert!(split("s3:///key").is_err());
        assert!(split("gs://lake/key").is_err());
    }

    #[test]
    fn only_plain_http_endpoints_without_a_proxy_take_the_quick_ack_client() {
        let none = proxied(|_: &str| None);
        assert!(quick_ack_applies(Some("http://127.0.0.1:3900"), none));
        assert!(!quick_ack_applies(
            Some("https://minio.internal:9000"),
            none
        ));
        assert!(!quick_ack_applies(None, none));
        let set = proxied(|k: &str| (k == "HTTP_PROXY").then(|| "http://proxy:3128".to_string()));
        assert!(!quick_ack_applies(Some("http://127.0.0.1:3900"), set));
        let empty = proxied(|k: &str| (k == "http_proxy").then(String::new));
        assert!(quick_ack_applies(Some("http://127.0.0.1:3900"), empty));
    }

    /// The lake's S3 settings of these tests: Garage on loopback.
    fn lake_s3() -> ResolvedS3 {
        ResolvedS3 {
            endpoint: Some("http://127.0.0.1:3900".into()),
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: Some("lake-key".into()),
            secret_access_key: Some("lake-secret".into()),
            session_token: None,
        }
    }

    #[test]
    fn the_catalogs_s3_properties_override_the_lakes_and_others_fall_back() {
        let factory = S3StorageFactory { s3: lake_s3() };
        let props = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let vended = factory
            .settings(&props(&[
                (S3_ACCESS_KEY_ID, "vended-key"),
                (S3_REGION, "eu-west-1"),
                (CLIENT_REGION, "eu-central-1"),
                (S3_PATH_STYLE_ACCESS, "False"),
                ("rest-metrics-reporting-enabled", "true"),
            ]))
            .expect("all handled");
        assert_eq!(vended.access_key_id.as_deref(), Some("vended-key"));
        assert_eq!(vended.secret_access_key.as_deref(), Some("lake-secret"));
        assert_eq!(vended.region, "eu-central-1");
        assert!(!vended.path_style);
        assert_eq!(vended.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        // server-side encryption is iceberg-storage-opendal's to apply
        assert!(factory.settings(&props(&[("s3.sse.type", "s3")])).is_none());
    }

    #[test]
    fn one_operator_per_bucket_serves_every_file_in_it() {
        let storage = S3Storage::new(lake_s3());
        let (_, key) = storage.operator("s3://lake/t/data/a.parquet").unwrap();
        assert_eq!(key, "t/data/a.parquet");
        storage.operator("s3://lake/t/data/b.parquet").unwrap();
        assert_eq!(storage.operators.lock().unwrap().len(), 1);
        storage.operator("s3://other/x.parquet").unwrap();
        let built: Vec<String> = storage.operators.lock().unwrap().keys().cloned().collect();
        assert_eq!(built.len(), 2, "{built:?}");
        // a clone (iceberg clones its storage) shares them
        storage.clone().operator("s3://other/y.parquet").unwrap();
        assert_eq!(storage.operators.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_read_within_the_last_one_needs_no_request() {
        let dir = std::env::temp_dir().join(format!("floe-s3-reader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let op = Operator::new(opendal::services::Fs::default().root(dir.to_str().unwrap()))
            .unwrap()
            .finish();
        let file: Vec<u8> = (0..100u8).collect();
        op.write("f.parquet", file.clone()).await.unwrap();
        let reader = S3Reader::new(op.reader("f.parquet").await.unwrap());
        assert_eq!(
            reader.read(0..100).await.unwrap(),
            Bytes::from(file.clone())
        );
        // gone from storage: what the first read held still reads
        op.delete("f.parquet").await.unwrap();
        assert_eq!(
            reader.read(4..40).await.unwrap(),
            Bytes::from(file[4..40].to_vec())
        );
        assert_eq!(reader.read(100..100).await.unwrap().len(), 0);
        // and what it did not hold is asked of storage
        assert!(reader.read(90..110).await.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
