//! # floe analytics
//!
//! Queries over the lake: the DataFusion session with the Iceberg catalog
//! registered, the `floe sql` shell, and the scheduled batch jobs that
//! build analytics and ML feature tables back into Iceberg.
//!
//! Nothing is built here yet; the crate exists so the workspace has its
//! final shape and its DataFusion/Iceberg versions are pinned and compiled
//! from the start. Writing to tables goes through `lakehouse`'s commit
//! path; this crate never writes Iceberg metadata itself.
