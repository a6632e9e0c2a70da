//! The lakehouse crate's integration tests, in one binary.

mod schema;
mod tables;
