//! Time travel: the table function `as_of(table, point)` reads a table as
//! it was at a snapshot id (an integer) or at a time (a string: RFC 3339,
//! or `YYYY-MM-DD HH:MM:SS[.fff]` taken as UTC):
//!
//! ```sql
//! SELECT count(*) FROM as_of('taxi_cdc.trips', 4630983471593421857);
//! SELECT count(*) FROM as_of('taxi_cdc.trips', '2026-11-21 10:00:00');
//! ```
//!
//! A time reads the snapshot that was current then (the last one committed
//! at or before it); a time before the table's first snapshot is an error.

use std::sync::Arc;

use datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
use datafusion::catalog::{TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, DataFusionError, Result as DFResult, ScalarValue};
use datafusion::logical_expr::Expr;
use iceberg::spec::TableMetadata;
use iceberg::{Catalog, TableIdent};
use iceberg_datafusion::IcebergStaticTableProvider;

/// Where in a table's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Snapshot(i64),
    /// Milliseconds since the epoch.
    Time(i64),
}

impl Point {
    /// The snapshot this point names in `metadata`.
    pub fn snapshot_id(self, metadata: &TableMetadata) -> Result<i64, String> {
        match self {
            Point::Snapshot(id) => metadata
                .snapshot_by_id(id)
                .map(|s| s.snapshot_id())
                .ok_or_else(|| format!("no snapshot {id} (see \\snapshots)")),
            Point::Time(ms) => {
                // the snapshot log is the main branch's history; without
                // one, the snapshots' own commit times stand in
                let log: Vec<(i64, i64)> = if metadata.history().is_empty() {
                    metadata
                        .snapshots()
                        .map(|s| (s.timestamp_ms(), s.snapshot_id()))
                        .collect()
                } else {
                    metadata
                        .history()
                        .iter()
                        .map(|l| (l.timestamp_ms, l.snapshot_id))
                        .collect()
                };
                log.iter()
                    .filter(|(at, _)| *at <= ms)
                    .max_by_key(|(at, _)| *at)
                    .map(|(_, id)| *id)
                    .ok_or_else(|| "the table had no snapshot yet at that time".to_string())
            }
        }
    }
}

/// The `as_of` table function.
#[derive(Debug)]
pub struct AsOf {
    catalog: Arc<dyn Catalog>,
}

impl AsOf {
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self { catalog }
    }
}

fn literal(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v),
        // TIMESTAMP '...' and friends arrive as casts of a string
        Expr::Cast(c) => literal(&c.expr),
        _ => None,
    }
}

/// Parses `as_of`'s arguments.
pub fn parse_args(args: &[Expr]) -> DFResult<(TableIdent, Point)> {
    let [table, point] = args else {
        return plan_err!(
            "as_of takes two arguments: as_of('namespace.table', snapshot_id or 'time')"
        );
    };
    let Some(ScalarValue::Utf8(Some(name)) | ScalarValue::LargeUtf8(Some(name))) = literal(table)
    else {
        return plan_err!("as_of: the table is a string, e.g. 'taxi_cdc.trips'");
    };
    let ident = TableIdent::from_strs(name.split('.'))
        .map_err(|e| DataFusionError::Plan(format!("as_of: table {name}: {e}")))?;
    let point = match literal(point) {
        Some(ScalarValue::Int64(Some(id))) => Point::Snapshot(*id),
        Some(ScalarValue::Int32(Some(id))) => Point::Snapshot(i64::from(*id)),
        Some(ScalarValue::Utf8(Some(t)) | ScalarValue::LargeUtf8(Some(t))) => {
            let nanos = string_to_timestamp_nanos(t).map_err(|e| {
                DataFusionError::Plan(format!(
                    "as_of: {t:?} is not a time (RFC 3339 or 'YYYY-MM-DD HH:MM:SS', UTC): {e}"
                ))
            })?;
            Point::Time(nanos.div_euclid(1_000_000))
        }
        _ => return plan_err!("as_of: the point is a snapshot id (integer) or a time (string)"),
    };
    Ok((ident, point))
}

impl TableFunctionImpl for AsOf {
    fn call(&self, args: &[Expr]) -> DFResult<Arc<dyn TableProvider>> {
        let (ident, point) = parse_args(args)?;
        let catalog = self.catalog.clone();
        // planning is synchronous; loading the table is not. Sessions run
        // on a multi-threaded runtime, where this thread may block.
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| DataFusionError::Execution(format!("as_of needs a runtime: {e}")))?;
        let load = async move {
            let table = catalog
                .load_table(&ident)
                .await
                .map_err(|e| match e.kind() {
                    iceberg::ErrorKind::TableNotFound => DataFusionError::Plan(format!(
                        "as_of: no table {ident} (\\dt lists the tables)"
                    )),
                    _ => DataFusionError::Plan(format!("as_of: {ident}: {e}")),
                })?;
            let snapshot = point
                .snapshot_id(table.metadata())
                .map_err(|e| DataFusionError::Plan(format!("as_of: {ident}: {e}")))?;
            IcebergStaticTableProvider::try_new_from_table_snapshot(table, snapshot)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))
        };
        let provider = tokio::task::block_in_place(|| handle.block_on(load))?;
        Ok(crate::pushdown::ExactFilters::wrap(Arc::new(provider)))
    }
}
