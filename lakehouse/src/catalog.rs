//! Opening the Iceberg catalog a lake is configured with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use iceberg::io::LocalFsStorageFactory;
use iceberg::{Catalog, CatalogBuilder};
use iceberg_catalog_sql::{SqlBindStyle, SqlCatalogBuilder};

use crate::config::{CatalogConfig, LakeConfig};
use crate::error::LakehouseError;

/// The name floe registers its catalog under (the `catalog_name` column of
/// the JDBC schema; pyiceberg's `SqlCatalog(name, ...)` must use the same).
pub const CATALOG_NAME: &str = "floe";

/// Opens (creating if needed) the catalog of `config`, with the warehouse
/// on the local filesystem.
pub async fn open_catalog(config: &LakeConfig) -> Result<Arc<dyn Catalog>, LakehouseError> {
    let warehouse = absolute(&config.warehouse)?;
    std::fs::create_dir_all(&warehouse).map_err(|source| LakehouseError::Warehouse {
        path: warehouse.display().to_string(),
        source,
    })?;
    let uri = match &config.catalog {
        CatalogConfig::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            warehouse.join("catalog.db").display()
        ),
        CatalogConfig::Sql { uri } => uri.clone(),
    };
    let bind_style = if uri.starts_with("postgres") {
        SqlBindStyle::DollarNumeric
    } else {
        SqlBindStyle::QMark
    };
    let catalog = SqlCatalogBuilder::default()
        .uri(uri.clone())
        .warehouse_location(format!("file://{}", warehouse.display()))
        .sql_bind_style(bind_style)
        .with_storage_factory(Arc::new(LocalFsStorageFactory))
        .load(CATALOG_NAME, HashMap::new())
        .await
        .map_err(|source| LakehouseError::Catalog {
            uri: redact(&uri),
            source: Box::new(source),
        })?;
    Ok(Arc::new(catalog))
}

fn absolute(path: &Path) -> Result<PathBuf, LakehouseError> {
    std::path::absolute(path).map_err(|source| LakehouseError::Warehouse {
        path: path.display().to_string(),
        source,
    })
}

/// The URI without its password, for error messages.
fn redact(uri: &str) -> String {
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
    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            super::redact("postgres://floe:secret@db:5432/lake"),
            "postgres://floe:***@db:5432/lake"
        );
        assert_eq!(
            super::redact("sqlite:///tmp/c.db?mode=rwc"),
            "sqlite:///tmp/c.db?mode=rwc"
        );
    }
}
