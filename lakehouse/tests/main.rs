//! The lakehouse crate's integration tests, in one binary.

mod commit;
mod position_delete;
mod schema;
mod tables;
mod write;
