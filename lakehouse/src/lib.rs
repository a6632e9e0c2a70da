//! # floe lakehouse
//!
//! Everything between a decoded [`ingest::ChangeBatch`] and an Iceberg
//! table: catalogs (SQL on SQLite or Postgres, REST), storage (local
//! filesystem, S3-compatible), table creation from the first batch of a
//! source table, applying changes, the snapshot commit with its
//! exactly-once offsets, and table maintenance.
//!
//! Today it holds the first piece, [`schema`]: how a change batch's row
//! type becomes an Iceberg schema with the primary key as identifier
//! fields. Start reading there.
//!
//! This crate does not decode anything and does not know Kafka: it takes
//! change batches, whatever produced them (it depends on `ingest` without
//! its `kafka` feature). Queries over the lake belong to `analytics`.

pub mod schema;

pub use schema::{table_schema, SchemaError};
