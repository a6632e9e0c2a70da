//! Iceberg `FileIO` storage on S3 through OpenDAL, with floe's HTTP
//! client for plain-HTTP endpoints.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

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
/// the endpoint is plain HTTP (TLS endpoints keep OpenDAL's client).
pub(crate) fn s3_operator(
    builder: opendal::services::S3,
    s3: &ResolvedS3,
) -> opendal::Result<Operator> {
    let operator = Operator::new(builder)?;
    let plain_http = s3
        .endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    Ok(if plain_http {
        operator
            .layer(HttpClientLayer::new(QUICK_ACK_CLIENT.clone()))
            .finish()
    } else {
        operator.finish()
    })
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
            Some(s3) => Ok(Arc::new(S3Storage { s3 })),
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
    fn operator<'a>(&self, path: &'a str) -> iceberg::Result<(Operator, &'a str)> {
        let (bucket, key) = split(path)?;
        let operator = s3_operator(s3_builder(bucket, &self.s3), &self.s3)
            .map_err(io_error)?
            .layer(TimeoutLayer::new())
            .layer(RetryLayer::new());
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
        Ok(Box::new(S3Reader(op.reader(key).await.map_err(io_error)?)))
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

struct S3Reader(opendal::Reader);

#[async_trait]
impl FileRead for S3Reader {
    async fn read(&self, range: std::ops::Range<u64>) -> iceberg::Result<Bytes> {
        Ok(self.0.read(range).await.map_err(io_error)?.to_bytes())
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
}
