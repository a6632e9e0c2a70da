//! Table maintenance while ingest keeps committing: [`compact`] rewrites a
//! partition's small data files, with the rows its position deletes remove
//! dropped, into files near a target size, and commits the replacement so that no
//! concurrent commit is lost; [`expire`] drops old snapshots and the files
//! only they reached; [`orphans`] deletes old files no metadata names.
//! [`policy`] is the `[maintain]` configuration: each operation's
//! thresholds and schedule, by default and per table.

pub mod compact;
pub mod expire;
pub mod orphans;
pub mod policy;

pub use compact::{compact, plan, CompactPolicy, CompactReport, PartitionPlan};
pub use expire::{expire, ExpirePolicy, ExpireReport};
pub use orphans::{orphans, OrphanPolicy, OrphanReport};
pub use policy::{MaintainConfig, Operation, TablePolicy};
