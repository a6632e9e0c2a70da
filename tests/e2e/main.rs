//! End-to-end tests of the `floe` binary, in one test binary.

mod chaos;
mod decode_cli;
mod foreign;
mod ingest;
mod jobs;
mod partitions;
mod quickstart;
mod reliability;
mod serve;
mod sql;
mod sql_differential;
mod stack;
mod taxi_cdc;
mod taxi_jobs;
mod types;
