//! Opening the lake a [`LakeConfig`] describes: the Iceberg catalog (SQL on
//! SQLite or Postgres, or REST), the storage its FileIO writes to (local or
//! S3), and the pointer floe commits through.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use iceberg::io::{
    StorageFactory, S3_ACCESS_KEY_ID, S3_ENDPOINT, S3_PATH_STYLE_ACCESS, S3_REGION,
    S3_SECRET_ACCESS_KEY, S3_SESSION_TOKEN,
};
use iceberg::{Catalog, CatalogBuilder};
use iceberg_catalog_rest::{
    RestCatalogBuilder, REST_CATALOG_PROP_URI, REST_CATALOG_PROP_WAREHOUSE,
};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalogBuilder};
use iceberg_storage_opendal::OpenDalStorageFactory;

use crate::config::{CatalogConfig, LakeConfig, Warehouse};
use crate::error::LakehouseError;
use crate::storage::S3StorageFactory;
use crate::transaction::{CatalogPointer, RestCatalogPointer, SqlCatalogPointer};

pub use crate::config::CATALOG_NAME;

/// An open lake: its catalog, and the compare-and-swap pointer that floe's
/// own commits go through (the same catalog database). Every write goes
/// through the operations (`crate::operations`) and the transaction layer;
/// the catalog is handed out for reading.
#[derive(Clone)]
pub struct Lake {
    config: LakeConfig,
    catalog: Arc<dyn Catalog>,
    pointer: CatalogPointer,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake")
            .field("warehouse", &self.config.warehouse)
            .finish_non_exhaustive()
    }
}

impl Lake {
    /// Opens (creating if needed) the catalog and warehouse of `config`,
    /// with S3 settings falling back to the process environment.
    pub async fn open(config: &LakeConfig) -> Result<Self, LakehouseError> {
        let catalog = open_catalog(config).await?;
        let pointer = match &config.catalog {
            CatalogConfig::Rest {
                uri,
                warehouse,
                token,
            } => {
                let token = token.clone().or_else(|| std::env::var(REST_TOKEN_ENV).ok());
                RestCatalogPointer::connect(uri, warehouse.as_deref(), token.as_deref())
                    .await
                    .map_err(|reason| LakehouseError::RestCatalog {
                        uri: uri.clone(),
                        reason,
                    })?
                    .into()
            }
            _ => {
                let uri = catalog_uri(config)?;
                SqlCatalogPointer::connect(&uri)
                    .await
                    .map_err(|source| LakehouseError::CatalogDatabase {
                        uri: redact(&uri),
                        source,
                    })?
                    .into()
            }
        };
        Ok(Self {
            config: config.clone(),
            catalog,
            pointer,
        })
    }

    pub fn config(&self) -> &LakeConfig {
        &self.config
    }

    /// The catalog, to read tables (writes go through floe's operations).
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    /// Where floe's commits swap a table's metadata pointer.
    pub fn pointer(&self) -> &CatalogPointer {
        &self.pointer
    }
}

/// The environment variable a REST catalog's bearer token may come from.
pub const REST_TOKEN_ENV: &str = "FLOE_REST_TOKEN";

/// The catalog's connection URI for `config`.
pub fn catalog_uri(config: &LakeConfig) -> Result<String, LakehouseError> {
    match &config.catalog {
        CatalogConfig::Sql { uri } | CatalogConfig::Rest { uri, .. } => Ok(uri.clone()),
        CatalogConfig::Sqlite { path } => {
            let file = match (path, config.warehouse.local_dir()) {
                (Some(path), _) => path.clone(),
                (None, Some(dir)) => dir.join("catalog.db"),
                (None, None) => return Err(LakehouseError::CatalogPathNeeded),
            };
            let file = absolute(file)?;
            if let Some(parent) = file.parent() {
                create_dir(parent.to_path_buf())?;
            }
            Ok(format!("sqlite://{}?mode=rwc", file.display()))
        }
    }
}

/// Opens (creating if needed) the catalog of `config`. Prefer [`Lake::open`],
/// which also connects the commit pointer.
pub async fn open_catalog(config: &LakeConfig) -> Result<Arc<dyn Catalog>, LakehouseError> {
    if let Some(dir) = config.warehouse.local_dir() {
        create_dir(absolute(dir.to_path_buf())?)?;
    }
    let location = config
        .warehouse
        .location()
        .map_err(|source| LakehouseError::Warehouse {
            path: config.warehouse.to_string(),
            source,
        })?;
    let (factory, mut props) = storage(config, |key| std::env::var(key).ok());
    if let CatalogConfig::Rest {
        uri,
        warehouse,
        token,
    } = &config.catalog
    {
        props.insert(REST_CATALOG_PROP_URI.to_string(), uri.clone());
        props.insert(
            REST_CATALOG_PROP_WAREHOUSE.to_string(),
            warehouse.clone().unwrap_or(location),
        );
        if let Some(t) = token.clone().or_else(|| std::env::var(REST_TOKEN_ENV).ok()) {
            props.insert("token".to_string(), t);
        }
        let catalog = RestCatalogBuilder::default()
            .with_storage_factory(factory)
            .load(CATALOG_NAME, props)
            .await
            .map_err(|source| LakehouseError::Catalog {
                uri: uri.clone(),
                source: Box::new(source),
            })?;
        return Ok(Arc::new(catalog));
    }
    let uri = catalog_uri(config)?;
    if !uri.starts_with("sqlite:") {
        probe_database(&uri).await?;
    }
    let bind_style = || {
        if uri.starts_with("postgres") {
            SqlBindStyle::DollarNumeric
        } else {
            SqlBindStyle::QMark
        }
    };
    // the catalog creates its tables if they are missing, and Postgres's
    // CREATE TABLE IF NOT EXISTS can fail on a unique index when several
    // processes (ingest instances) start on a new catalog database at
    // once: the loser finds the tables there when it tries again
    let mut attempt = 0;
    loop {
        let loaded = SqlCatalogBuilder::default()
            .uri(uri.clone())
            .warehouse_location(location.clone())
            .sql_bind_style(bind_style())
            .with_storage_factory(factory.clone())
            .load(CATALOG_NAME, props.clone())
            .await;
        match loaded {
            Ok(catalog) => return Ok(Arc::new(catalog)),
            Err(e) if attempt < 3 && lost_creation_race(&e) => {
                attempt += 1;
                tracing::info!(
                    "the catalog's tables were being created by another process; trying again: {e}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            Err(source) => {
                return Err(LakehouseError::Catalog {
                    uri: redact(&uri),
                    source: Box::new(source),
                })
            }
        }
    }
}

/// Whether opening the catalog failed because another process was
/// creating its tables at the same moment.
fn lost_creation_race(e: &iceberg::Error) -> bool {
    let text = format!("{e:?}");
    text.contains("duplicate key value violates unique constraint")
        || text.contains("already exists")
}

/// How long the catalog database has to accept a first connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the catalog database once, so that one that is down or
/// refuses floe is reported within seconds and with why; the catalog's
/// connection pool would wait 30 s and say only "pool timed out".
async fn probe_database(uri: &str) -> Result<(), LakehouseError> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let failed = |source| LakehouseError::CatalogDatabase {
        uri: redact(uri),
        source,
    };
    match tokio::time::timeout(PROBE_TIMEOUT, sqlx::AnyConnection::connect(uri)).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(failed(e)),
        Err(_) => Err(failed(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
        )))),
    }
}

/// The FileIO storage of the warehouse and the catalog properties that
/// configure it.
fn storage(
    config: &LakeConfig,
    env: impl Fn(&str) -> Option<String>,
) -> (Arc<dyn StorageFactory>, HashMap<String, String>) {
    match config.warehouse {
        Warehouse::Local(_) => (Arc::new(OpenDalStorageFactory::Fs), HashMap::new()),
        Warehouse::S3 { .. } => {
            let s3 = config.s3.resolve(env);
            // the catalog is told the same settings: a REST catalog and any
            // reader of its properties sees where the files are
            let mut props = HashMap::from([
                (S3_REGION.to_string(), s3.region.clone()),
                (S3_PATH_STYLE_ACCESS.to_string(), s3.path_style.to_string()),
            ]);
            let optional = [
                (S3_ENDPOINT, s3.endpoint.clone()),
                (S3_ACCESS_KEY_ID, s3.access_key_id.clone()),
                (S3_SECRET_ACCESS_KEY, s3.secret_access_key.clone()),
                (S3_SESSION_TOKEN, s3.session_token.clone()),
            ];
            props.extend(
                optional
                    .into_iter()
                    .filter_map(|(key, value)| Some((key.to_string(), value?))),
            );
            (Arc::new(S3StorageFactory { s3 }), props)
        }
    }
}

fn absolute(path: PathBuf) -> Result<PathBuf, LakehouseError> {
    std::path::absolute(&path).map_err(|source| LakehouseError::Warehouse {
        path: path.display().to_string(),
        source,
    })
}

fn create_dir(dir: PathBuf) -> Result<(), LakehouseError> {
    std::fs::create_dir_all(&dir).map_err(|source| LakehouseError::Warehouse {
        path: dir.display().to_string(),
        source,
    })
}

/// The URI without its password, for error messages.
pub(crate) fn redact(uri: &str) -> String {
    match (uri.find("://"), uri.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &uri[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***{}", &uri[..scheme_end], &uri[at..]),
                None => uri.to_string(),
            }
        }
        _ => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://floe:secret@db:5432/lake"),
            "postgres://floe:***@db:5432/lake"
        );
        assert_eq!(
            redact("sqlite:///tmp/c.db?mode=rwc"),
            "sqlite:///tmp/c.db?mode=rwc"
        );
    }

    #[test]
    fn s3_settings_come_from_config_then_environment() {
        let mut config = LakeConfig {
            warehouse: "s3://lake/wh".into(),
            ..LakeConfig::default()
        };
        config.s3.endpoint = Some("http://127.0.0.1:3900".into());
        config.s3.access_key_id = Some("from-config".into());
        let env = |key: &str| match key {
            "AWS_ACCESS_KEY_ID" => Some("from-env".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret-from-env".to_string()),
            _ => None,
        };
        let (_, props) = storage(&config, env);
        assert_eq!(props[S3_ENDPOINT], "http://127.0.0.1:3900");
        assert_eq!(props[S3_ACCESS_KEY_ID], "from-config");
        assert_eq!(props[S3_SECRET_ACCESS_KEY], "secret-from-env");
        assert_eq!(props[S3_REGION], "us-east-1");
        // a custom endpoint means path-style addressing unless told otherwise
        assert_eq!(props[S3_PATH_STYLE_ACCESS], "true");
        assert!(!props.contains_key(S3_SESSION_TOKEN));
    }

    #[test]
    fn an_s3_warehouse_needs_a_catalog_path_or_uri() {
        let config = LakeConfig {
            warehouse: "s3://lake/wh".into(),
            ..LakeConfig::default()
        };
        let err = catalog_uri(&config).unwrap_err();
        assert!(matches!(err, LakehouseError::CatalogPathNeeded), "{err}");
    }

    #[test]
    fn warehouse_locations() {
        assert_eq!(
            Warehouse::from("s3://lake/a/b/").location().unwrap(),
            "s3://lake/a/b"
        );
        assert_eq!(
            Warehouse::from("s3://lake").location().unwrap(),
            "s3://lake"
        );
        let local = Warehouse::from("/tmp/wh").location().unwrap();
        assert_eq!(local, "file:///tmp/wh");
    }
}
