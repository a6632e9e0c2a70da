//! A DataFusion session over the lake: every Iceberg namespace is a schema
//! of the default catalog `lake`, so `SELECT * FROM taxi_cdc.trips` reads
//! the table as of its current snapshot at the time of each query.

use std::sync::Arc;

use datafusion::execution::context::SessionContext;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionConfig;
use iceberg_datafusion::IcebergCatalogProvider;
use lakehouse::{Lake, LakeConfig};

use crate::error::AnalyticsError;

/// The name of the lake's catalog in the session.
pub const LAKE_CATALOG: &str = "lake";

/// A DataFusion session whose default catalog is the lake. Clones share
/// the session.
#[derive(Clone)]
pub struct LakeSession {
    pub lake: Arc<Lake>,
    pub ctx: SessionContext,
}

impl LakeSession {
    /// Opens the lake of `config` and a session over it.
    pub async fn open(config: &LakeConfig) -> Result<Self, AnalyticsError> {
        let lake = Arc::new(Lake::open(config).await?);
        Self::over(lake).await
    }

    /// Opens the lake of `config` and a session whose queries together
    /// hold at most `bytes` of memory (sorts, joins and aggregations past
    /// it fail with "resources exhausted" instead of growing).
    pub async fn open_with_memory_limit(
        config: &LakeConfig,
        bytes: usize,
    ) -> Result<Self, AnalyticsError> {
        let lake = Arc::new(Lake::open(config).await?);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(bytes, 1.0)
            .build_arc()?;
        Self::build(lake, Some(runtime)).await
    }

    /// A session over an opened lake.
    pub async fn over(lake: Arc<Lake>) -> Result<Self, AnalyticsError> {
        Self::build(lake, None).await
    }

    async fn build(
        lake: Arc<Lake>,
        runtime: Option<Arc<RuntimeEnv>>,
    ) -> Result<Self, AnalyticsError> {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(LAKE_CATALOG, "public")
            .with_information_schema(true);
        // DataFusion's analyzer rules, with floe's around them: SQL answers
        // as PostgreSQL gives them (crate::dialect)
        let mut state = SessionStateBuilder::new();
        if let Some(runtime) = runtime {
            state = state.with_runtime_env(runtime);
        }
        let state = state
            .with_config(config)
            .with_default_features()
            .with_analyzer_rules(crate::dialect::analyzer_rules())
            // Ctrl-C stops any plan (crate::cooperative)
            .with_physical_optimizer_rule(Arc::new(crate::cooperative::YieldOften))
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_udtf(
            "as_of",
            Arc::new(crate::time_travel::AsOf::new(lake.catalog().clone())),
        );
        let session = Self { lake, ctx };
        session.refresh().await?;
        Ok(session)
    }

    /// Lists the lake's namespaces and tables again (they are listed once
    /// per refresh; each table's snapshot is read at every query).
    pub async fn refresh(&self) -> Result<(), AnalyticsError> {
        let provider = IcebergCatalogProvider::try_new(self.lake.catalog().clone()).await?;
        // the Iceberg scan gets only the filters it converts exactly
        let provider = crate::pushdown::ExactFiltersCatalog::wrap(Arc::new(provider));
        self.ctx.register_catalog(LAKE_CATALOG, provider);
        Ok(())
    }

    /// Runs one SQL statement and collects its result.
    pub async fn sql(
        &self,
        sql: &str,
    ) -> Result<Vec<datafusion::arrow::array::RecordBatch>, AnalyticsError> {
        Ok(self.ctx.sql(sql).await?.collect().await?)
    }
}
