//! The primary-key index: where each live row of a table is, so updates
//! and deletes become position deletes of exactly that row.

pub mod i64_map;
pub mod pk_index;
