//! The ingest crate's integration tests, in one binary.

mod fixtures;
