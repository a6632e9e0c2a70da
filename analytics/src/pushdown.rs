//! Filters handed to the Iceberg scan only when it converts them exactly.
//!
//! iceberg-datafusion 0.10.1 accepts every filter and converts what it can
//! into an Iceberg predicate for file pruning, but it drops casts on the way
//! (`CAST(fare_amount AS DOUBLE) < 0` becomes `fare_amount < 0.0`), and a
//! literal of another type than its column makes the scan fail ("Can't
//! convert datum from double type to decimal(10, 2)"; apache/iceberg-rust
//! PR #3223, closed). Since DataFusion coerces `passenger_count > 2.5` into
//! a cast of the column, ordinary analyst filters hit it.
//!
//! [`ExactFilters`] wraps each lake table and offers the scan only the
//! filters it can take as written: comparisons, `IN` lists, `IS [NOT] NULL`,
//! `LIKE` and `NOT` of a column and literals of exactly the column's type,
//! joined by `AND`/`OR`, with no cast anywhere. DataFusion evaluates every
//! filter itself after the scan either way (pushdown is `Inexact`), so a
//! filter kept back only costs pruning, never a wrong row.

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, LogicalPlan, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

/// A lake table whose scan gets only the filters it converts exactly.
#[derive(Debug)]
pub struct ExactFilters {
    inner: Arc<dyn TableProvider>,
}

impl ExactFilters {
    pub fn wrap(inner: Arc<dyn TableProvider>) -> Arc<dyn TableProvider> {
        Arc::new(Self { inner })
    }
}

#[async_trait]
impl TableProvider for ExactFilters {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        self.inner.get_logical_plan()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // DataFusion passes only the filters accepted below
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        Ok(crate::scan::widen(plan))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let schema = self.inner.schema();
        Ok(filters
            .iter()
            .map(|f| {
                if exact(f, &schema) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }
}

/// Whether the Iceberg scan takes `filter` as written (see the module).
fn exact(filter: &Expr, schema: &SchemaRef) -> bool {
    let column_type = |e: &Expr| match e {
        Expr::Column(c) => schema
            .field_with_name(c.name())
            .ok()
            .map(|f| f.data_type().clone()),
        _ => None,
    };
    let literal_of = |e: &Expr, ty: &DataType| match e {
        Expr::Literal(v, _) => !v.is_null() && v.data_type() == *ty && convertible(v),
        _ => false,
    };
    match filter {
        Expr::BinaryExpr(b) => match b.op {
            Operator::And | Operator::Or => exact(&b.left, schema) && exact(&b.right, schema),
            Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq => match (column_type(&b.left), column_type(&b.right)) {
                (Some(ty), None) => literal_of(&b.right, &ty),
                (None, Some(ty)) => literal_of(&b.left, &ty),
                _ => false,
            },
            _ => false,
        },
        Expr::Not(e) => exact(e, schema),
        Expr::IsNull(e) | Expr::IsNotNull(e) => column_type(e).is_some(),
        Expr::InList(list) => match column_type(&list.expr) {
            Some(ty) => !list.list.is_empty() && list.list.iter().all(|e| literal_of(e, &ty)),
            None => false,
        },
        Expr::Like(like) => {
            !like.case_insensitive
                && like.escape_char.is_none()
                && column_type(&like.expr).is_some_and(|t| t == DataType::Utf8)
                && literal_of(&like.pattern, &DataType::Utf8)
        }
        // a boolean column on its own
        Expr::Column(_) => column_type(filter) == Some(DataType::Boolean),
        _ => false,
    }
}

/// Literals the scan turns into an Iceberg value of the same type.
fn convertible(value: &ScalarValue) -> bool {
    matches!(
        value,
        ScalarValue::Boolean(_)
            | ScalarValue::Int32(_)
            | ScalarValue::Int64(_)
            | ScalarValue::Float64(_)
            | ScalarValue::Utf8(_)
            | ScalarValue::LargeUtf8(_)
            | ScalarValue::Binary(_)
            | ScalarValue::LargeBinary(_)
            | ScalarValue::Date32(_)
            | ScalarValue::TimestampMicrosecond(_, _)
    )
}

/// The lake's catalog with every table wrapped in [`ExactFilters`].
#[derive(Debug)]
pub struct ExactFiltersCatalog {
    inner: Arc<dyn CatalogProvider>,
}

impl ExactFiltersCatalog {
    pub fn wrap(inner: Arc<dyn CatalogProvider>) -> Arc<dyn CatalogProvider> {
        Arc::new(Self { inner })
    }
}

impl CatalogProvider for ExactFiltersCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        self.inner.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let inner = self.inner.schema(name)?;
        Some(Arc::new(ExactFiltersSchema { inner }))
    }
}

#[derive(Debug)]
struct ExactFiltersSchema {
    inner: Arc<dyn SchemaProvider>,
}

#[async_trait]
impl SchemaProvider for ExactFiltersSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.inner.table(name).await?.map(ExactFilters::wrap))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::{col, lit, Cast};

    use super::*;

    #[test]
    fn only_casts_free_same_type_filters_reach_the_scan() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("fare", DataType::Decimal128(10, 2), true),
            Field::new("n", DataType::Int32, true),
            Field::new("zone", DataType::Utf8, true),
        ]));
        assert!(exact(&col("n").gt(lit(2i32)), &schema));
        assert!(exact(
            &col("zone").eq(lit("JFK")).or(col("n").is_null()),
            &schema
        ));
        // a literal of another type, a cast, a decimal literal: kept back
        assert!(!exact(&col("n").gt(lit(2.5f64)), &schema));
        let cast = Expr::Cast(Cast::new(Box::new(col("fare")), DataType::Float64));
        assert!(!exact(&cast.lt(lit(0f64)), &schema));
        assert!(!exact(
            &col("fare").gt(lit(ScalarValue::Decimal128(Some(1050), 10, 2))),
            &schema
        ));
        assert!(!exact(
            &col("n").gt(lit(2i32)).and(col("zone").like(col("zone"))),
            &schema
        ));
    }
}
