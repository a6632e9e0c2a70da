//! What Iceberg files are and how floe writes and reads them; no commits.
//!
//! * [`schema`] and [`evolve`]: a source table's Iceberg schema, and how it
//!   follows the source's changes;
//! * [`partition`]: partition specs from configuration, partition folders;
//! * [`write`]: rows as Parquet data files, each row's place known;
//! * [`position_delete`]: position-delete files (iceberg 0.10.1 has no
//!   writer for them);
//! * [`parallel`]: a commit's files written on every core;
//! * [`parquet`]: Parquet writer settings from a table's properties
//!   (zstd unless it says otherwise);
//! * [`read`]: data-file columns by field id, position-delete rows,
//!   manifest lists;
//! * [`store`]: listing storage, which iceberg's FileIO cannot do.

pub mod evolve;
pub(crate) mod parallel;
pub mod parquet;
pub mod partition;
pub mod position_delete;
pub(crate) mod read;
pub mod schema;
pub mod store;
pub mod write;
