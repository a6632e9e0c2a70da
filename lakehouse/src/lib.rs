//! # floe lakehouse
//!
//! Everything between a decoded [`ingest::ChangeBatch`] and an Iceberg
//! table, in layers that only look down:
//!
//! ```text
//!  operations   apply (the CDC row delta, changelog appends, schema
//!               changes), sink (job results), dead_letter, changes (the
//!               rows a table gained and lost), maintain (compaction,
//!               expiry, orphans)                       what callers ask for
//!      │
//!  table, catalog   creating a source table's Iceberg table; Lake, the
//!               open catalog, storage and pointer         the handle
//!      │
//!  transaction  Transaction of an Action: one commit path, one retry
//!               policy, the pointer swap (SQL compare-and-swap, REST
//!               requirements), floe's typed state in snapshot summaries
//!      │
//!  index        the primary-key index: each live key to its file and row
//!      │
//!  spec         schemas and their evolution, partitions, Parquet data and
//!               position-delete files, reading them back; no commits
//!      │
//!  config, error, storage (the S3 operators and the HTTP client they
//!               send with)
//! ```
//!
//! Every write to the lake is a [`transaction::Transaction`]: an operation
//! builds files with [`spec`], and the transaction turns them into one
//! snapshot (its Iceberg operation declared, its schema change in the same
//! swap) with floe's state ([`transaction::state`]: the Kafka offsets
//! applied, a job's lineage) in its summary. Start reading at
//! [`apply::TableWriter`] for ingest, [`sink::write_result`] for jobs.
//!
//! This crate does not decode anything and does not know Kafka: it takes
//! change batches, whatever produced them (it depends on `ingest` without
//! its `kafka` feature). Queries over the lake belong to `analytics`; the
//! catalog is opened here, so the catalog and pointer fields of [`Lake`]
//! stay private and every write goes through the operations.

pub mod catalog;
pub mod config;
pub mod error;
pub mod fault;
pub mod index;
pub mod operations;
pub mod spec;
mod storage;
pub mod table;
pub mod transaction;

pub use catalog::{open_catalog, Lake};
pub use config::{
    CatalogConfig, LakeConfig, MergePolicy, S3Config, SnapshotExpiry, TableConfig, TableMode,
    TablesConfig, Warehouse,
};
pub use error::LakehouseError;
pub use operations::{apply, changes, dead_letter, maintain, sink};
pub use spec::schema::{table_schema, SchemaError};
pub use table::{ensure_table, TableFiles, TableTarget};
