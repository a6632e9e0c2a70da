use thiserror::Error;

/// What can go wrong reading or building tables in the lake.
#[derive(Debug, Error)]
pub enum AnalyticsError {
    #[error(transparent)]
    Lake(#[from] lakehouse::LakehouseError),
    #[error("iceberg: {0}")]
    Iceberg(#[from] iceberg::Error),
    #[error(transparent)]
    Query(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("{0}")]
    Usage(String),
    /// A job's source (a file, an API) could not be read.
    #[error("source: {0}")]
    Source(String),
    /// A job ran and wrote its result, but the result says it failed.
    #[error("{0}")]
    Failed(String),
    /// A job's query ran past its `timeout_secs`; nothing was written.
    #[error("the query ran past its time limit of {0:?} (timeout_secs in the job's manifest); nothing was written")]
    TimedOut(std::time::Duration),
}
