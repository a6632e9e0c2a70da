//! Where floe swaps a table's metadata pointer: the catalog's
//! compare-and-swap, the only place a commit becomes visible.
//!
//! * SQL catalogs (the JDBC schema, on SQLite or Postgres): the next
//!   metadata file is written, then a conditional `UPDATE` must change
//!   exactly one row;
//! * REST catalogs: the metadata changes are posted with requirements on
//!   the table's uuid, current snapshot, schema and last column id (409:
//!   another writer got there first).
//!
//! Either way the table is unchanged unless the swap happened; a lost race
//! is [`CommitError::Conflict`].

use std::str::FromStr;

use iceberg::spec::{TableMetadata, TableMetadataBuildResult};
use iceberg::table::Table;
use iceberg::{MetadataLocation, TableRequirement, TableUpdate};
use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::AnyPool;

use super::{write_error, CommitError};
use crate::config::CATALOG_NAME;

/// Where floe swaps a table's metadata pointer: the catalog it opened.
#[derive(Debug, Clone)]
pub enum CatalogPointer {
    Sql(SqlCatalogPointer),
    Rest(RestCatalogPointer),
}

impl From<SqlCatalogPointer> for CatalogPointer {
    fn from(value: SqlCatalogPointer) -> Self {
        Self::Sql(value)
    }
}

impl From<RestCatalogPointer> for CatalogPointer {
    fn from(value: RestCatalogPointer) -> Self {
        Self::Rest(value)
    }
}

/// Commits to a REST catalog: `POST .../namespaces/{ns}/tables/{table}`
/// with the metadata changes and the requirements that make it a
/// compare-and-swap (HTTP 409 when another writer got there first).
#[derive(Debug, Clone)]
pub struct RestCatalogPointer {
    client: reqwest::Client,
    /// `{uri}/v1` plus the catalog's `prefix`, if its config sets one.
    base: String,
    token: Option<String>,
}

impl RestCatalogPointer {
    /// Reads the catalog's config (`GET {uri}/v1/config`) for its prefix.
    pub async fn connect(
        uri: &str,
        warehouse: Option<&str>,
        token: Option<&str>,
    ) -> Result<Self, String> {
        let client = reqwest::Client::new();
        let uri = uri.trim_end_matches('/');
        let mut request = client.get(format!("{uri}/v1/config"));
        if let Some(w) = warehouse {
            request = request.query(&[("warehouse", w)]);
        }
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let config: serde_json::Value = request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| format!("bad config response: {e}"))?;
        let prefix = ["overrides", "defaults"]
            .iter()
            .find_map(|k| config[k]["prefix"].as_str())
            .map(str::to_string);
        let base = match prefix {
            Some(p) => format!("{uri}/v1/{p}"),
            None => format!("{uri}/v1"),
        };
        Ok(Self {
            client,
            base,
            token: token.map(str::to_string),
        })
    }

    /// Posts `changes` on top of `table` as it was read; returns the new
    /// metadata location and metadata.
    async fn commit(
        &self,
        table: &Table,
        changes: Vec<TableUpdate>,
    ) -> Result<(String, TableMetadata), CommitError> {
        let name = table.identifier().to_string();
        let metadata = table.metadata();
        let requirements = vec![
            TableRequirement::UuidMatch {
                uuid: metadata.uuid(),
            },
            TableRequirement::RefSnapshotIdMatch {
                r#ref: "main".to_string(),
                snapshot_id: metadata.current_snapshot_id(),
            },
            TableRequirement::CurrentSchemaIdMatch {
                current_schema_id: metadata.current_schema_id(),
            },
            TableRequirement::LastAssignedFieldIdMatch {
                last_assigned_field_id: metadata.last_column_id(),
            },
        ];
        let ident = table.identifier();
        // namespace levels are joined with the unit separator (REST spec)
        let namespace = ident.namespace().join("\u{1f}");
        let url = format!(
            "{}/namespaces/{}/tables/{}",
            self.base,
            encode(&namespace),
            encode(ident.name())
        );
        let body = serde_json::json!({
            "identifier": { "namespace": ident.namespace().as_ref(), "name": ident.name() },
            "requirements": requirements,
            "updates": changes,
        });
        let mut request = self.client.post(&url).json(&body);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let rest = |reason: String, retryable: bool| CommitError::Rest {
            table: name.clone(),
            reason,
            retryable,
        };
        let response = request
            .send()
            .await
            .map_err(|e| rest(e.to_string(), true))?;
        let status = response.status();
        if status == reqwest::StatusCode::CONFLICT {
            return Err(CommitError::Conflict {
                table: name.clone(),
                expected: metadata_location_or_empty(table),
            });
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(rest(
                format!("HTTP {status}: {text}"),
                status.is_server_error(),
            ));
        }
        let committed: CommittedTable = response
            .json()
            .await
            .map_err(|e| rest(format!("bad commit response: {e}"), false))?;
        Ok((committed.metadata_location, committed.metadata))
    }
}

#[derive(serde::Deserialize)]
struct CommittedTable {
    #[serde(rename = "metadata-location")]
    metadata_location: String,
    metadata: TableMetadata,
}

fn metadata_location_or_empty(table: &Table) -> String {
    table.metadata_location().unwrap_or_default().to_string()
}

/// Percent-encodes a URL path segment.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Swaps metadata pointers in a SQL catalog (the JDBC catalog schema)
/// with a conditional update.
#[derive(Debug, Clone)]
pub struct SqlCatalogPointer {
    pool: AnyPool,
    postgres: bool,
}

impl SqlCatalogPointer {
    /// Connects to the catalog database at `uri` (as in [`crate::catalog::open_catalog`]).
    pub async fn connect(uri: &str) -> Result<Self, sqlx::Error> {
        install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            // a database that is down is an outage the caller retries,
            // not a wait of sqlx's default 30 s per attempt
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(uri)
            .await?;
        Ok(Self {
            pool,
            postgres: uri.starts_with("postgres"),
        })
    }

    /// Points `table` at `new` if and only if it still points at `old`.
    async fn swap(&self, table: &Table, old: &str, new: &str) -> Result<Swap, sqlx::Error> {
        let sql = "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
                   WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? AND metadata_location = ?";
        let sql = if self.postgres {
            numbered_placeholders(sql)
        } else {
            sql.to_string()
        };
        let ident = table.identifier();
        let namespace = ident.namespace().join(".");
        let result = sqlx::query(&sql)
            .bind(new)
            .bind(old)
            .bind(CATALOG_NAME)
            .bind(namespace)
            .bind(ident.name())
            .bind(old)
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 1 {
            return Ok(Swap::Done);
        }
        // not swapped: a race lost, or no such table in this database
        let sql = "SELECT metadata_location FROM iceberg_tables \
                   WHERE catalog_name = ? AND table_namespace = ? AND table_name = ?";
        let sql = if self.postgres {
            numbered_placeholders(sql)
        } else {
            sql.to_string()
        };
        let row = sqlx::query(&sql)
            .bind(CATALOG_NAME)
            .bind(ident.namespace().join("."))
            .bind(ident.name())
            .fetch_optional(&self.pool)
            .await?;
        Ok(if row.is_some() {
            Swap::Moved
        } else {
            Swap::NoTable
        })
    }
}

/// What a pointer swap found.
enum Swap {
    Done,
    /// The table points elsewhere: another writer committed first.
    Moved,
    /// The catalog database has no such table.
    NoTable,
}

fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Makes `next` the table's metadata if the table is still as `table` was
/// read: SQL catalogs get the next metadata file and a pointer swap, REST
/// catalogs the changes with requirements. Used for snapshots and for
/// schema changes floe makes itself.
pub(crate) async fn commit_metadata(
    pointer: &CatalogPointer,
    table: &Table,
    next: TableMetadataBuildResult,
) -> Result<Table, CommitError> {
    let name = table.identifier().to_string();
    let step = |step: &'static str| write_error(&name, step);
    let file_io = table.file_io();
    let pointer = match pointer {
        CatalogPointer::Sql(sql) => sql,
        CatalogPointer::Rest(rest) => {
            crate::fault::point("commit.written");
            let (location, metadata) = rest.commit(table, next.changes).await?;
            crate::fault::point("commit.swapped");
            let runtime = iceberg::Runtime::try_current().map_err(step("reload table"))?;
            return Table::builder()
                .runtime(runtime)
                .identifier(table.identifier().clone())
                .file_io(file_io.clone())
                .metadata(metadata)
                .metadata_location(location)
                .build()
                .map_err(step("reload table"));
        }
    };
    let retired = next.expired_metadata_logs;
    let next = next.metadata;
    let current_location = current_location(table)?;
    let next_location = MetadataLocation::from_str(&current_location)
        .map_err(step("metadata location"))?
        .with_next_version();
    next.write_to(file_io, &next_location)
        .await
        .map_err(step("write metadata"))?;

    let next_location = next_location.to_string();
    crate::fault::point("commit.written");
    let swapped = pointer
        .swap(table, &current_location, &next_location)
        .await
        .map_err(|source| CommitError::Catalog {
            table: name.clone(),
            source,
        })?;
    match swapped {
        Swap::Done => {}
        Swap::Moved => {
            return Err(CommitError::Conflict {
                table: name,
                expected: current_location,
            })
        }
        Swap::NoTable => return Err(CommitError::NotInCatalog(name)),
    }
    crate::fault::point("commit.swapped");
    if deletes_retired_metadata(next.properties()) {
        delete_retired(file_io, &name, &retired).await;
    }
    let runtime = iceberg::Runtime::try_current().map_err(step("reload table"))?;
    Table::builder()
        .runtime(runtime)
        .identifier(table.identifier().clone())
        .file_io(file_io.clone())
        .metadata(next)
        .metadata_location(next_location)
        .build()
        .map_err(step("reload table"))
}

/// The table property that has a commit delete the metadata files it
/// retires from the metadata log (Iceberg's default: keep them).
pub const METADATA_DELETE_AFTER_COMMIT: &str = "write.metadata.delete-after-commit.enabled";
/// The table property bounding the metadata log (Iceberg's default: 100).
pub const METADATA_PREVIOUS_VERSIONS_MAX: &str = "write.metadata.previous-versions-max";

fn deletes_retired_metadata(properties: &std::collections::HashMap<String, String>) -> bool {
    properties
        .get(METADATA_DELETE_AFTER_COMMIT)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Deletes the metadata files a commit retired from the log. The commit
/// has happened: a file that cannot be deleted now is left for orphan
/// cleanup, never an error.
async fn delete_retired(
    file_io: &iceberg::io::FileIO,
    table: &str,
    retired: &[iceberg::spec::MetadataLog],
) {
    for log in retired {
        if let Err(e) = file_io.delete(&log.metadata_file).await {
            tracing::debug!(%table, file = %log.metadata_file, "retired metadata file left for orphan cleanup: {e}");
        }
    }
}

/// Where `table`'s metadata pointer is now: the expected side of the swap.
pub(crate) fn current_location(table: &Table) -> Result<String, CommitError> {
    table
        .metadata_location()
        .map(str::to_string)
        .ok_or_else(|| CommitError::NoMetadataLocation(table.identifier().to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_table_that_asks_deletes_retired_metadata() {
        let props = |v: &str| {
            [(
                super::METADATA_DELETE_AFTER_COMMIT.to_string(),
                v.to_string(),
            )]
            .into()
        };
        assert!(super::deletes_retired_metadata(&props("true")));
        assert!(super::deletes_retired_metadata(&props(" TRUE")));
        assert!(!super::deletes_retired_metadata(&props("false")));
        assert!(!super::deletes_retired_metadata(&Default::default()));
    }

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(
            super::numbered_placeholders("a = ? AND b = ?"),
            "a = $1 AND b = $2"
        );
    }
}
