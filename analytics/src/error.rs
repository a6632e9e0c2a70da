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
}
