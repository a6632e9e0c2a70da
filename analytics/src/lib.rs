//! # floe analytics
//!
//! Queries over the lake: the DataFusion session with the Iceberg catalog
//! registered ([`LakeSession`], with time travel through `as_of`), and the
//! `floe sql` shell ([`shell`]), and the batch jobs ([`jobs`]) that build
//! analytics and ML feature tables back into Iceberg: manifests, the inputs
//! a query reads (files, generated weather, the changes feed of
//! incremental jobs), batch loads of trip files, the run record and the
//! scheduler. [`progress`] reports long work. The session corrects two
//! ways the pinned DataFusion and iceberg-datafusion get answers wrong:
//! [`dialect`] (where DataFusion's SQL answers differently from
//! PostgreSQL's) and [`pushdown`] (filters the Iceberg scan would convert
//! wrongly); [`cooperative`] makes every plan stop soon after it is
//! cancelled, and [`scan`] keeps more of a table's file reads in flight.
//! [`serve`] is what `floe serve` runs for a request: read-only statements
//! under limits of time, rows and memory, table reads built from checked
//! names, the feature calls, each table's health.
//!
//! Not here: Kafka and decoding (`ingest`), writing Iceberg metadata
//! (anything this crate writes goes through `lakehouse`'s commit path), and
//! network protocols (HTTP, Flight SQL, TLS: the binary's `serve`).

pub mod cooperative;
pub mod dialect;
pub mod error;
pub mod explain;
pub mod format;
pub mod interrupts;
pub mod jobs;
pub mod meta;
pub mod progress;
pub mod pushdown;
pub mod scan;
pub mod serve;
pub mod session;
pub mod shell;
pub mod statements;
pub mod time_travel;

pub use error::AnalyticsError;
pub use format::OutputFormat;
pub use session::{LakeSession, LAKE_CATALOG};
pub use shell::Shell;
