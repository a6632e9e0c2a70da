//! # floe analytics
//!
//! Queries over the lake: the DataFusion session with the Iceberg catalog
//! registered ([`LakeSession`]); the `floe sql` shell and the scheduled
//! batch jobs that build analytics and ML feature tables back into Iceberg
//! grow here.
//!
//! Writing to tables goes through `lakehouse`'s commit path; this crate
//! never writes Iceberg metadata itself.

pub mod error;
pub mod session;

pub use error::AnalyticsError;
pub use session::{LakeSession, LAKE_CATALOG};
