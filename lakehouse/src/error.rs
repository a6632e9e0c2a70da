//! The lakehouse's errors.

use thiserror::Error;

use crate::schema::SchemaError;

#[derive(Debug, Error)]
pub enum LakehouseError {
    #[error("cannot open the catalog at {uri}: {source}")]
    Catalog {
        uri: String,
        source: Box<iceberg::Error>,
    },
    #[error("cannot reach the REST catalog at {uri}: {reason}")]
    RestCatalog { uri: String, reason: String },
    #[error("cannot connect to the catalog database at {uri}: {source}")]
    CatalogDatabase { uri: String, source: sqlx::Error },
    #[error(
        "an S3 warehouse needs a catalog it does not hold: set `[lake.catalog] path` \
         (a local SQLite file) or `type = \"sql\"` with a `uri`"
    )]
    CatalogPathNeeded,
    #[error("cannot create the warehouse directory {path}: {source}")]
    Warehouse {
        path: String,
        source: std::io::Error,
    },
    #[error("partition field {field:?}: {reason}")]
    PartitionSpec { field: String, reason: String },
    /// Only truncates arrived for a table the lake does not have: nothing
    /// to do (see [`crate::Lake::writer`]).
    #[error("table {table} does not exist yet and the changes are truncates only")]
    NoTableYet { table: String },
    #[error("table {table}: {source}")]
    Schema { table: String, source: SchemaError },
    #[error("Iceberg operation {operation} on {table} failed: {source}")]
    Iceberg {
        operation: &'static str,
        table: String,
        source: Box<iceberg::Error>,
    },
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        source: arrow_schema::ArrowError,
    },
    #[error("table {table}: {reason}")]
    SchemaMismatch { table: String, reason: String },
    #[error("commit to {table} failed: {source}")]
    Commit {
        table: String,
        source: crate::commit::CommitError,
    },
    #[error("table {table}: {source}")]
    Store {
        table: String,
        source: crate::store::StoreError,
    },
    #[error("the writer of {table} failed during an earlier commit; open it again (its index may be ahead of the table)")]
    WriterPoisoned { table: String },
}
