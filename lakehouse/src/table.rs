//! Iceberg tables for source tables: named from configuration and created
//! from the first change batch that arrives for them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use iceberg::table::Table;
use iceberg::{Catalog, NamespaceIdent, TableCreation, TableIdent};
use ingest::ChangeBatch;

use crate::config::{TableConfig, TableMode, TablesConfig};
use crate::error::LakehouseError;
use crate::spec::partition::partition_spec;
use crate::spec::schema::table_schema;

/// Columns an `append`-mode table adds to the source row.
pub mod append_columns {
    /// The operation (`c`, `u`, `d`, `r`, `t`).
    pub const OP: &str = "_op";
    /// Kafka partition and offset of the change.
    pub const PARTITION: &str = "_kafka_partition";
    pub const OFFSET: &str = "_kafka_offset";
    /// Source commit time.
    pub const SOURCE_TS: &str = "_source_ts";
}

/// Where a source table's changes land and how.
#[derive(Debug, Clone, PartialEq)]
pub struct TableTarget {
    pub ident: TableIdent,
    pub config: TableConfig,
}

impl TableTarget {
    /// Resolves the target of a batch's source table from configuration.
    pub fn for_batch(batch: &ChangeBatch, tables: &TablesConfig) -> Result<Self, LakehouseError> {
        let (source_schema, source_table) = match &batch.source {
            Some(s) => (s.schema.clone(), s.table.clone()),
            // a batch of tombstones only: the topic says which table
            None => {
                let mut parts = batch.topic.rsplitn(3, '.');
                let table = parts.next().unwrap_or(&batch.topic).to_string();
                (parts.next().unwrap_or("public").to_string(), table)
            }
        };
        let key = format!("{source_schema}.{source_table}");
        let config = tables.by_source.get(&key).cloned().unwrap_or_default();
        let prefix = batch.topic.split('.').next().unwrap_or(&batch.topic);
        let namespace = config
            .namespace
            .clone()
            .or_else(|| tables.namespace.clone())
            .unwrap_or_else(|| format!("{prefix}_cdc"));
        let name = config.name.clone().unwrap_or(source_table);
        let ident = TableIdent::new(NamespaceIdent::new(namespace), name);
        Ok(Self { ident, config })
    }

    /// The Iceberg schema for this target from the batch's row type.
    pub fn schema(&self, batch: &ChangeBatch) -> Result<Schema, LakehouseError> {
        let table = self.ident.to_string();
        match self.config.mode {
            // a source table without a primary key is keyed by whole rows
            TableMode::Upsert => table_schema(&batch.row_fields(), &batch.key_fields)
                .map_err(|source| LakehouseError::Schema { table, source }),
            TableMode::Append => {
                let row = table_schema(&batch.row_fields(), &[]).map_err(|source| {
                    LakehouseError::Schema {
                        table: table.clone(),
                        source,
                    }
                })?;
                let next = row.highest_field_id() + 1;
                let extra = [
                    (
                        append_columns::OP,
                        Type::Primitive(PrimitiveType::String),
                        true,
                    ),
                    (
                        append_columns::PARTITION,
                        Type::Primitive(PrimitiveType::Int),
                        true,
                    ),
                    (
                        append_columns::OFFSET,
                        Type::Primitive(PrimitiveType::Long),
                        true,
                    ),
                    (
                        append_columns::SOURCE_TS,
                        Type::Primitive(PrimitiveType::Timestamptz),
                        false,
                    ),
                ];
                // every row column is optional: a truncate's row has none
                let mut fields: Vec<_> = row
                    .as_struct()
                    .fields()
                    .iter()
                    .map(|f| {
                        Arc::new(NestedField {
                            required: false,
                            ..f.as_ref().clone()
                        })
                    })
                    .collect();
                for (i, (name, ty, required)) in extra.into_iter().enumerate() {
                    let id = next + i as i32;
                    let field = if required {
                        NestedField::required(id, name, ty)
                    } else {
                        NestedField::optional(id, name, ty)
                    };
                    fields.push(Arc::new(field));
                }
                Schema::builder()
                    .with_fields(fields)
                    .build()
                    .map_err(|e| LakehouseError::Iceberg {
                        operation: "build schema",
                        table,
                        source: Box::new(e),
                    })
            }
        }
    }
}

/// Loads the target's table, creating it (and its namespace) from the
/// batch if it does not exist yet: format v2, schema from the batch with the
/// primary key as identifier fields, partition spec from configuration.
pub async fn ensure_table(
    catalog: &dyn Catalog,
    target: &TableTarget,
    batch: &ChangeBatch,
) -> Result<Table, LakehouseError> {
    let schema = || target.schema(batch);
    let config = &target.config;
    load_or_create(
        catalog,
        &target.ident,
        schema,
        &config.partition,
        &config.properties,
    )
    .await
}

/// Loads `ident`, creating it (and its namespace) with the schema `schema`
/// makes, the partition fields `partition` (as in
/// [`crate::TableConfig::partition`]) and floe's properties with
/// `properties` over them if it does not exist.
pub async fn load_or_create(
    catalog: &dyn Catalog,
    ident: &TableIdent,
    schema: impl FnOnce() -> Result<Schema, LakehouseError>,
    partition: &[String],
    properties: &BTreeMap<String, String>,
) -> Result<Table, LakehouseError> {
    if catalog
        .table_exists(ident)
        .await
        .map_err(crate::error::iceberg_error("check table", ident))?
    {
        return catalog
            .load_table(ident)
            .await
            .map_err(crate::error::iceberg_error("load table", ident));
    }
    let namespace: &NamespaceIdent = ident.namespace();
    if !catalog
        .namespace_exists(namespace)
        .await
        .map_err(crate::error::iceberg_error("check namespace", ident))?
    {
        if let Err(e) = catalog.create_namespace(namespace, HashMap::new()).await {
            // another writer (an ingest instance) created it meanwhile
            if !catalog.namespace_exists(namespace).await.unwrap_or(false) {
                return Err(crate::error::iceberg_error("create namespace", ident)(e));
            }
        }
    }
    let schema = schema()?;
    let spec = partition_spec(&schema, partition)?;
    let creation = TableCreation::builder()
        .name(ident.name().to_string())
        .schema(schema)
        .partition_spec(spec)
        .properties(created_table_properties(properties))
        .build();
    match catalog.create_table(namespace, creation).await {
        Ok(table) => Ok(table),
        // another writer created it meanwhile: its table is this one
        Err(e) if catalog.table_exists(ident).await.unwrap_or(false) => {
            tracing::info!(table = %ident, "created by another writer meanwhile ({e}); using it");
            catalog
                .load_table(ident)
                .await
                .map_err(crate::error::iceberg_error("load table", ident))
        }
        Err(e) => Err(crate::error::iceberg_error("create table", ident)(e)),
    }
}

/// What floe sets on the tables it creates: Parquet; old `metadata.json`
/// files deleted as commits retire them from the metadata log (Iceberg
/// keeps them by default, and at a commit a second they pile up by the
/// thousand between orphan cleanups; time travel reads snapshots, which
/// this does not touch); manifests merged once 16 small ones pile up.
fn created_table_properties(configured: &BTreeMap<String, String>) -> HashMap<String, String> {
    let ours = [
        ("write.format.default", "parquet"),
        (crate::transaction::METADATA_DELETE_AFTER_COMMIT, "true"),
        (crate::transaction::METADATA_PREVIOUS_VERSIONS_MAX, "100"),
        // a commit a second adds a manifest or two a second: merge them
        // sooner than Iceberg's 100, so readers open few
        (crate::transaction::MANIFEST_MIN_COUNT_TO_MERGE, "16"),
    ];
    ours.into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(configured.iter().map(|(k, v)| (k.clone(), v.clone())))
        .collect()
}

/// A table's files and rows as its current snapshot's summary counts them
/// (Iceberg's `total-*` keys; all zero for a table without snapshots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableFiles {
    pub data_files: u64,
    pub delete_files: u64,
    /// Rows in the data files, deleted ones included.
    pub records: u64,
    /// Rows the delete files delete.
    pub position_deletes: u64,
}

impl TableFiles {
    pub fn of(metadata: &iceberg::spec::TableMetadata) -> Self {
        let Some(snapshot) = metadata.current_snapshot() else {
            return Self::default();
        };
        let summary = &snapshot.summary().additional_properties;
        let get = |key: &str| {
            summary
                .get(key)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Self {
            data_files: get("total-data-files"),
            delete_files: get("total-delete-files"),
            records: get("total-records"),
            position_deletes: get("total-position-deletes"),
        }
    }

    /// Rows a reader sees: records less the ones deleted (floe never
    /// deletes a row twice; another engine's equality deletes are not
    /// counted).
    pub fn live_rows(&self) -> u64 {
        self.records.saturating_sub(self.position_deletes)
    }

    /// The share of records a reader reads only to drop, 0 to 1.
    pub fn deleted_share(&self) -> f64 {
        if self.records == 0 {
            0.0
        } else {
            (self.position_deletes as f64 / self.records as f64).min(1.0)
        }
    }
}
