//! Lakehouse configuration: where the catalog and the data live, and how
//! each source table becomes an Iceberg table. These structs are the `[lake]`
//! section of `floe.toml`; their doc comments are its reference.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// Where tables live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// The warehouse: a local directory (default `./warehouse`). Table data
    /// and metadata go under it, and the default SQLite catalog is the file
    /// `catalog.db` in it.
    #[serde(default = "default_warehouse")]
    pub warehouse: PathBuf,
    /// The catalog; default: SQLite in the warehouse.
    #[serde(default)]
    pub catalog: CatalogConfig,
    /// How source tables map to Iceberg tables.
    #[serde(default)]
    pub tables: TablesConfig,
}

fn default_warehouse() -> PathBuf {
    PathBuf::from("warehouse")
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            warehouse: default_warehouse(),
            catalog: CatalogConfig::default(),
            tables: TablesConfig::default(),
        }
    }
}

/// The Iceberg catalog.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CatalogConfig {
    /// SQLite file `catalog.db` in the warehouse (the JDBC catalog schema,
    /// which pyiceberg's SqlCatalog and Java's JdbcCatalog also read).
    #[default]
    Sqlite,
    /// A SQL catalog at this URI: `sqlite:///path/catalog.db` or
    /// `postgres://user:password@host:5432/db`.
    Sql { uri: String },
}

/// How source tables are named and shaped in the lake.
// no deny_unknown_fields: serde does not support it together with flatten
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TablesConfig {
    /// Namespace for tables not configured below. Default: the Debezium
    /// topic prefix followed by `_cdc` (`taxi.public.trips` goes to
    /// `taxi_cdc.trips`).
    pub namespace: Option<String>,
    /// Per source table, keyed by `schema.table` (e.g. `public.trips`).
    #[serde(default, flatten)]
    pub by_source: BTreeMap<String, TableConfig>,
}

/// One source table's Iceberg table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Namespace; default as in [`TablesConfig::namespace`].
    pub namespace: Option<String>,
    /// Table name; default: the source table's name.
    pub name: Option<String>,
    /// Partition fields, each `transform(column)`: `identity(c)` or just
    /// `c`, `year(c)`, `month(c)`, `day(c)`, `hour(c)`, `bucket[N](c)`,
    /// `truncate[W](c)`, `void(c)`. Default: unpartitioned.
    #[serde(default)]
    pub partition: Vec<String>,
    /// `upsert` (default): the table mirrors the source table by primary
    /// key. `append`: every change is a row (with its operation and Kafka
    /// position); required for source tables without a primary key.
    #[serde(default)]
    pub mode: TableMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableMode {
    #[default]
    Upsert,
    Append,
}
