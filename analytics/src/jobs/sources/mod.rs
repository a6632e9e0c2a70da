//! Sources a job generates or fetches rather than reads from a file.

pub mod weather;
