//! Lakehouse configuration: where the catalog and the data live, and how
//! each source table becomes an Iceberg table. These structs are the `[lake]`
//! section of `floe.toml`; their doc comments are its reference.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The name floe registers its catalog under (the `catalog_name` column of
/// the JDBC schema; pyiceberg's `SqlCatalog(name, ...)` must use the same).
pub const CATALOG_NAME: &str = "floe";

/// Where tables live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// The warehouse: a local directory (default `./warehouse`) or an S3
    /// location `s3://bucket/prefix` (then set `[lake.s3]`). Table data and
    /// metadata go under it. With a local warehouse the default SQLite
    /// catalog is the file `catalog.db` in it.
    #[serde(default = "default_warehouse")]
    pub warehouse: Warehouse,
    /// The catalog; default: SQLite in the warehouse.
    #[serde(default)]
    pub catalog: CatalogConfig,
    /// S3-compatible storage settings, used when the warehouse is `s3://`.
    #[serde(default)]
    pub s3: S3Config,
    /// How source tables map to Iceberg tables.
    #[serde(default)]
    pub tables: TablesConfig,
}

fn default_warehouse() -> Warehouse {
    Warehouse::Local(PathBuf::from("warehouse"))
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            warehouse: default_warehouse(),
            catalog: CatalogConfig::default(),
            s3: S3Config::default(),
            tables: TablesConfig::default(),
        }
    }
}

/// Where table data and metadata live.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum Warehouse {
    /// A directory on the local filesystem.
    Local(PathBuf),
    /// `s3://bucket/prefix` on S3-compatible storage.
    S3 { bucket: String, prefix: String },
}

impl Warehouse {
    /// The warehouse as an Iceberg location (`file:///abs/dir` or
    /// `s3://bucket/prefix`), relative local paths made absolute.
    pub fn location(&self) -> std::io::Result<String> {
        match self {
            Self::Local(dir) => Ok(format!("file://{}", std::path::absolute(dir)?.display())),
            Self::S3 { bucket, prefix } if prefix.is_empty() => Ok(format!("s3://{bucket}")),
            Self::S3 { bucket, prefix } => Ok(format!("s3://{bucket}/{prefix}")),
        }
    }

    /// The local directory, if the warehouse is local.
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            Self::Local(dir) => Some(dir),
            Self::S3 { .. } => None,
        }
    }
}

impl From<String> for Warehouse {
    fn from(value: String) -> Self {
        match value
            .strip_prefix("s3://")
            .or_else(|| value.strip_prefix("s3a://"))
        {
            Some(rest) => {
                let rest = rest.trim_end_matches('/');
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                Self::S3 {
                    bucket: bucket.to_string(),
                    prefix: prefix.to_string(),
                }
            }
            None => Self::Local(PathBuf::from(value)),
        }
    }
}

impl From<&str> for Warehouse {
    fn from(value: &str) -> Self {
        Self::from(value.to_string())
    }
}

impl From<PathBuf> for Warehouse {
    fn from(value: PathBuf) -> Self {
        Self::Local(value)
    }
}

impl From<&Path> for Warehouse {
    fn from(value: &Path) -> Self {
        Self::Local(value.to_path_buf())
    }
}

impl fmt::Display for Warehouse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(dir) => write!(f, "{}", dir.display()),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// S3-compatible storage (AWS S3, MinIO, Garage, ...). Every field left out
/// falls back to the standard AWS environment variable named beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://127.0.0.1:9000` for a local MinIO; plain
    /// `http://` is allowed. Default: `AWS_ENDPOINT_URL`, else AWS itself.
    pub endpoint: Option<String>,
    /// Region. Default: `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`), which MinIO and
    /// most self-hosted servers need. Default: true when an endpoint is
    /// set, false for AWS.
    pub path_style: Option<bool>,
    /// Access key id. Default: `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// Secret access key. Default: `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// Session token for temporary credentials. Default: `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
}

impl S3Config {
    /// The settings with every missing field taken from `env` (a lookup
    /// such as `|k| std::env::var(k).ok()`), and defaults applied.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> ResolvedS3 {
        let endpoint = self.endpoint.clone().or_else(|| env("AWS_ENDPOINT_URL"));
        ResolvedS3 {
            path_style: self.path_style.unwrap_or(endpoint.is_some()),
            endpoint,
            region: self
                .region
                .clone()
                .or_else(|| env("AWS_REGION"))
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_string()),
            access_key_id: self
                .access_key_id
                .clone()
                .or_else(|| env("AWS_ACCESS_KEY_ID")),
            secret_access_key: self
                .secret_access_key
                .clone()
                .or_else(|| env("AWS_SECRET_ACCESS_KEY")),
            session_token: self
                .session_token
                .clone()
                .or_else(|| env("AWS_SESSION_TOKEN")),
        }
    }
}

/// [`S3Config`] after environment fallbacks and defaults.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResolvedS3 {
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

// hand-written so that secrets never reach a log line
impl fmt::Debug for ResolvedS3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedS3")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The Iceberg catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CatalogConfig {
    /// A SQLite file (the JDBC catalog schema, which pyiceberg's SqlCatalog
    /// and Java's JdbcCatalog also read). Default path: `catalog.db` in a
    /// local warehouse; required with an S3 warehouse.
    Sqlite {
        #[serde(default)]
        path: Option<PathBuf>,
    },
    /// A SQL catalog at this URI: `sqlite:///path/catalog.db` or
    /// `postgres://user:password@host:5432/db`.
    Sql { uri: String },
    /// An Iceberg REST catalog (Polaris, Lakekeeper, Nessie, Gravitino,
    /// ...). floe commits its snapshots through the catalog's table commit
    /// endpoint.
    Rest {
        /// Base URI, e.g. `http://127.0.0.1:8181` (without `/v1`).
        uri: String,
        /// The catalog's warehouse name, if it serves several.
        #[serde(default)]
        warehouse: Option<String>,
        /// Bearer token. Default: `FLOE_REST_TOKEN`.
        #[serde(default)]
        token: Option<String>,
    },
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self::Sqlite { path: None }
    }
}

/// How source tables are named and shaped in the lake.
// no deny_unknown_fields: serde does not support it together with flatten
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TablesConfig {
    /// Namespace for tables not configured below. Default: the Debezium
    /// topic prefix followed by `_cdc` (`taxi.public.trips` goes to
    /// `taxi_cdc.trips`).
    pub namespace: Option<String>,
    /// How `floe ingest` merges the small files of the tables it writes
    /// (`[lake.tables.merge]`); a source table's own `merge` section
    /// replaces it whole.
    #[serde(default)]
    pub merge: MergePolicy,
    /// How `floe ingest` expires the old snapshots of the tables it
    /// writes (`[lake.tables.expire]`); a source table's own `expire`
    /// section replaces it whole.
    #[serde(default)]
    pub expire: SnapshotExpiry,
    /// Per source table, keyed by `schema.table` (e.g. `public.trips`).
    #[serde(default, flatten)]
    pub by_source: BTreeMap<String, TableConfig>,
}

impl TablesConfig {
    /// The merge policy of source table `schema.table`.
    pub fn merge_policy(&self, source: &str) -> &MergePolicy {
        self.by_source
            .get(source)
            .and_then(|t| t.merge.as_ref())
            .unwrap_or(&self.merge)
    }

    /// The snapshot expiry of source table `schema.table`.
    pub fn expiry(&self, source: &str) -> &SnapshotExpiry {
        self.by_source
            .get(source)
            .and_then(|t| t.expire.as_ref())
            .unwrap_or(&self.expire)
    }
}

/// One source table's Iceberg table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// This table's merge policy, in place of `[lake.tables.merge]`.
    #[serde(default)]
    pub merge: Option<MergePolicy>,
    /// This table's snapshot expiry, in place of `[lake.tables.expire]`.
    #[serde(default)]
    pub expire: Option<SnapshotExpiry>,
    /// Whether a snapshot Debezium sends again (a lost replication slot)
    /// deletes, when it ends, the rows it did not read: rows deleted at the
    /// source meanwhile. Default on; upsert tables only.
    #[serde(default = "yes")]
    pub reconcile_snapshots: bool,
    /// Iceberg table properties set when floe creates the table, beside
    /// its own (e.g. `"write.delete.granularity" = "file"`); later changes
    /// go through any Iceberg writer's property update.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

impl Default for TableConfig {
    fn default() -> Self {
        Self {
            namespace: None,
            name: None,
            partition: Vec::new(),
            mode: TableMode::default(),
            merge: None,
            expire: None,
            reconcile_snapshots: true,
            properties: BTreeMap::new(),
        }
    }
}

impl TableConfig {
    /// A refused table property, named.
    pub fn check_properties(&self) -> Result<(), String> {
        for (key, value) in &self.properties {
            if key == crate::spec::position_delete::DELETE_GRANULARITY {
                crate::spec::position_delete::DeleteGranularity::parse(value)?;
            }
        }
        Ok(())
    }
}

/// When ingest merges a table's files (`[lake.tables.merge]`, and per
/// source table `[lake.tables."schema.table".merge]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MergePolicy {
    /// Merge at all (default true). `floe maintain compact` still works
    /// either way.
    pub enabled: bool,
    /// Data files below the target size a partition may hold after every
    /// commit round (default 12). Merges start in the background at two
    /// thirds of it; a commit round that leaves a partition past it waits
    /// for merges until the partition is within it.
    pub max_files: usize,
    /// Files of one size tier merged together; a tier holds files of
    /// up to this many times the rows of the tier below (default 4).
    pub fanout: usize,
    /// Files this large are full and left alone, unless their deleted
    /// share says otherwise (default 128 MiB).
    pub target_file_bytes: u64,
    /// A file whose position deletes remove this share of its rows is
    /// rewritten (default 0.2).
    pub max_deleted_share: f64,
    /// Rows rewritten per merge round at most (the partitions most over
    /// their bounds first; the rest in later rounds), so a round never
    /// holds up the next commit for long (default 2,000,000). This is
    /// the merges' memory budget too: a round holds at most one output
    /// file's rows of each partition it rewrites.
    pub max_rows_per_round: u64,
    /// The CPU a merge round's rewrite may take while commits go on
    /// beside it, as a share of one core (default 0.5); 1 lifts the
    /// pacing. A round the commits wait for (a partition past
    /// `max_files`) runs unpaced.
    pub cpu_share: f64,
    /// Times a row is written again in its partition's newest small
    /// file, the tail, which each commit writes again with its own rows
    /// instead of adding a file beside it (default 24; 0 turns tails
    /// off). When a tail's oldest row reaches about this age (or the
    /// tail about 5,000 rows; both drawn per partition within a quarter
    /// either side, so that partitions do not all seal in one commit),
    /// the rows older than a third of that age are sealed in a file of
    /// their own, which the merges take over; the young ones, which
    /// changes still reach, stay.
    pub tail_rewrites: u32,
}

impl Default for MergePolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            max_files: 12,
            fanout: 4,
            target_file_bytes: 128 << 20,
            max_deleted_share: 0.2,
            max_rows_per_round: 2_000_000,
            cpu_share: 0.5,
            tail_rewrites: 24,
        }
    }
}

impl MergePolicy {
    /// A refused setting, named.
    pub fn check(&self) -> Result<(), String> {
        if self.max_files < 2 {
            return Err("merge.max_files must be at least 2".into());
        }
        if self.fanout < 2 {
            return Err("merge.fanout must be at least 2".into());
        }
        if !(self.max_deleted_share > 0.0 && self.max_deleted_share <= 1.0) {
            return Err("merge.max_deleted_share must be above 0 and at most 1".into());
        }
        if self.target_file_bytes == 0 {
            return Err("merge.target_file_bytes must be positive".into());
        }
        if !(self.cpu_share > 0.0 && self.cpu_share.is_finite()) {
            return Err(
                "merge.cpu_share must be above 0 (a share of one core; 1 or more lifts the pacing)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// When ingest expires a table's old snapshots (`[lake.tables.expire]`,
/// and per source table `[lake.tables."schema.table".expire]`).
///
/// Every snapshot stays in the table's metadata until expired, and a
/// commit reads and writes that metadata whole: with a commit a second,
/// an hour of history is 3,600 snapshots in every commit's metadata.json.
/// So the writer expires its table's snapshots itself, every
/// `every_commits` commits, in a commit of its own that changes metadata
/// only: the files only expired snapshots reached are left where they are,
/// for `floe maintain orphans` to delete once they are old enough (an
/// ingest commit never pays one storage request per file).
///
/// `keep_minutes` alone does not bound the metadata: at 200 ms commits
/// (and the merges between them) an hour is about 27,000 snapshots, some
/// 27 MB that every commit writes and every query parses. `max_snapshots`
/// is that bound; past it the oldest expire however young, so time travel
/// reaches back `keep_minutes` or `max_snapshots` snapshots, whichever is
/// shorter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotExpiry {
    /// Expire at all (default true). `floe maintain expire` works either
    /// way.
    pub enabled: bool,
    /// Snapshots younger than this many minutes are kept: how far back
    /// time travel reaches (default 60).
    pub keep_minutes: u64,
    /// The newest this many snapshots of the table's history are kept
    /// whatever their age (default 100).
    pub keep_last: usize,
    /// Expire after this many of the writer's commits (default 100).
    pub every_commits: u64,
    /// At most this many snapshots stay after an expiry, however young
    /// (default 200; at least `keep_last`). Branches, tags and the
    /// snapshot carrying floe's state are kept beyond it.
    pub max_snapshots: usize,
}

impl Default for SnapshotExpiry {
    fn default() -> Self {
        Self {
            enabled: true,
            keep_minutes: 60,
            keep_last: 100,
            every_commits: 100,
            max_snapshots: 200,
        }
    }
}

impl SnapshotExpiry {
    /// A refused setting, named.
    pub fn check(&self) -> Result<(), String> {
        if self.keep_last == 0 {
            return Err("expire.keep_last must be at least 1".into());
        }
        if self.max_snapshots < self.keep_last {
            return Err(format!(
                "expire.max_snapshots ({}) must be at least expire.keep_last ({})",
                self.max_snapshots, self.keep_last
            ));
        }
        if self.every_commits == 0 {
            return Err(
                "expire.every_commits must be at least 1 (enabled = false turns expiry off)".into(),
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableMode {
    #[default]
    Upsert,
    Append,
}
