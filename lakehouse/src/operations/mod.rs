//! What callers ask of the lake, each over the transaction layer:
//!
//! * [`apply`]: change batches applied to a table (upserts by key or by
//!   whole row, changelog appends, schema changes with [`fill`]ed
//!   defaults), the CDC row delta;
//! * [`sink`]: whole results written (overwrite, append, overwrite
//!   partitions) for batch jobs and loads;
//! * [`dead_letter`]: messages floe could not apply, kept;
//! * [`changes`]: the rows a table gained and lost since a snapshot;
//! * [`maintain`]: compaction, snapshot expiry, orphan cleanup and their
//!   policies.

pub(crate) mod append;
pub mod apply;
pub mod changes;
pub mod dead_letter;
pub(crate) mod fill;
pub mod maintain;
pub mod sink;
