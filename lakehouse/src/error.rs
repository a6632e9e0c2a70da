//! The lakehouse's errors, and which of them waiting can fix.
//!
//! Only an outage is retried: the catalog database, the REST catalog or
//! the object store not answering, timing out or failing inside. Every
//! other error is permanent wherever it is raised, because retrying would
//! only repeat it: data or a schema the table refuses, a configuration
//! mistake, storage refusing the credentials, naming a bucket that does not
//! exist or missing a file the table needs. [`LakehouseError::is_retryable`]
//! says which is which; callers never match on messages.

use thiserror::Error;

use crate::spec::schema::SchemaError;

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
    #[error("{}", iceberg_text(operation, table, source))]
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
        source: crate::transaction::CommitError,
    },
    #[error("table {table}: {source}")]
    Store {
        table: String,
        source: crate::spec::store::StoreError,
    },
    /// A table property floe cannot honour (a codec it cannot write).
    #[error("table {table}: {reason}")]
    TableProperty { table: String, reason: String },
    #[error("the writer of {table} failed during an earlier commit; open it again (its index may be ahead of the table)")]
    WriterPoisoned { table: String },
    /// The writer's index points at a data file whose partition it does
    /// not know, so it cannot file a delete of its rows where readers
    /// apply it. Waiting does not fix the writer's state; a writer opened
    /// again from the table reads every file's partition.
    #[error("table {table}: a delete names the data file {file}, whose partition the writer does not know (a bug in floe); nothing was committed, and a writer opened again from the table (floe started again) reads every file's partition")]
    UnknownDataFile { table: String, file: String },
    /// A truncate arrived after changes made later on another partition,
    /// and those changes could not be read again to apply after it.
    #[error("table {table}: a truncate of {topic} arrived after changes made later on another partition, which must be applied again after it: {reason}")]
    Reread {
        table: String,
        topic: String,
        reason: String,
        /// The source did not answer (Kafka down); a writer without a
        /// source to read from cannot be fixed by waiting.
        retryable: bool,
    },
    /// The runtime shut down while files were being written on its
    /// blocking pool (see [`crate::spec::parallel`]); nothing was committed.
    #[error("{operation} was cut short: the runtime is shutting down")]
    ShuttingDown { operation: &'static str },
}

/// An iceberg error as a sentence: a missing table or namespace named as
/// people write it (iceberg's own text shows the identifier's debug form).
fn iceberg_text(operation: &str, table: &str, source: &iceberg::Error) -> String {
    match source.kind() {
        iceberg::ErrorKind::TableNotFound => format!("no table {table} in the catalog"),
        iceberg::ErrorKind::NamespaceNotFound => {
            let namespace = table.rsplit_once('.').map_or(table, |(ns, _)| ns);
            format!("no namespace {namespace} in the catalog (for {table})")
        }
        _ => format!("Iceberg operation {operation} on {table} failed: {source}"),
    }
}

/// Maps an iceberg error of `operation` on table `table`.
pub(crate) fn iceberg_error(
    operation: &'static str,
    table: &iceberg::TableIdent,
) -> impl FnOnce(iceberg::Error) -> LakehouseError {
    let table = table.to_string();
    move |source| LakehouseError::Iceberg {
        operation,
        table,
        source: Box::new(source),
    }
}

impl LakehouseError {
    /// Names `table` in a schema mismatch raised where the table is not
    /// known (the key index, a tail's rows), so the error a user reads
    /// says which table; every other error is returned as it is.
    pub(crate) fn in_table(self, table: &impl std::fmt::Display) -> Self {
        match self {
            LakehouseError::SchemaMismatch { table: t, reason } if t.is_empty() => {
                LakehouseError::SchemaMismatch {
                    table: table.to_string(),
                    reason,
                }
            }
            other => other,
        }
    }

    /// Whether another writer committed first: the table moved on, and the
    /// work is planned again on it.
    pub fn is_conflict(&self) -> bool {
        matches!(self, LakehouseError::Commit { source, .. } if source.is_conflict())
    }

    /// Whether waiting (and opening the table again) may fix this: an
    /// outage. See the module's documentation.
    pub fn is_retryable(&self) -> bool {
        match self {
            LakehouseError::Catalog { source, .. } | LakehouseError::Iceberg { source, .. } => {
                iceberg_is_retryable(source)
            }
            LakehouseError::RestCatalog { .. } => true,
            LakehouseError::CatalogDatabase { source, .. } => sqlx_is_retryable(source),
            LakehouseError::Commit { source, .. } => source.is_retryable(),
            LakehouseError::Store { source, .. } => source.retryable,
            // the writer is opened again, from the table as committed
            LakehouseError::WriterPoisoned { .. } => true,
            // a process that starts again writes the files again
            LakehouseError::ShuttingDown { .. } => true,
            LakehouseError::Reread { retryable, .. } => *retryable,
            LakehouseError::CatalogPathNeeded
            | LakehouseError::Warehouse { .. }
            | LakehouseError::PartitionSpec { .. }
            | LakehouseError::NoTableYet { .. }
            | LakehouseError::Schema { .. }
            | LakehouseError::Arrow { .. }
            | LakehouseError::SchemaMismatch { .. }
            | LakehouseError::TableProperty { .. }
            | LakehouseError::UnknownDataFile { .. } => false,
        }
    }
}

/// An iceberg error: an I/O failure is classified by its cause (the
/// object store's, the catalog database's, the HTTP client's); data iceberg
/// refuses (`DataInvalid`: a value its writer cannot hold, a corrupt file)
/// and unsupported features are permanent, a lost commit race is not.
pub(crate) fn iceberg_is_retryable(e: &iceberg::Error) -> bool {
    use iceberg::ErrorKind;
    match e.kind() {
        ErrorKind::CatalogCommitConflicts => true,
        ErrorKind::Unexpected => cause_is_retryable(e).unwrap_or(e.retryable()),
        _ => false,
    }
}

/// Walks `e`'s causes for one floe knows how to classify.
fn cause_is_retryable(e: &(dyn std::error::Error + 'static)) -> Option<bool> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = next {
        if let Some(o) = cause.downcast_ref::<opendal::Error>() {
            return Some(opendal_is_retryable(o));
        }
        if let Some(s) = cause.downcast_ref::<sqlx::Error>() {
            return Some(sqlx_is_retryable(s));
        }
        if let Some(r) = cause.downcast_ref::<reqwest::Error>() {
            return Some(
                r.is_connect() || r.is_timeout() || r.status().is_some_and(|s| s.is_server_error()),
            );
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io_is_retryable(io));
        }
        next = cause.source();
    }
    None
}

/// An object-store error: refusals (credentials, a missing bucket or
/// file, a bad configuration) are permanent; failures to get an answer
/// (connection refused or reset, timeouts, 5xx, throttling) are outages.
pub(crate) fn opendal_is_retryable(e: &opendal::Error) -> bool {
    use opendal::ErrorKind;
    match e.kind() {
        ErrorKind::PermissionDenied
        | ErrorKind::ConfigInvalid
        | ErrorKind::NotFound
        | ErrorKind::Unsupported
        | ErrorKind::IsADirectory
        | ErrorKind::NotADirectory
        | ErrorKind::IsSameFile
        | ErrorKind::RangeNotSatisfied => false,
        // S3 answers an unknown bucket with 404 NoSuchBucket
        _ if e.to_string().contains("NoSuchBucket") => false,
        _ => true,
    }
}

/// A catalog-database error: the database refusing (a wrong password, a
/// missing database or table, a constraint) is permanent; not reaching it
/// is an outage.
pub(crate) fn sqlx_is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(io) => io_is_retryable(io),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

fn io_is_retryable(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    !matches!(
        e.kind(),
        ErrorKind::PermissionDenied
            | ErrorKind::NotFound
            | ErrorKind::InvalidInput
            | ErrorKind::InvalidData
            | ErrorKind::AlreadyExists
            | ErrorKind::Unsupported
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_failure(kind: opendal::ErrorKind, message: &str) -> iceberg::Error {
        iceberg::Error::new(
            iceberg::ErrorKind::Unexpected,
            "Failure in doing io operation",
        )
        .with_source(opendal::Error::new(kind, message))
    }

    #[test]
    fn only_outages_are_retried() {
        let iceberg_error = |source| LakehouseError::Iceberg {
            operation: "write data file",
            table: "t".into(),
            source: Box::new(source),
        };
        // the store refusing: credentials, a bucket, a file
        for (kind, message) in [
            (opendal::ErrorKind::PermissionDenied, "InvalidAccessKeyId"),
            (opendal::ErrorKind::NotFound, "object not found"),
            (
                opendal::ErrorKind::Unexpected,
                "S3Error { code: \"NoSuchBucket\" }",
            ),
            (opendal::ErrorKind::ConfigInvalid, "endpoint is not a URL"),
        ] {
            let e = iceberg_error(io_failure(kind, message));
            assert!(!e.is_retryable(), "{kind:?} {message}: {e}");
        }
        // the store not answering
        for kind in [
            opendal::ErrorKind::Unexpected,
            opendal::ErrorKind::RateLimited,
        ] {
            let e = iceberg_error(io_failure(kind, "connection refused"));
            assert!(e.is_retryable(), "{kind:?}: {e}");
        }
        // a value iceberg's writer refuses (as 24:00:00 once was)
        let refused = iceberg::Error::new(iceberg::ErrorKind::DataInvalid, "Invalid time");
        assert!(!iceberg_error(refused).is_retryable());
        // the catalog database: down is an outage, a refusal is not
        let down = LakehouseError::CatalogDatabase {
            uri: "postgres://db".into(),
            source: sqlx::Error::PoolTimedOut,
        };
        assert!(down.is_retryable());
        let gone = LakehouseError::CatalogDatabase {
            uri: "postgres://db".into(),
            source: sqlx::Error::RowNotFound,
        };
        assert!(!gone.is_retryable());
        let schema = LakehouseError::Schema {
            table: "t".into(),
            source: SchemaError::Incompatible {
                column: "v".into(),
                from: "string".into(),
                to: "int".into(),
            },
        };
        assert!(!schema.is_retryable());
    }

    #[test]
    fn a_mismatch_raised_without_its_table_is_named_by_the_writer() {
        let unnamed = LakehouseError::SchemaMismatch {
            table: String::new(),
            reason: "primary key column is Utf8, not an integer".into(),
        };
        let named = unnamed.in_table(&"taxi.trips");
        assert_eq!(
            named.to_string(),
            "table taxi.trips: primary key column is Utf8, not an integer"
        );
        // a name already given is kept, and other errors pass unchanged
        let other_table = named.in_table(&"taxi.zones");
        assert!(other_table.to_string().starts_with("table taxi.trips:"));
        let poisoned = LakehouseError::WriterPoisoned {
            table: "taxi.trips".into(),
        }
        .in_table(&"taxi.zones");
        assert!(
            matches!(poisoned, LakehouseError::WriterPoisoned { table } if table == "taxi.trips")
        );
    }
}
