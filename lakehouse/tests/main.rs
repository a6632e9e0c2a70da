//! The lakehouse crate's integration tests, in one binary.

mod apply;
mod commit;
mod compact;
mod dead_letter;
mod expire;
mod interop;
mod model;
mod orphans;
mod pk_index;
mod position_delete;
mod postgres;
mod resent;
mod resnapshot;
mod rest;
mod schema;
mod sink;
mod source_order;
mod support;
mod tables;
mod write;
