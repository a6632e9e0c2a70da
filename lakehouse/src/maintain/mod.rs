//! Table maintenance while ingest keeps committing: [`compact`] rewrites a
//! partition's small data files, with the rows its position deletes remove
//! dropped, into one file, and commits the replacement so that no
//! concurrent commit is lost.

pub mod compact;

pub use compact::{compact, plan, CompactPolicy, CompactReport, PartitionPlan};
