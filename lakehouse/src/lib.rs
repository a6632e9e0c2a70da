//! # floe lakehouse
//!
//! Everything between a decoded [`ingest::ChangeBatch`] and an Iceberg
//! table: catalogs (SQL on SQLite or Postgres, REST), storage (local
//! filesystem, S3-compatible), table creation from the first batch of a
//! source table, applying changes, the snapshot commit with its
//! exactly-once offsets, and table maintenance.
//!
//! Built so far:
//! * [`config`]: the lake's configuration (warehouse, catalog, per-table
//!   names, partitioning and mode);
//! * [`catalog`]: opening the lake ([`Lake`]): the catalog (SQL on SQLite
//!   by default or Postgres, or REST), the storage (local or S3-compatible)
//!   and the pointer floe commits through;
//! * [`schema`] and [`partition`]: the Iceberg schema (primary key as
//!   identifier fields) and partition spec of a source table;
//! * [`table`]: naming a source table's Iceberg table and creating it from
//!   its first change batch. Start reading at [`table::ensure_table`];
//! * [`position_delete`]: writing position-delete files, which iceberg
//!   0.10.1 cannot;
//! * [`write`]: change-batch rows as table rows, written to one Parquet
//!   data file per partition with each row's (file, position) known;
//! * [`commit`]: the row-delta snapshot commit (data and delete files in
//!   one snapshot, summary totals carried forward, floe's own summary
//!   properties, truncates removing every file) with the SQL catalog's
//!   compare-and-swap or the REST catalog's commit requirements.
//!
//! * [`pk_index`]: the primary-key index, each live key to its row's data
//!   file and position;
//! * [`apply`]: [`apply::TableWriter`], which applies change batches (final
//!   state per key, updates and deletes as position deletes, truncates,
//!   unchanged TOAST values, columns added at the source, Kafka offsets in
//!   the snapshot summary) and rebuilds its index from the snapshot when it
//!   opens. Start here.
//!
//! A batch that loses the commit race to another writer is retried on top
//! of the other's snapshot; widened source types (int to long, float to
//! double, decimal precision up) widen the table through floe's own schema
//! commit. [`append`] builds the rows of `append`-mode (changelog) tables;
//! [`dead_letter`] keeps the messages that could not be decoded.
//!
//! For batch jobs: [`sink`] writes whole results (overwrite, append,
//! overwrite-partitions) through the same commit; [`changes`] reads the
//! rows a table gained and lost since one of its snapshots, from the files
//! the later snapshots added and removed.
//!
//! This crate does not decode anything and does not know Kafka: it takes
//! change batches, whatever produced them (it depends on `ingest` without
//! its `kafka` feature). Queries over the lake belong to `analytics`.

pub mod catalog;
pub mod config;
pub mod error;
pub mod index;
pub mod operations;
pub mod spec;
pub mod table;
pub mod transaction;

pub use catalog::{open_catalog, Lake};
pub use config::{
    CatalogConfig, LakeConfig, S3Config, TableConfig, TableMode, TablesConfig, Warehouse,
};
pub use error::LakehouseError;
pub use operations::{apply, changes, dead_letter, maintain, sink};
pub use spec::schema::{table_schema, SchemaError};
pub use table::{ensure_table, TableTarget};
